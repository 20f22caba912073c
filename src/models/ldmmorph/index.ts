/** LDM-Morph: a Swin registration network joined with a latent diffusion model's features, and its loss. */
export * from './config.ts';
export * from './swin.ts';
export * from './lgca.ts';
export * from './decoder.ts';
export * from './network.ts';
export * from './loss.ts';
// Shared with DiffuseReg's 3-D Swin, so they live in blocks; exported here too for this index's users.
export { PatchMerging, ShiftedWindows } from '../blocks/index.ts';

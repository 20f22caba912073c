/** Building blocks shared by the networks: attention, windows, Swin's parts, MLP, timestep embedding. */
export * from './attention.ts';
export * from './embedding.ts';
export * from './mlp.ts';
export * from './windows.ts';
export * from './swin.ts';

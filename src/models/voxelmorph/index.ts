/** Unsupervised registration networks: VoxelMorph's U-Net and VTN-style cascades of it. */
export * from './network.ts';

/** Building blocks shared by the networks: attention, windows, MLP, timestep embedding. */
export * from './attention.ts';
export * from './embedding.ts';
export * from './mlp.ts';
export * from './windows.ts';

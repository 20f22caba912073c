/** Geometry: volumes, displacement fields, warping, field algebra, synthetic deformations. */
export * from './volume.ts';
export * from './field.ts';
export * from './warp.ts';
export * from './compose.ts';
export * from './jacobian.ts';
export * from './distance.ts';
export * from './random.ts';
export * from './synthetic.ts';
export * from './field-tensor.ts';
export * from './network-grid.ts';

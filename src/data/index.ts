/** Data below the methods: registration cases and the datasets that load them (see dataset.ts). */
export * from './case.ts';
export * from './dataset.ts';
export * from './lpba40.ts';
export * from './acdc.ts';
export * from './lung.ts';
export * from './keypoints.ts';
export * from './dirlab.ts';
export * from './learn2reg.ts';
export * from './slices.ts';

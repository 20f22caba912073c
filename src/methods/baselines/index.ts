/** Baseline registration methods and the method interface of the benchmark harness. */
export * from './method.ts';
export * from './identity.ts';
export * from './elastix.ts';

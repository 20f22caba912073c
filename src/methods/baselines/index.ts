/** Baseline registration methods: identity and elastix. */
export * from './identity.ts';
export * from './elastix.ts';

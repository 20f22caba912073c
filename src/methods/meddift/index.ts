export * from './features.ts';
export * from './match.ts';
export * from './correspond.ts';
export * from './register.ts';
export * from './points.ts';
export * from './describe.ts';
export { isFeatureMethod, withDescriptor } from './method.ts';

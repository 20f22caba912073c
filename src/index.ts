/** diffreg's library entry: each layer's public API. */
export * as engine from './engine/index.ts';
export * from './io/index.ts';
export * from './geometry/index.ts';
export * from './models/index.ts';
export * from './methods/meddift/index.ts';
export * from './methods/descriptors/index.ts';
export * from './eval/metrics.ts';
export { makeThoraxPhantom } from './eval/phantom.ts';
export { DiffregError } from './util/errors.ts';

/** Losses of learned registration: spatial transformer, image similarity, field smoothness. */
export * from './spatial.ts';
export * from './similarity.ts';
export * from './smoothness.ts';
export * from './folding.ts';

export * from './features.ts';
export * from './match.ts';

/** The benchmark harness (`diffreg bench`): run, score, report. */
export * from './evaluate.ts';
export * from './report.ts';
export * from './overlay.ts';
export * from './harness.ts';
export * from './command.ts';

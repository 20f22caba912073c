/** The general trainer: loop, checkpoints, logs and plots, the diffusion objective. */
export * from './loop.ts';
export * from './checkpoint.ts';
export * from './diffusion-loss.ts';
export { lossPlotSvg } from './plot.ts';
export * from './recipe.ts';

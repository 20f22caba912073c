/** DiffuseReg (Zhuo & Shen, MICCAI 2024): the denoiser network and its configuration. */
export * from './config.ts';
export * from './swin.ts';
export * from './denoiser.ts';

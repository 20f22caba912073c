export * from './schedulers/schedule.ts';
export * from './schedulers/ddpm.ts';
export * from './schedulers/ddim.ts';
export * from './maisi/config.ts';
export * from './maisi/unet.ts';
export * from './maisi/autoencoder.ts';
export * from './maisi/checkpoint.ts';
export * from './preprocess.ts';

/** LDM-Morph's 2-D latent diffusion model: configuration, autoencoder, U-Net, features, training. */
export * from './config.ts';
export * from './autoencoder.ts';
export * from './unet.ts';
export * from './features.ts';
export * from './train.ts';

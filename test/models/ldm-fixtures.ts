/** Tiny configurations of LDM-Morph's networks for tests: 64² images, a few channels per layer. */
import type { Ldm2dConfigOverrides } from '../../src/models/ldm2d/index.ts';
import type { LdmMorphConfig } from '../../src/models/ldmmorph/index.ts';

/** Latents of 2 channels, 4× smaller per axis; a U-Net of 8 and 16 channels, attending at 2 levels. */
export const TINY_LDM2D: Ldm2dConfigOverrides = {
  autoencoder: { channels: [8, 8, 8], resBlocks: 1, latentChannels: 2 },
  unet: {
    baseChannels: 8,
    channelMultipliers: [1, 2, 2, 2],
    attentionLevels: [false, false, true, true],
    headChannels: 8,
    resBlocks: 1,
    timeEmbeddingDim: 16,
  },
  normGroups: 4,
};

/** 64² images, 4² windows, widths 8 to 64, and small LDM features (methods derive theirs from the LDM). */
export const TINY_LDM_MORPH: Partial<LdmMorphConfig> = {
  imageSize: [64, 64],
  embedDim: 8,
  heads: [2, 2, 4, 4],
  window: 4,
  mlpRatio: 2,
  headChannels: 4,
  ldmChannels: [4, 8, 8, 8],
};

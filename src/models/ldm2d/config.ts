/**
 * The configuration of LDM-Morph's 2-D latent diffusion model (Wu et al., Pattern Recognition 2026):
 * a KL autoencoder from cardiac MR slices to a latent grid 4× smaller per axis, and an ε-prediction
 * U-Net on those latents. The authors use a VQ autoencoder with one latent channel and a U-Net of
 * base width 64; the default here keeps their structure (×4 downsampling, four U-Net levels with
 * multipliers 1, 2, 3, 4, attention at their levels 16², 8², 4² — their attention_resolutions 2, 4, 8
 * are downsampling factors of the 32² latent) at widths, and with one residual block per level, that
 * train on two CPU cores in about two hours per stage.
 */
import { bool, integer, invalid, number, oneOf } from '../../util/is.ts';
import { MAISI_SCHEDULE, type ScheduleOptions } from '../schedulers/schedule.ts';

export interface Ldm2dAutoencoderConfig {
  /**
   * Channels of the encoder's levels, finest first (the decoder mirrors them); every level after the
   * first halves the image, so three levels map 128² to 32².
   */
  channels: number[];
  /** Residual blocks per level. */
  resBlocks: number;
  latentChannels: number;
  /**
   * How the latent is regularised: 'kl' (LDM's AutoencoderKL: a Gaussian pulled toward N(0, I)) or
   * 'vq' (LDM's VQModel, the authors': the encoder's output snapped to the nearest codebook entry in
   * the decoder's path). The U-Net and LDM-Morph read the continuous latent either way (the
   * Gaussian's mean, or the output before quantisation, as LDM's VQModelInterface encodes).
   */
  quantizer: 'kl' | 'vq';
  /**
   * Weight of the KL divergence to N(0, I) in the training loss ('kl'). LDM keeps it in the model's
   * definition too: it decides how regular, and so how learnable, the latent space is.
   */
  klWeight: number;
  /** Codebook entries ('vq'; the authors 16384). */
  codebookSize: number;
  /** Weight of the commitment term ‖h − sg(e)‖² ('vq'; VQ-VAE's β = 0.25). */
  commitmentWeight: number;
}

export interface Ldm2dUNetConfig {
  /** Channels of the first level, and the width of the sinusoidal timestep embedding. */
  baseChannels: number;
  /** Level l has baseChannels·channelMultipliers[l] channels; every level after the first halves the latent. */
  channelMultipliers: number[];
  /** Self-attention after each residual block of a level (the middle block always has it). */
  attentionLevels: boolean[];
  /** Channels per attention head (LDM's num_head_channels): a level of C channels has C / headChannels heads. */
  headChannels: number;
  /** Residual blocks per encoder level (the decoder has one more, for the level's input skip). */
  resBlocks: number;
  /** Width of the timestep embedding after its MLP, added in every residual block. */
  timeEmbeddingDim: number;
}

export interface Ldm2dConfig {
  autoencoder: Ldm2dAutoencoderConfig;
  unet: Ldm2dUNetConfig;
  /** GroupNorm groups of every normalisation layer (each width must be a multiple). */
  normGroups: number;
}

/**
 * The default: 128² images, 32² latents of 4 channels; U-Net levels 32², 16², 8², 4² of 32, 64, 96,
 * 128 channels, one residual block each (the authors have two: 1.4–2× the step time and 5.6 M
 * parameters, 12.8 MB in float16 with the autoencoder), attention at the authors' 16², 8², 4².
 *
 * Measured on this machine, one thread (libtorch CPU; two cores, other jobs running, so the fastest
 * of 10–20 steps, medians up to 1.5× that), a whole trainer step (forward, backward, clipping, AdamW):
 *   autoencoder: 0.29 s at batch 1, 1.2 s at batch 4 (encoding one image for the U-Net stage: 0.07–0.14 s);
 *   U-Net: 0.17 s at batch 1, 0.55–0.8 s at batch 16.
 * Parameters: autoencoder 786,473 (1.6 MB in float16), U-Net 3,845,284 (7.7 MB): 9.3 MB together.
 * Attention, one block forward and backward at batch 16: 0.32 s at 32², 0.048 s at 16², 0.011 s at
 * 8², 0.006 s at 4². At 16² it adds 0.15–0.18 s to a U-Net step (+40 % over 8², 4² alone), kept: it
 * is the only way LDM-Morph's 16² tap, taken before the deeper levels, sees the whole slice. At 32²
 * it would more than double the step.
 */
export const LDM2D_DEFAULT: Ldm2dConfig = {
  autoencoder: {
    channels: [32, 64, 64],
    resBlocks: 1,
    latentChannels: 4,
    quantizer: 'kl',
    klWeight: 1e-6,
    codebookSize: 16384,
    commitmentWeight: 0.25,
  },
  unet: {
    baseChannels: 32,
    channelMultipliers: [1, 2, 3, 4],
    attentionLevels: [false, true, true, true],
    headChannels: 32,
    resBlocks: 1,
    timeEmbeddingDim: 128,
  },
  normGroups: 16,
};

/**
 * LDM-Morph's noise schedule: 1000 steps, β from 0.0015 to 0.0195, ε-prediction. The authors' code
 * (CompVis LDM) calls it "linear" but spaces √β linearly, which is MONAI's 'scaled_linear'; it
 * computes the tables in float64. It is MAISI's schedule but for that precision.
 */
/**
 * The authors' autoencoder kind at the default widths: VQ with one latent channel and 16384 codes
 * (`diffreg train ldm2d --autoencoder vq`), to compare with the default KL one on validation.
 */
export const LDM2D_VQ: Ldm2dConfigOverrides = {
  autoencoder: { quantizer: 'vq', latentChannels: 1, codebookSize: 16384 },
};

export const LDM2D_SCHEDULE: Required<ScheduleOptions> = { ...MAISI_SCHEDULE, precision: 'float64' };

export interface Ldm2dConfigOverrides {
  autoencoder?: Partial<Ldm2dAutoencoderConfig>;
  unet?: Partial<Ldm2dUNetConfig>;
  normGroups?: number;
}

function integers(name: string, v: unknown): number[] {
  if (!Array.isArray(v) || v.length === 0) throw invalid(name, 'a non-empty list of integers >= 1', v);
  return v.map((x, i) => integer(`${name}[${i}]`, x, { min: 1 }));
}

/** GroupNorm needs every width to be a multiple of the groups. */
function checkWidths(name: string, widths: number[], groups: number, values: readonly number[]): void {
  widths.forEach((w, i) => {
    if (w % groups !== 0)
      throw invalid(`${name}[${i}]`, `a width that is a multiple of normGroups ${groups}`, values[i]);
  });
}

function checkAutoencoder(a: Ldm2dAutoencoderConfig, groups: number): Ldm2dAutoencoderConfig {
  const channels = integers('autoencoder.channels', a.channels);
  checkWidths('autoencoder.channels', channels, groups, channels);
  return {
    channels,
    resBlocks: integer('autoencoder.resBlocks', a.resBlocks, { min: 1 }),
    latentChannels: integer('autoencoder.latentChannels', a.latentChannels, { min: 1 }),
    quantizer: oneOf('autoencoder.quantizer', a.quantizer, ['kl', 'vq'] as const),
    klWeight: number('autoencoder.klWeight', a.klWeight, { min: 0 }),
    codebookSize: integer('autoencoder.codebookSize', a.codebookSize, { min: 2 }),
    commitmentWeight: number('autoencoder.commitmentWeight', a.commitmentWeight, { min: 0 }),
  };
}

function checkUNet(u: Ldm2dUNetConfig, groups: number): Ldm2dUNetConfig {
  const base = integer('unet.baseChannels', u.baseChannels, { min: 1 });
  const mult = integers('unet.channelMultipliers', u.channelMultipliers);
  checkWidths(
    'unet.channelMultipliers',
    mult.map((m) => base * m),
    groups,
    mult,
  );
  const attention = u.attentionLevels;
  if (!Array.isArray(attention) || attention.length !== mult.length)
    throw invalid('unet.attentionLevels', `${mult.length} booleans (one per level)`, attention);
  attention.forEach((a, l) => bool(`unet.attentionLevels[${l}]`, a));
  const head = integer('unet.headChannels', u.headChannels, { min: 1 });
  mult.forEach((m, l) => {
    // The middle block attends at the last level's width whatever attentionLevels says.
    if ((attention[l] || l === mult.length - 1) && (base * m) % head !== 0)
      throw invalid('unet.headChannels', `a divisor of level ${l}'s ${base * m} channels`, head);
  });
  return {
    baseChannels: base,
    channelMultipliers: mult,
    attentionLevels: [...attention],
    headChannels: head,
    resBlocks: integer('unet.resBlocks', u.resBlocks, { min: 1 }),
    timeEmbeddingDim: integer('unet.timeEmbeddingDim', u.timeEmbeddingDim, { min: 1 }),
  };
}

/** The configuration completed from LDM2D_DEFAULT and checked; throws a one-line DiffregError. */
export function ldm2dConfig(overrides: Ldm2dConfigOverrides = {}): Ldm2dConfig {
  if (typeof overrides !== 'object' || overrides === null)
    throw invalid('LDM config', 'an object', overrides);
  const groups = integer('normGroups', overrides.normGroups ?? LDM2D_DEFAULT.normGroups, { min: 1 });
  return {
    autoencoder: checkAutoencoder({ ...LDM2D_DEFAULT.autoencoder, ...overrides.autoencoder }, groups),
    unet: checkUNet({ ...LDM2D_DEFAULT.unet, ...overrides.unet }, groups),
    normGroups: groups,
  };
}

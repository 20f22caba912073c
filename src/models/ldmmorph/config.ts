/**
 * LDM-Morph's configuration (Wu et al., Pattern Recognition 2026; github wujiong-hub/LDM-Morph) and
 * the window geometry of its four Swin stages derived from it.
 *
 * Images are (B, 1, H, W), tensor axes 2 and 3. Stage s works on a token grid of
 * imageSize / (patchSize·2^s); the LDM features of scale s must come on that grid.
 */
import { bool, integer, invalid, number } from '../../util/is.ts';
import { swinStages, type StageGeometry } from '../blocks/swin.ts';
import { LDM2D_SCHEDULE } from '../ldm2d/config.ts';
import {
  featureExtraction,
  LDM_MORPH_FEATURE_EXTRACTION,
  type FeatureExtraction,
} from '../ldm2d/features.ts';

export interface LdmMorphConfig {
  /** (H, W) in pixels; multiples of patchSize·8 so that the four stages halve exactly. */
  imageSize: [number, number];
  /** Patch embedding's kernel and stride (authors 4: the LDM latent's grid, 128 → 32). */
  patchSize: number;
  /** Channels of the first Swin stage; stage s has embedDim·2^s (authors 64). */
  embedDim: number;
  /** Swin blocks per stage (authors 2, 2, 4, 2). */
  depths: number[];
  /** Attention heads per stage (authors 4, 4, 8, 8). */
  heads: number[];
  /**
   * Square attention window in tokens (authors 7, grids padded to its multiples). Per axis it is
   * clamped to a smaller token grid, unshifted there (Swin's rule).
   */
  window: number;
  /** MLP width over attention width in every transformer block (authors 4). */
  mlpRatio: number;
  /** Channels of the full-resolution convolutional skip and the head's input (TransMorph's reg_head_chan 16). */
  headChannels: number;
  /** false: the TransMorph-like Swin stream alone, no LDM features taken. */
  ldmFeatures: boolean;
  /**
   * false: each scale's adapted LDM features are fused with the Swin features by the LGCA's fusion
   * alone (concatenation, LayerNorm, linear), without cross-attention. Always false without
   * ldmFeatures (there is nothing to attend to).
   */
  lgca: boolean;
  /** Channels of the LDM features per scale, the moving image's then the fixed image's concatenated. */
  ldmChannels: number[];
  /** How the LDM features are taken: the timestep and q_sample (authors' code) or DDIM inversion (paper). */
  featureExtraction: FeatureExtraction;
  /** Cross-attention blocks per LGCA, unshifted and shifted windows alternating (authors 2). */
  lgcaDepth: number;
  /** Kernel of the adapters' convolution (authors 3). */
  adapterKernel: number;
}

/**
 * The authors' network: ACDC and CAMUS images resized and padded to 128², and the LDM features of
 * their training script (two taps per scale of a 64-channel U-Net with multipliers 1, 2, 3, 4:
 * 128, 192, 320, 448 channels per image). 29.1 M parameters here (58 MB in float16); a training
 * step at 128² takes 1.2–1.6 s on one thread.
 */
export const LDM_MORPH_AUTHORS: LdmMorphConfig = {
  imageSize: [128, 128],
  patchSize: 4,
  embedDim: 64,
  depths: [2, 2, 4, 2],
  heads: [4, 4, 8, 8],
  window: 7,
  mlpRatio: 4,
  headChannels: 16,
  ldmFeatures: true,
  lgca: true,
  ldmChannels: [256, 384, 640, 896],
  featureExtraction: LDM_MORPH_FEATURE_EXTRACTION,
  lgcaDepth: 2,
  adapterKernel: 3,
};

/**
 * The authors' network with two blocks in every stage, heads 2, 4, 8, 8 and the changes below, sized
 * for 2 CPU cores. Measured at 128², batch 1, one thread, with LDM features of these shapes
 * (minimum / median of 30, another training job on the second core): forward 0.037 / 0.044 s,
 * training step (forward, the loss with a small stand-in encoder, backward, Adam) 0.105 / 0.135 s;
 * 3.16 M parameters, 6.3 MB in float16. Without LGCA 0.021 / 0.027 s and 0.065 / 0.082 s; without
 * LDM features 0.020 / 0.025 s and 0.060 / 0.084 s.
 *
 * - embedDim 24: every transformer block holds 12·C² weights, so the 8·embedDim-wide last stage
 *   dominates; 24 keeps all of the authors' structure (MLP in the LGCA, both directions) at
 *   6.3 MB in float16, where 32 needs 11.1 MB.
 * - window 8: the 32² and 16² token grids divide into 8² windows (shifted by 4) without padding, 8²
 *   is one window and 4² one clamped window, both unshifted. The authors' 7 pads the grids to 35²,
 *   21², 14² (1.2×, 1.7×, 3× the tokens): 0.045 / 0.052 s forward, 0.124 / 0.157 s per step.
 * - adapterKernel 1: the U-Net features already see far; 3×3 adapters would add 1.0 M parameters
 *   (8.4 MB in float16), 0.7 M of them from 448 channels to the bottleneck's 192.
 * - ldmChannels: as the authors' taps (each level's input and output) of a 32-channel U-Net with
 *   multipliers 1, 2, 3, 4 (64, 96, 160, 224 channels per image), moving and fixed concatenated.
 */
export const LDM_MORPH: LdmMorphConfig = {
  ...LDM_MORPH_AUTHORS,
  embedDim: 24,
  depths: [2, 2, 2, 2],
  heads: [2, 4, 8, 8],
  window: 8,
  ldmChannels: [128, 192, 320, 448],
  adapterKernel: 1,
};

/** The number of Swin stages and of LDM feature scales. */
export const STAGES = 4;

/** One Swin stage: its width, token grid, the (clamped) window and shift, the grid padded to windows. */
export type StageLayout = StageGeometry;

function perStage(name: string, v: unknown): number[] {
  if (!Array.isArray(v) || v.length !== STAGES) throw invalid(name, `${STAGES} positive integers`, v);
  return v.map((x, s) => integer(`${name}[${s}]`, x, { min: 1 }));
}

function imageSize(v: unknown, multiple: number): [number, number] {
  const what = `two positive multiples of ${multiple} (patchSize·8)`;
  if (!Array.isArray(v) || v.length !== 2) throw invalid('imageSize', what, v);
  v.forEach((n) => {
    if (!Number.isInteger(n) || n < multiple || n % multiple !== 0) throw invalid('imageSize', what, v);
  });
  return [v[0], v[1]];
}

/** LDM_MORPH with `overrides`, checked (one-line DiffregError); lgca becomes false without ldmFeatures. */
export function ldmMorphConfig(overrides: Partial<LdmMorphConfig> = {}): LdmMorphConfig {
  const c = { ...LDM_MORPH, ...overrides };
  const ldmFeatures = bool('ldmFeatures', c.ldmFeatures);
  const lgca = bool('lgca', c.lgca) && ldmFeatures;
  const patchSize = integer('patchSize', c.patchSize, { min: 1 });
  const adapterKernel = integer('adapterKernel', c.adapterKernel, { min: 1 });
  if (adapterKernel % 2 === 0) throw invalid('adapterKernel', 'an odd integer', adapterKernel);
  const config: LdmMorphConfig = {
    imageSize: imageSize(c.imageSize, patchSize * 2 ** (STAGES - 1)),
    patchSize,
    embedDim: integer('embedDim', c.embedDim, { min: 1 }),
    depths: perStage('depths', c.depths),
    heads: perStage('heads', c.heads),
    window: integer('window', c.window, { min: 1 }),
    mlpRatio: number('mlpRatio', c.mlpRatio, { min: 0, exclusiveMin: true }),
    headChannels: integer('headChannels', c.headChannels, { min: 1 }),
    ldmFeatures,
    lgca,
    ldmChannels: perStage('ldmChannels', c.ldmChannels),
    featureExtraction: featureExtraction(c.featureExtraction, LDM2D_SCHEDULE.numTrainTimesteps),
    lgcaDepth: integer('lgcaDepth', c.lgcaDepth, { min: 1 }),
    adapterKernel,
  };
  // The half-resolution skip and decoder level have embedDim/2 channels.
  if (config.embedDim % 2 !== 0) throw invalid('embedDim', 'an even integer', config.embedDim);
  stageLayouts(config);
  return config;
}

/** The four stages' geometry; each grid is the previous one halved by patch merging, padded to windows. */
export function stageLayouts(c: LdmMorphConfig): StageLayout[] {
  return swinStages({
    grid: c.imageSize.map((n) => n / c.patchSize),
    embedDim: c.embedDim,
    depths: c.depths,
    heads: c.heads,
    window: [c.window, c.window],
    pad: true,
  });
}

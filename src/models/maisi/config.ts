/**
 * Constructor configurations of MAISI's networks, in MONAI's argument names turned camelCase, plus
 * the NVIDIA MAISI v1 "ddpm" values (MONAI tutorials, generation/maisi/configs/config_maisi3d-ddpm.json).
 * `fromMonaiArgs` accepts the snake_case dictionaries of MONAI/MAISI config files unchanged.
 */
import { DiffregError } from '../../util/errors.ts';
import { bool, integer, invalid, number } from '../../util/is.ts';

export interface UNetMaisiConfig {
  spatialDims: 3;
  inChannels: number;
  outChannels: number;
  numResBlocks: number[];
  numChannels: number[];
  attentionLevels: boolean[];
  normNumGroups: number;
  normEps: number;
  numHeadChannels: number[];
  includeTopRegionIndexInput: boolean;
  includeBottomRegionIndexInput: boolean;
  includeSpacingInput: boolean;
}

export interface AutoencoderMaisiConfig {
  spatialDims: 3;
  inChannels: number;
  outChannels: number;
  numResBlocks: number[];
  numChannels: number[];
  latentChannels: number;
  normNumGroups: number;
  normEps: number;
}

export const MAISI_V1_UNET: UNetMaisiConfig = {
  spatialDims: 3,
  inChannels: 4,
  outChannels: 4,
  numResBlocks: [2, 2, 2, 2],
  numChannels: [64, 128, 256, 512],
  attentionLevels: [false, false, true, true],
  normNumGroups: 32,
  normEps: 1e-6,
  numHeadChannels: [0, 0, 32, 32],
  includeTopRegionIndexInput: true,
  includeBottomRegionIndexInput: true,
  includeSpacingInput: true,
};

export const MAISI_V1_AUTOENCODER: AutoencoderMaisiConfig = {
  spatialDims: 3,
  inChannels: 1,
  outChannels: 1,
  numResBlocks: [2, 2, 2],
  numChannels: [64, 128, 256],
  latentChannels: 4,
  normNumGroups: 32,
  normEps: 1e-6,
};

/** MONAI options that select code paths this implementation does not have; they must keep these values. */
const UNSUPPORTED: Record<string, unknown> = {
  with_conditioning: false,
  cross_attention_dim: null,
  num_class_embeds: null,
  resblock_updown: false,
  include_fc: false,
  use_combined_linear: false,
  upcast_attention: false,
  transformer_num_layers: 1,
  include_modality_input: false,
  with_encoder_nonlocal_attn: false,
  with_decoder_nonlocal_attn: false,
  use_convtranspose: false,
};

/** MONAI options that only affect speed or memory (flash attention, split convolutions): accepted and ignored. */
const RUNTIME_ONLY = new Set([
  'use_flash_attention',
  'dropout_cattn',
  'num_splits',
  'dim_split',
  'norm_float16',
  'print_info',
  'save_mem',
  'use_checkpointing',
  '_target_',
]);

const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

function repeat(name: string, v: unknown, n: number): number[] {
  const list = typeof v === 'number' ? new Array<number>(n).fill(v) : v;
  if (!Array.isArray(list) || list.length !== n) throw invalid(name, `a number or ${n} numbers`, v);
  return list.map((x, i) => integer(`${name}[${i}]`, x, { min: 0 }));
}

/** Validates a U-Net configuration with MONAI's rules (and its messages' content). */
export function checkUNetConfig(c: UNetMaisiConfig): UNetMaisiConfig {
  const levels = c.numChannels.length;
  if (c.spatialDims !== 3) throw invalid('spatialDims', '3', c.spatialDims);
  c.numChannels.forEach((ch, i) => integer(`numChannels[${i}]`, ch, { min: 1 }));
  integer('normNumGroups', c.normNumGroups, { min: 1 });
  if (c.numChannels.some((ch) => ch % c.normNumGroups !== 0)) {
    throw invalid('numChannels', `multiples of normNumGroups ${c.normNumGroups}`, c.numChannels);
  }
  if (c.attentionLevels.length !== levels)
    throw invalid('attentionLevels', `${levels} booleans`, c.attentionLevels);
  const heads = repeat('numHeadChannels', c.numHeadChannels, levels);
  c.attentionLevels.forEach((a, i) => {
    if (a && (heads[i] < 1 || c.numChannels[i] % heads[i] !== 0)) {
      throw invalid(
        `numHeadChannels[${i}]`,
        `a divisor of numChannels[${i}] = ${c.numChannels[i]}`,
        heads[i],
      );
    }
  });
  return {
    ...c,
    numResBlocks: repeat('numResBlocks', c.numResBlocks, levels),
    numHeadChannels: heads,
    normEps: number('normEps', c.normEps, { min: 0, exclusiveMin: true }),
    inChannels: integer('inChannels', c.inChannels, { min: 1 }),
    outChannels: integer('outChannels', c.outChannels, { min: 1 }),
  };
}

export function checkAutoencoderConfig(c: AutoencoderMaisiConfig): AutoencoderMaisiConfig {
  if (c.spatialDims !== 3) throw invalid('spatialDims', '3', c.spatialDims);
  const levels = c.numChannels.length;
  c.numChannels.forEach((ch, i) => integer(`numChannels[${i}]`, ch, { min: 1 }));
  integer('normNumGroups', c.normNumGroups, { min: 1 });
  if (c.numChannels.some((ch) => ch % c.normNumGroups !== 0)) {
    throw invalid('numChannels', `multiples of normNumGroups ${c.normNumGroups}`, c.numChannels);
  }
  return {
    ...c,
    numResBlocks: repeat('numResBlocks', c.numResBlocks, levels),
    latentChannels: integer('latentChannels', c.latentChannels, { min: 1 }),
    normEps: number('normEps', c.normEps, { min: 0, exclusiveMin: true }),
  };
}

/**
 * Turns a MONAI/MAISI constructor dictionary (snake_case) into our configuration. Options that change
 * the network in ways this implementation does not support must keep MAISI's values; options that
 * only change speed or memory are ignored.
 */
export function fromMonaiArgs<T extends UNetMaisiConfig | AutoencoderMaisiConfig>(
  kind: 'unet' | 'autoencoder',
  args: Record<string, unknown>,
  base: T,
): T {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(args)) {
    if (key in UNSUPPORTED) {
      const want = UNSUPPORTED[key];
      if (value !== want) {
        throw new DiffregError(
          `${kind} config: ${key}=${JSON.stringify(value)} is not supported (MAISI uses ${JSON.stringify(want)})`,
        );
      }
      continue;
    }
    if (key === 'attention_levels' && kind === 'autoencoder') {
      if (!Array.isArray(value) || value.some((v) => v !== false)) {
        throw new DiffregError(
          `autoencoder config: attention_levels=${JSON.stringify(value)} is not supported (MAISI uses no attention)`,
        );
      }
      continue;
    }
    const name = camel(key);
    if (name in base) out[name] = value;
    else if (!RUNTIME_ONLY.has(key)) throw new DiffregError(`${kind} config: unknown option ${key}`);
  }
  if (kind === 'unet') {
    for (const k of ['includeTopRegionIndexInput', 'includeBottomRegionIndexInput', 'includeSpacingInput'])
      bool(k, out[k]);
    return checkUNetConfig(out as unknown as UNetMaisiConfig) as T;
  }
  return checkAutoencoderConfig(out as unknown as AutoencoderMaisiConfig) as T;
}

/**
 * The DiffuseReg denoiser's configuration (Zhuo & Shen, MICCAI 2024: a conditional Swin-UNETR), and
 * the window geometry of its four Swin stages derived from it.
 *
 * Axes are the tensor axes (w, h, d) of the network grid, voxel axes i, j, k; the authors' window
 * [2, 4, 4] in (D, H, W) is [4, 4, 2] here.
 */
import { fail } from '../../util/errors.ts';
import { bool, integer, invalid, number } from '../../util/is.ts';
import { swinStages, type StageGeometry } from '../blocks/swin.ts';

export interface DenoiserConfig {
  /** The network grid (w, h, d) in voxels. */
  gridSize: [number, number, number];
  /** Channels of the first Swin stage; stage s has featureSize·2^s. */
  featureSize: number;
  /** Swin blocks per stage (Swin-UNETR's decoder has four stages). */
  depths: number[];
  /** Attention heads per stage. */
  heads: number[];
  /** Attention window (w, h, d) in tokens, before Swin's clamping to small token grids. */
  window: [number, number, number];
  /** Patch embedding's kernel and stride. */
  patchSize: number;
  flowChannels: number;
  imageChannels: number;
  mlpRatio: number;
  /**
   * The flow branch's input (patch embedding and first residual block) also carries the moving and
   * fixed images as channels. Our addition: the authors' flow branch sees the images only through
   * window attention, where flow tokens are the only queries (see DIFFUSEREG_DENOISER).
   */
  imagesInFlowInput: boolean;
}

/**
 * The authors' structure at a width that trains on 2 CPU cores and ships in 25 MB: feature size 12
 * (8.3 MB in float16; 24 would be 33 MB, the 16×-wide bottleneck holding half the parameters) with
 * 12 channels per head (the authors' 3, 6, 12, 24 heads at width 12 would leave 4).
 */
export const DIFFUSEREG_DENOISER: DenoiserConfig = {
  gridSize: [64, 64, 16],
  featureSize: 12,
  depths: [2, 2, 2, 2],
  heads: [1, 2, 4, 8],
  window: [4, 4, 2],
  patchSize: 2,
  flowChannels: 3,
  imageChannels: 1,
  mlpRatio: 4,
  imagesInFlowInput: true,
};

function triple(name: string, v: unknown): [number, number, number] {
  if (!Array.isArray(v) || v.length !== 3) throw invalid(name, 'three integers (w, h, d)', v);
  return [0, 1, 2].map((a) => integer(`${name}[${a}]`, v[a], { min: 1 })) as [number, number, number];
}

function perStage(name: string, v: unknown): number[] {
  if (!Array.isArray(v) || v.length !== 4) throw invalid(name, "4 integers (Swin-UNETR's four stages)", v);
  return v.map((x, s) => integer(`${name}[${s}]`, x, { min: 1 }));
}

/** Channels of the flow branch's input: the noisy flow, and the images when imagesInFlowInput. */
export const flowInputChannels = (c: DenoiserConfig): number =>
  c.flowChannels + (c.imagesInFlowInput ? 2 * c.imageChannels : 0);

/** The configuration checked and completed from DIFFUSEREG_DENOISER; throws a one-line DiffregError. */
export function denoiserConfig(overrides: Partial<DenoiserConfig> = {}): DenoiserConfig {
  const c = { ...DIFFUSEREG_DENOISER, ...overrides };
  const config: DenoiserConfig = {
    gridSize: triple('gridSize', c.gridSize),
    featureSize: integer('featureSize', c.featureSize, { min: 1 }),
    depths: perStage('depths', c.depths),
    heads: perStage('heads', c.heads),
    window: triple('window', c.window),
    patchSize: integer('patchSize', c.patchSize, { min: 1 }),
    flowChannels: integer('flowChannels', c.flowChannels, { min: 1 }),
    imageChannels: integer('imageChannels', c.imageChannels, { min: 1 }),
    mlpRatio: number('mlpRatio', c.mlpRatio, { min: 0, exclusiveMin: true }),
    imagesInFlowInput: bool('imagesInFlowInput', c.imagesInFlowInput),
  };
  config.gridSize.forEach((s, a) => {
    if (s % config.patchSize !== 0)
      fail('gridSize', `axis ${a} (${s}) is not a multiple of patchSize ${config.patchSize}`);
  });
  stageGeometry(config);
  return config;
}

/** The four stages' geometry: grids halved by patch merging (odd sizes padded), windows dividing them. */
export function stageGeometry(c: DenoiserConfig): StageGeometry[] {
  return swinStages({
    grid: c.gridSize.map((s) => s / c.patchSize),
    embedDim: c.featureSize,
    depths: c.depths,
    heads: c.heads,
    window: c.window,
    pad: false,
  });
}

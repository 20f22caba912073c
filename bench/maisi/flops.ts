/** Analytic FLOP counts of the MAISI networks (convolutions, linear layers, attention products). */
import {
  MAISI_V1_AUTOENCODER,
  MAISI_V1_UNET,
  type AutoencoderMaisiConfig,
  type UNetMaisiConfig,
} from '../../src/models/index.ts';

export const conv = (cin: number, cout: number, k: number, voxelsOut: number) =>
  2 * cin * cout * k ** 3 * voxelsOut;

/** Analytic forward GFLOP of the MAISI U-Net at a latent of `voxels` voxels (per level /8). */
export function unetGflop(voxels: number, config: UNetMaisiConfig = MAISI_V1_UNET): number {
  const c = config.numChannels;
  const temb = c[0] * 4 * 4; // time + top + bottom + spacing embeddings
  let flops = conv(config.inChannels, c[0], 3, voxels);
  const res = (cin: number, cout: number, v: number) =>
    conv(cin, cout, 3, v) +
    conv(cout, cout, 3, v) +
    (cin !== cout ? conv(cin, cout, 1, v) : 0) +
    2 * temb * cout;
  const attn = (ch: number, v: number) => 3 * 2 * v * ch * ch + 2 * 2 * v * v * ch;
  const levels = c.length;
  const skips: number[] = [c[0]];
  let ch = c[0];
  for (let i = 0; i < levels; i++) {
    const v = voxels / 8 ** i;
    for (let r = 0; r < config.numResBlocks[i]; r++) {
      flops += res(ch, c[i], v) + (config.attentionLevels[i] ? attn(c[i], v) : 0);
      ch = c[i];
      skips.push(ch);
    }
    if (i < levels - 1) {
      flops += conv(ch, ch, 3, v / 8);
      skips.push(ch);
    }
  }
  const vMid = voxels / 8 ** (levels - 1);
  flops += 2 * res(ch, ch, vMid) + attn(ch, vMid);
  for (let i = 0; i < levels; i++) {
    const level = levels - 1 - i;
    const v = voxels / 8 ** level;
    for (let r = 0; r < config.numResBlocks[level] + 1; r++) {
      const skip = skips.pop() as number;
      flops += res(ch + skip, c[level], v) + (config.attentionLevels[level] ? attn(c[level], v) : 0);
      ch = c[level];
    }
    if (i < levels - 1) flops += conv(ch, ch, 3, v * 8);
  }
  return (flops + conv(c[0], config.outChannels, 3, voxels)) / 1e9;
}

/** Analytic GFLOP of the MAISI encoder (+ quant convs) for an input of `voxels` voxels. */
export function encoderGflop(voxels: number, config: AutoencoderMaisiConfig = MAISI_V1_AUTOENCODER): number {
  const c = config.numChannels;
  let flops = conv(config.inChannels, c[0], 3, voxels);
  let ch = c[0];
  let v = voxels;
  c.forEach((out, level) => {
    for (let r = 0; r < config.numResBlocks[level]; r++) {
      flops += conv(ch, out, 3, v) + conv(out, out, 3, v) + (ch !== out ? conv(ch, out, 1, v) : 0);
      ch = out;
    }
    if (level < c.length - 1) {
      v /= 8;
      flops += conv(ch, ch, 3, v);
    }
  });
  const z = config.latentChannels;
  return (flops + conv(ch, z, 3, v) + 2 * conv(z, z, 1, v)) / 1e9;
}

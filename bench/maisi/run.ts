/**
 * bench/maisi: the full-size MAISI v1 networks (random weights: timing only) on this machine.
 *   - one U-Net forward on a 1×4×64×64×32 latent;
 *   - one autoencoder encode of 1×1×256×256×128 (whole-volume path);
 *   - one autoencoder encode of 1×1×512×512×128 (streaming path) with its peak resident memory;
 *   - the conv3d reference figure (1×64×64³, 64→64, 3³) measured in the same run.
 * GFLOP counts are analytic (convolutions, linear layers and attention products).
 * Usage: node --import tsx bench/maisi/run.ts [--skip-large]
 * Appends its table to bench/maisi/RESULTS.md.
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { F, engineInfo, getNumThreads, noGrad, randn, tensor, tidy } from '../../src/engine/index.ts';
import {
  AutoencoderKlMaisi,
  DiffusionModelUNetMaisi,
  MAISI_V1_AUTOENCODER,
  MAISI_V1_UNET,
  encodeStreaming,
  maisiConditioning,
} from '../../src/models/index.ts';

const skipLarge = process.argv.includes('--skip-large');

/** Peak resident memory of this process so far, from /proc (VmHWM), in GB. */
function peakRssGb(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1e6 : NaN;
}

function time<T>(fn: () => T): { value: T; seconds: number } {
  const t0 = performance.now();
  const value = fn();
  return { value, seconds: (performance.now() - t0) / 1000 };
}

const conv = (cin: number, cout: number, k: number, voxelsOut: number) => 2 * cin * cout * k ** 3 * voxelsOut;

/** Analytic forward GFLOP of the MAISI U-Net at a latent of `voxels` voxels (per level /8). */
function unetGflop(voxels: number): number {
  const c = MAISI_V1_UNET.numChannels;
  const temb = c[0] * 4 * 4;
  let flops = conv(4, c[0], 3, voxels);
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
    for (let r = 0; r < 2; r++) {
      flops += res(ch, c[i], v) + (MAISI_V1_UNET.attentionLevels[i] ? attn(c[i], v) : 0);
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
    for (let r = 0; r < 3; r++) {
      const skip = skips.pop() as number;
      flops += res(ch + skip, c[level], v) + (MAISI_V1_UNET.attentionLevels[level] ? attn(c[level], v) : 0);
      ch = c[level];
    }
    if (i < levels - 1) flops += conv(ch, ch, 3, v * 8);
  }
  return (flops + conv(c[0], 4, 3, voxels)) / 1e9;
}

/** Analytic GFLOP of the MAISI encoder (+ quant convs) for an input of `voxels` voxels. */
function encoderGflop(voxels: number): number {
  const c = MAISI_V1_AUTOENCODER.numChannels;
  let flops = conv(1, c[0], 3, voxels);
  let ch = c[0];
  let v = voxels;
  c.forEach((out, level) => {
    for (let r = 0; r < 2; r++) {
      flops += conv(ch, out, 3, v) + conv(out, out, 3, v) + (ch !== out ? conv(ch, out, 1, v) : 0);
      ch = out;
    }
    if (level < c.length - 1) {
      v /= 8;
      flops += conv(ch, ch, 3, v);
    }
  });
  return (flops + conv(ch, 4, 3, v) + 2 * conv(4, 4, 1, v)) / 1e9;
}

const rows: [string, string, string, string, string][] = [];

const conv3d = noGrad(() => {
  const x = randn([1, 64, 64, 64, 64]);
  const w = randn([64, 64, 3, 3, 3]).mul(0.01);
  tidy(() => F.conv3d(x, w, null, { padding: 1 })); // warm-up
  const runs = [0, 1, 2].map(
    () => time(() => tidy(() => F.conv3d(x, w, null, { padding: 1 }).sum().item())).seconds,
  );
  x.dispose();
  w.dispose();
  return conv(64, 64, 3, 64 ** 3) / 1e9 / Math.min(...runs);
});
rows.push([
  'conv3d 1×64×64³, 64→64, 3³',
  (conv(64, 64, 3, 64 ** 3) / 1e9).toFixed(1),
  '',
  conv3d.toFixed(0),
  '1.00',
]);

const unet = new DiffusionModelUNetMaisi(MAISI_V1_UNET).eval();
noGrad(() => {
  const x = randn([1, 4, 64, 64, 32]);
  const t = tensor([20], { dtype: 'int64' });
  const c = maisiConditioning('chest', 'chest', [0.7, 0.7, 1.25]);
  tidy(() => unet.forward(x, t, c)); // warm-up
  const run = time(() => tidy(() => unet.forward(x, t, c).sum().item()));
  const g = unetGflop(64 * 64 * 32);
  rows.push([
    'U-Net forward 1×4×64×64×32',
    g.toFixed(1),
    run.seconds.toFixed(2),
    (g / run.seconds).toFixed(0),
    (g / run.seconds / conv3d).toFixed(2),
  ]);
});
unet.dispose();

const vae = new AutoencoderKlMaisi(MAISI_V1_AUTOENCODER).eval();
noGrad(() => {
  const x = randn([1, 1, 256, 256, 128]);
  const run = time(() => tidy(() => vae.encode(x).mu.sum().item()));
  const g = encoderGflop(256 * 256 * 128);
  rows.push([
    'VAE encode 1×1×256×256×128',
    g.toFixed(0),
    run.seconds.toFixed(1),
    (g / run.seconds).toFixed(0),
    (g / run.seconds / conv3d).toFixed(2),
  ]);
  x.dispose();
});
const peakBeforeLarge = peakRssGb();
let large = '';
if (!skipLarge) {
  noGrad(() => {
    const x = randn([1, 1, 512, 512, 128]);
    const run = time(() => tidy(() => encodeStreaming(vae, x).mu.sum().item()));
    const g = encoderGflop(512 * 512 * 128);
    rows.push([
      'VAE encode 1×1×512×512×128 (streaming)',
      g.toFixed(0),
      run.seconds.toFixed(0),
      (g / run.seconds).toFixed(0),
      (g / run.seconds / conv3d).toFixed(2),
    ]);
    x.dispose();
  });
  large = `peak resident memory: ${peakRssGb().toFixed(2)} GB for the whole run (${peakBeforeLarge.toFixed(2)} GB before the 512×512×128 encode)`;
}

const header = '| work | GFLOP | seconds | GFLOP/s | ratio to conv3d |\n|---|---|---|---|---|';
const table = [header, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, libtorch ${engineInfo().version}, ${getNumThreads()} threads`;
const entry = [
  `## ${new Date().toISOString()}`,
  '',
  `machine: ${machine}`,
  `command: node --import tsx bench/maisi/run.ts${skipLarge ? ' --skip-large' : ''}`,
  '',
  table,
  '',
  large || `peak resident memory: ${peakRssGb().toFixed(2)} GB`,
  '',
].join('\n');
process.stdout.write(`${entry}\n`);
appendFileSync(fileURLToPath(new URL('./RESULTS.md', import.meta.url)), `${entry}\n`);

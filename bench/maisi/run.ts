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
import { machineLine } from '../machine.ts';
import { appendFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { F, noGrad, randn, tensor, tidy } from '../../src/engine/index.ts';
import { conv, encoderGflop, unetGflop } from './flops.ts';
import {
  AutoencoderKlMaisi,
  DiffusionModelUNetMaisi,
  MAISI_V1_AUTOENCODER,
  MAISI_V1_UNET,
  encodeImage,
  encodeStreaming,
  maisiConditioning,
} from '../../src/models/index.ts';
import { peakRssBytes } from '../../src/util/memory.ts';

const skipLarge = process.argv.includes('--skip-large');

/** Peak resident memory of this process so far (VmHWM), in GiB. */
const peakRssGiB = (): number => (peakRssBytes() ?? NaN) / 2 ** 30;

function time<T>(fn: () => T): { value: T; seconds: number } {
  const t0 = performance.now();
  const value = fn();
  return { value, seconds: (performance.now() - t0) / 1000 };
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
  const run = time(() => tidy(() => encodeImage(vae, x).mu.sum().item()));
  const g = encoderGflop(256 * 256 * 128);
  rows.push([
    'VAE encode 1×1×256×256×128 (encodeImage: streams above 1e8 activation elements)',
    g.toFixed(0),
    run.seconds.toFixed(1),
    (g / run.seconds).toFixed(0),
    (g / run.seconds / conv3d).toFixed(2),
  ]);
  x.dispose();
});
const peakBeforeLarge = peakRssGiB();
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
  large = `peak resident memory: ${peakRssGiB().toFixed(2)} GiB for the whole run (${peakBeforeLarge.toFixed(2)} GiB before the 512×512×128 encode)`;
}

const header = '| work | GFLOP | seconds | GFLOP/s | ratio to conv3d |\n|---|---|---|---|---|';
const table = [header, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
const machine = machineLine();
const entry = [
  `## ${new Date().toISOString()}`,
  '',
  `machine: ${machine}`,
  `command: node --import tsx bench/maisi/run.ts${skipLarge ? ' --skip-large' : ''}`,
  '',
  table,
  '',
  large || `peak resident memory: ${peakRssGiB().toFixed(2)} GiB`,
  '',
].join('\n');
process.stdout.write(`${entry}\n`);
appendFileSync(fileURLToPath(new URL('./RESULTS.md', import.meta.url)), `${entry}\n`);

/**
 * The default model's evaluation for its model card: autoencoder reconstruction quality (PSNR, and a
 * 3D SSIM with a Gaussian window) of held-out volumes on the network grid, unconditional DDPM samples,
 * and PNG figures of mid-slices.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cat, F, Generator, noGrad, randn, tensor, tidy, type Tensor } from '../../engine/index.ts';
import { writeFileAtomic } from '../../util/atomic.ts';
import { fail } from '../../util/errors.ts';
import { encodePng } from '../../util/png.ts';
import type { ProgressFn } from '../../util/progress.ts';
import type { MaisiLatentDiffusion } from '../maisi/latent-diffusion.ts';
import { loadDefaultModel } from './model.ts';
import { maisiConditioning, type BodyRegion } from '../maisi/unet.ts';
import { DDPMScheduler } from '../schedulers/ddpm.ts';
import type { DataGroup, LoadedCase } from './data.ts';
import { readLog, type LogEntry } from '../training/loop.ts';

/** Peak signal-to-noise ratio (dB) of images with intensities in [0, 1]. */
export function psnr(a: Tensor, b: Tensor): number {
  const mse = tidy(() => F.mseLoss(a, b).item());
  return 10 * Math.log10(1 / mse);
}

/**
 * Mean structural similarity (Wang et al. 2004) of two (1, 1, X, Y, Z) images in [0, 1], with a
 * separable Gaussian window (σ = 1.5 voxels, 11 wide) over the voxels where it fits entirely.
 */
export function ssim3d(a: Tensor, b: Tensor, sigma = 1.5, size = 11): number {
  if (a.ndim !== 5 || a.shape.slice(2).some((n) => n < size))
    fail('ssim', `expected (1, 1, X, Y, Z) with every axis ≥ ${size}, got (${a.shape.join(', ')})`);
  const half = (size - 1) / 2;
  const w = Array.from({ length: size }, (_, i) => Math.exp(-((i - half) ** 2) / (2 * sigma * sigma)));
  const total = w.reduce((s, v) => s + v, 0);
  const weights = w.map((v) => v / total);
  return noGrad(() =>
    tidy(() => {
      const kernels = [
        [size, 1, 1],
        [1, size, 1],
        [1, 1, size],
      ].map((shape) => tensor(weights).reshape(1, 1, ...shape));
      const blur = (x: Tensor) => kernels.reduce((h, k) => F.conv3d(h, k), x);
      const [c1, c2] = [0.01 ** 2, 0.03 ** 2];
      const ma = blur(a);
      const mb = blur(b);
      const va = blur(a.square()).sub(ma.square());
      const vb = blur(b.square()).sub(mb.square());
      const cov = blur(a.mul(b)).sub(ma.mul(mb));
      const num = ma.mul(mb).mul(2).add(c1).mul(cov.mul(2).add(c2));
      const den = ma.square().add(mb.square()).add(c1).mul(va.add(vb).add(c2));
      return num.div(den).mean().item();
    }),
  );
}

/** The case's image on the network grid, restricted to its k range. */
export function networkGridImage(c: LoadedCase): Tensor {
  return tidy(() => {
    const x = F.interpolate(c.image, { size: c.grid, mode: 'trilinear', alignCorners: false });
    const k0 = Math.round(c.kRange[0] * c.grid[2]);
    const k1 = Math.round(c.kRange[1] * c.grid[2]);
    return x.narrow(4, k0, k1 - k0).contiguous();
  });
}

export interface ReconstructionScore {
  id: string;
  group: DataGroup;
  psnr: number;
  ssim: number;
}

/** decode(encode(x).μ), clipped to [0, 1]. */
export function reconstruct(model: MaisiLatentDiffusion, x: Tensor): Tensor {
  return noGrad(() => tidy(() => model.autoencoder.reconstruct(x).clamp(0, 1)));
}

/** A 2D slice (rows × cols, row-major) as bytes scaled from [0, 1]. */
interface Slice {
  width: number;
  height: number;
  values: Float32Array;
}

/** The axial (middle k) slice of (1, 1, X, Y, Z), anterior at the top, right of the patient on the left. */
function axialMidSlice(x: Tensor): Slice {
  const [nx, ny, nz] = x.shape.slice(2);
  const s = tidy(() =>
    x
      .select(4, Math.floor(nz / 2))
      .reshape(nx, ny)
      .t()
      .flip(0)
      .contiguous(),
  );
  const values = s.toTypedArray() as Float32Array;
  s.dispose();
  return { width: nx, height: ny, values };
}

/** Tiles slices into a grid of `cell`² cells (nearest-neighbour scaling keeping the aspect ratio). */
function figure(rows: Slice[][], cell: number): Buffer {
  const cols = Math.max(...rows.map((r) => r.length));
  const gap = 4;
  const width = cols * cell + (cols + 1) * gap;
  const height = rows.length * cell + (rows.length + 1) * gap;
  const pixels = new Uint8Array(width * height).fill(255);
  rows.forEach((row, r) =>
    row.forEach((s, c) => {
      const f = Math.min(cell / s.width, cell / s.height);
      const [w, h] = [Math.round(s.width * f), Math.round(s.height * f)];
      const x0 = gap + c * (cell + gap) + Math.floor((cell - w) / 2);
      const y0 = gap + r * (cell + gap) + Math.floor((cell - h) / 2);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const v =
            s.values[
              Math.min(s.height - 1, Math.floor(y / f)) * s.width + Math.min(s.width - 1, Math.floor(x / f))
            ];
          pixels[(y0 + y) * width + x0 + x] = Math.round(255 * Math.min(1, Math.max(0, v)));
        }
      }
    }),
  );
  return encodePng(width, height, pixels, 1);
}

export interface SampleSpec {
  region: { top: BodyRegion; bottom: BodyRegion };
  spacing: [number, number, number];
}

/** DDPM ancestral sampling (all 1000 steps) of latents (B, 4, s, s, s), decoded to images in [0, 1]. */
export function sampleImages(
  model: MaisiLatentDiffusion,
  specs: readonly SampleSpec[],
  latentSize: number,
  seed: number,
  progress?: ProgressFn,
): Tensor {
  const scheduler = new DDPMScheduler();
  const generator = new Generator(seed);
  const c = model.autoencoder.config.latentChannels;
  return noGrad(() => {
    let x = randn([specs.length, c, latentSize, latentSize, latentSize], { generator }).keep();
    const cond = tidy(() => {
      const rows = specs.map((s) => maisiConditioning(s.region.top, s.region.bottom, s.spacing));
      return {
        topRegionIndex: cat(rows.map((r) => r.topRegionIndex)),
        bottomRegionIndex: cat(rows.map((r) => r.bottomRegionIndex)),
        spacing: cat(rows.map((r) => r.spacing)),
      };
    });
    const T = scheduler.numTrainTimesteps;
    for (let t = T - 1; t >= 0; t--) {
      const next = tidy(() => {
        const eps = model.unet.forward(
          x,
          scheduler.timestepTensor(new Array<number>(specs.length).fill(t)),
          cond,
        );
        return scheduler.step(eps, t, x, generator).sample;
      });
      x.dispose();
      x = next.keep();
      progress?.({ stage: 'sampling', done: T - t, total: T });
    }
    const images = tidy(() => model.autoencoder.decode(x.div(model.scaleFactor)).clamp(0, 1));
    x.dispose();
    return images;
  });
}

const mean = (v: number[]) => v.reduce((s, x) => s + x, 0) / v.length;
const sd = (v: number[]) =>
  v.length > 1 ? Math.sqrt(v.reduce((s, x) => s + (x - mean(v)) ** 2, 0) / (v.length - 1)) : 0;

/** Mean of the last `n` training losses and the last validation loss of a stage's log. */
function finalLosses(
  log: readonly LogEntry[],
  n = 50,
): { step: number; train: number; validation?: number; seconds: number } {
  const tail = log.slice(-n);
  const validated = log.filter((e) => e.validation !== undefined);
  const last = log[log.length - 1];
  return {
    step: last.step,
    train: mean(tail.map((e) => e.loss)),
    validation: validated[validated.length - 1]?.validation,
    seconds: last.seconds,
  };
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

function readEvaluation(modelDir: string): Record<string, unknown> {
  const path = join(modelDir, 'evaluation.json');
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>) : {};
}

function writeEvaluation(modelDir: string, update: Record<string, unknown>): Record<string, unknown> {
  const result = { ...readEvaluation(modelDir), ...update };
  writeFileAtomic(join(modelDir, 'evaluation.json'), JSON.stringify(result, null, 2) + '\n');
  return result;
}

/**
 * Autoencoder reconstruction quality of the shipped model in `modelDir` on held-out volumes (every
 * validation case of a group, but only the ED frame of one heart per diagnostic group, to bound the
 * time); writes reconstructions.png (held-out mid-slices above their reconstructions) and the
 * `reconstruction` part of evaluation.json, tied to the autoencoder file by its hash.
 */
export function evaluateReconstructions(
  modelDir: string,
  validation: readonly LoadedCase[],
  progress?: ProgressFn,
): Record<string, unknown> {
  const model = loadDefaultModel(modelDir);
  const hearts = ['patient020', 'patient040', 'patient060', 'patient080', 'patient100'].map(
    (p) => `cardiac-acdc/${p}/ed`,
  );
  const chosen = validation.filter((c) => c.group !== 'heart' || hearts.includes(c.id));
  const scores: ReconstructionScore[] = [];
  const originals: Slice[] = [];
  const reconstructions: Slice[] = [];
  const shown: DataGroup[] = [];
  chosen.forEach((c, i) => {
    const x = networkGridImage(c);
    const r = reconstruct(model, x);
    scores.push({ id: c.id, group: c.group, psnr: psnr(x, r), ssim: ssim3d(x, r) });
    if (!shown.includes(c.group)) {
      shown.push(c.group);
      originals.push(axialMidSlice(x));
      reconstructions.push(axialMidSlice(r));
    }
    x.dispose();
    r.dispose();
    progress?.({ stage: 'reconstructing held-out volumes', done: i + 1, total: chosen.length });
  });
  const byGroup = Object.fromEntries(
    shown.map((g) => {
      const s = scores.filter((x) => x.group === g);
      const [p, q] = [s.map((x) => x.psnr), s.map((x) => x.ssim)];
      return [g, { n: s.length, psnrMean: mean(p), psnrSd: sd(p), ssimMean: mean(q), ssimSd: sd(q) }];
    }),
  );
  writeFileAtomic(join(modelDir, 'reconstructions.png'), figure([originals, reconstructions], 256));
  return writeEvaluation(modelDir, {
    reconstruction: {
      autoencoderSha256: sha256(join(modelDir, 'autoencoder.safetensors')),
      figure: { rows: ['held-out originals', 'reconstructions'], columns: shown },
      byGroup,
      cases: scores,
    },
  });
}

/**
 * Three DDPM samples (head, heart, thorax conditioning; spacing of a held-out case of each) from the
 * shipped model, written to samples.png, and the final losses of the run in `runDir`, with its loss
 * curves copied beside the weights.
 */
export function evaluateSamples(
  modelDir: string,
  runDir: string,
  validation: readonly LoadedCase[],
  progress?: ProgressFn,
): Record<string, unknown> {
  const model = loadDefaultModel(modelDir);
  const spacingOf = (g: DataGroup) => (validation.find((c) => c.group === g) as LoadedCase).spacing;
  const specs: SampleSpec[] = [
    { region: { top: 'head', bottom: 'head' }, spacing: spacingOf('brain') },
    { region: { top: 'chest', bottom: 'chest' }, spacing: spacingOf('heart') },
    { region: { top: 'chest', bottom: 'abdomen' }, spacing: spacingOf('ct') },
  ];
  const samples = sampleImages(model, specs, 16, 0, progress);
  const slices = samples.unbind(0).map((s) => {
    const slice = axialMidSlice(s.unsqueeze(0));
    s.dispose();
    return slice;
  });
  samples.dispose();
  writeFileAtomic(join(modelDir, 'samples.png'), figure([slices], 256));
  const training: Record<string, unknown> = {};
  for (const [stage, name] of [
    ['autoencoder', 'autoencoder'],
    ['diffusion', 'unet'],
  ]) {
    const dir = join(runDir, stage);
    if (!existsSync(join(dir, 'log.jsonl'))) continue;
    copyFileSync(join(dir, 'loss.svg'), join(modelDir, `${name}-loss.svg`));
    training[name] = finalLosses(readLog(join(dir, 'log.jsonl')));
  }
  return writeEvaluation(modelDir, {
    samples: { unetSha256: sha256(join(modelDir, 'unet.safetensors')), latentSize: 16, specs },
    training,
  });
}

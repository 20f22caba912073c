/**
 * Watching DiffuseReg sample: every K steps of the first sample, the moving image warped by the
 * predicted field φ̂₀ joins a strip — fixed | warped at each recorded step … | moving, the middle axial
 * slice (d axis) of the network grid, i across and j down, intensities clamped to [0, 1] — kept in
 * memory for the benchmark report. Given a folder, φ̂₀ and the warped image also go there as NIfTI on
 * the network grid (the grid the sampler sees, so nothing is resampled while it runs) and `strip.png`
 * is rewritten at each record, so a person can watch the registration form. The strip has no step
 * labels (the repository has no text renderer); the files' names and `steps` carry them.
 */
import { join } from 'node:path';
import { noGrad, tidy, type Tensor } from '../../engine/index.ts';
import { fieldFromVoxelUnits, tensorToVoxels, type Grid } from '../../geometry/index.ts';
import { writeNifti } from '../../io/nifti.ts';
import { spatialTransformer } from '../../models/losses/index.ts';
import { writeFileAtomic } from '../../util/atomic.ts';
import { fail } from '../../util/errors.ts';
import { integer, invalid } from '../../util/is.ts';
import { encodePng } from '../../util/png.ts';
import type { ImagePair } from './data.ts';
import type { SamplingStep } from './sample.ts';

export interface WatchOptions {
  /** Where the files go; without it the strip is only kept in memory. */
  dir?: string;
  /** Record every this many steps (and the last step). */
  every: number;
  /** The network grid placed over the fixed image (the files' geometry). */
  grid: Grid;
  /** The pair on the network grid, (1, 1, w, h, d) each. */
  images: ImagePair;
}

/** The middle axial slice of a (1, 1, w, h, d) image as grey bytes, i across and j down. */
function axialSlice(image: Tensor): Uint8Array {
  const [w, h, d] = image.shape.slice(2);
  const values = tidy(() =>
    image
      .select(4, Math.floor(d / 2))
      .reshape([w, h])
      .float()
      .toTypedArray(),
  ) as Float32Array;
  const grey = new Uint8Array(w * h);
  for (let j = 0; j < h; j++)
    for (let i = 0; i < w; i++)
      grey[j * w + i] = Math.round(255 * Math.min(1, Math.max(0, values[i * h + j])));
  return grey;
}

/** Panels of w × h side by side. */
function strip(panels: Uint8Array[], w: number, h: number): Buffer {
  const width = panels.length * w;
  const pixels = new Uint8Array(width * h);
  panels.forEach((panel, n) => {
    for (let j = 0; j < h; j++) pixels.set(panel.subarray(j * w, (j + 1) * w), j * width + n * w);
  });
  return encodePng(width, h, pixels, 1);
}

export interface Watch {
  onStep: (s: SamplingStep) => void;
  /** The steps recorded so far. */
  steps: number[];
  /** The strip of the steps recorded so far, as PNG. */
  strip(): Buffer;
}

/**
 * Records the first sample every `every` steps and at its last step; with a folder also writes
 * `step-NNNN-field.nii.gz` (world-mm displacement), `step-NNNN-warped.nii.gz` and `strip.png`.
 */
export function watchSampling(o: WatchOptions): Watch {
  if (o.dir !== undefined && (typeof o.dir !== 'string' || !o.dir))
    throw invalid('watch dir', 'a folder path', o.dir);
  const every = integer('every', o.every, { min: 1 });
  const [w, h, d] = o.grid.dims;
  for (const [name, image] of Object.entries(o.images)) {
    if (image.shape.join() !== [1, 1, w, h, d].join())
      fail(
        `watch ${name} image`,
        `expected [1, 1, ${w}, ${h}, ${d}] (the grid), got [${image.shape.join(', ')}]`,
      );
  }
  const fixed = axialSlice(o.images.fixed);
  const moving = axialSlice(o.images.moving);
  const warped: Uint8Array[] = [];
  const steps: number[] = [];
  const pictured = () => strip([fixed, ...warped, moving], w, h);
  const onStep = (s: SamplingStep) => {
    if (s.sample !== 0 || (s.step % every !== 0 && !s.last)) return;
    steps.push(s.step);
    noGrad(() =>
      tidy(() => {
        const u = s.prediction;
        const image = spatialTransformer(o.images.moving, u);
        warped.push(axialSlice(image));
        if (o.dir === undefined) return;
        const stem = join(o.dir, `step-${String(s.step).padStart(4, '0')}`);
        writeNifti(
          `${stem}-field.nii.gz`,
          fieldFromVoxelUnits(o.grid.withData(tensorToVoxels(u.squeeze(0)), 3)),
        );
        writeNifti(`${stem}-warped.nii.gz`, o.grid.withData(tensorToVoxels(image.squeeze(0))));
      }),
    );
    if (o.dir !== undefined) writeFileAtomic(join(o.dir, 'strip.png'), pictured());
  };
  return { onStep, steps, strip: pictured };
}

/**
 * ACDC as LDM-Morph trains and is evaluated on it: every slice of each patient's ED and ES frames
 * (whole, uncropped slices, as users give them) on the network grid of its ED slice, with the labels,
 * cached in one safetensors file in the run folder so that resumed runs and later stages do not read
 * the volumes again. Slices without image content (max = min in either frame) are left out.
 *   LDM: the ED and ES images of every slice of the training patients (acdcSplit);
 *   network: per patient and slice the (ED, ES) pair, either frame fixed, both flipped alike;
 *   evaluation: each validation patient's mid-ventricular slice (middleSliceOf the ED labels, LV).
 */
import { existsSync } from 'node:fs';
import { readSafetensors, writeSafetensors, type RawTensor } from '../../engine/checkpoint/index.ts';
import { Tensor, tidy } from '../../engine/index.ts';
import { acdcDataset, acdcSplit, type AcdcOptions } from '../../data/acdc.ts';
import type { RegistrationDataset } from '../../data/dataset.ts';
import { middleSliceOf, volumeSlice } from '../../data/slices.ts';
import type { Random } from '../../geometry/random.ts';
import { rawOf } from '../../models/training/checkpoint.ts';
import { fail } from '../../util/errors.ts';
import { stageReporter, type ProgressFn } from '../../util/progress.ts';
import { SLICE_CONTENT_FRACTION, sliceGrid, sliceImageOnGrid, sliceLabelsOnGrid } from './grid.ts';

/** ACDC's LV cavity label: its middle slice is the mid-ventricular slice. */
const LV = 3;

/** One slice of a patient on its network grid: images (1, 1, H, W) in [0, 1], labels 0–3 as float32. */
export interface AcdcSlice {
  id: string;
  slice: number;
  ed: Tensor;
  es: Tensor;
  edLabels: Tensor;
  esLabels: Tensor;
}

export interface AcdcSlices {
  slices: AcdcSlice[];
  /** Each patient's mid-ventricular slice index. */
  middle: Record<string, number>;
}

const PARTS = ['ed', 'es', 'edLabels', 'esLabels'] as const;

async function readPatient(
  dataset: RegistrationDataset,
  id: string,
  imageSize: readonly [number, number],
): Promise<{ slices: AcdcSlice[]; middle: number }> {
  const c = await dataset.load(id);
  const slices: AcdcSlice[] = [];
  for (let k = 0; k < c.fixed.dims[2]; k++) {
    const fixed = volumeSlice(c.fixed, k);
    const grid = sliceGrid(fixed, imageSize);
    const ed = sliceImageOnGrid(fixed, grid, `${id} ED slice ${k}`);
    const es = sliceImageOnGrid(volumeSlice(c.moving, k), grid, `${id} ES slice ${k}`);
    if (ed && es) {
      const labels = (v: typeof c.fixedLabels) => sliceLabelsOnGrid(volumeSlice(v!, k), grid);
      slices.push({
        id,
        slice: k,
        ed,
        es,
        edLabels: labels(c.fixedLabels),
        esLabels: labels(c.movingLabels),
      });
    } else {
      ed?.dispose();
      es?.dispose();
    }
  }
  return { slices, middle: middleSliceOf(c.fixedLabels!, LV) };
}

/**
 * The slices of the ACDC patients `ids` on network grids of `imageSize`, from the cache at `cachePath`
 * when it holds them on the same grids, otherwise read and written there. Slices come in the same order
 * either way (the file keeps the order they were written in), so a resumed run draws the same pairs.
 */
export async function acdcSlicesOnNetworkGrid(
  ids: readonly string[],
  cachePath: string,
  imageSize: readonly [number, number],
  options: Pick<AcdcOptions, 'root'> = {},
  progress?: ProgressFn,
): Promise<AcdcSlices> {
  const gridKey = JSON.stringify({ imageSize, content: SLICE_CONTENT_FRACTION });
  if (existsSync(cachePath)) {
    const { tensors, metadata } = readSafetensors(cachePath);
    const middle = JSON.parse(metadata.middle ?? '{}') as Record<string, number>;
    if (metadata.grid === gridKey && ids.every((id) => id in middle)) {
      const wanted = new Set(ids);
      const slices: AcdcSlice[] = [];
      for (const name of tensors.keys()) {
        const [id, k, part] = name.split('.');
        if (part !== 'ed' || !wanted.has(id)) continue;
        const get = (p: string) => {
          const r = tensors.get(`${id}.${k}.${p}`) as RawTensor;
          return tidy(() => Tensor.fromBytes(r.data, r.dtype, r.shape).float()).keep();
        };
        slices.push({
          id,
          slice: Number(k),
          ...(Object.fromEntries(PARTS.map((p) => [p, get(p)])) as Omit<AcdcSlice, 'id' | 'slice'>),
        });
      }
      return { slices, middle: Object.fromEntries(ids.map((id) => [id, middle[id]])) };
    }
  }
  const dataset = acdcDataset({ root: options.root, cropMargin: 0 });
  const report = stageReporter(progress, 'resampling ACDC slices onto their network grids', ids.length);
  const slices: AcdcSlice[] = [];
  const middle: Record<string, number> = {};
  for (const [n, id] of ids.entries()) {
    const patient = await readPatient(dataset, id, imageSize);
    slices.push(...patient.slices);
    middle[id] = patient.middle;
    report(n + 1);
  }
  const raw = slices.flatMap((s) =>
    PARTS.map((p): [string, RawTensor] => [
      `${s.id}.${s.slice}.${p}`,
      tidy(() => rawOf(p.endsWith('Labels') ? s[p].to('uint8') : s[p])),
    ]),
  );
  writeSafetensors(cachePath, raw, { grid: gridKey, middle: JSON.stringify(middle) });
  return { slices, middle };
}

/** The slices of the patients of one split. */
export const slicesOf = (data: AcdcSlices, split: 'train' | 'validation'): AcdcSlice[] =>
  data.slices.filter((s) => acdcSplit(s.id) === split);

/** The ED and ES images of `slices`: what the LDM learns. */
export const frameImages = (slices: readonly AcdcSlice[]): Tensor[] => slices.flatMap((s) => [s.ed, s.es]);

/** Each validation patient's mid-ventricular slice, in patient order. */
export function middleSlices(data: AcdcSlices): AcdcSlice[] {
  return Object.keys(data.middle)
    .filter((id) => acdcSplit(id) === 'validation')
    .sort()
    .map((id) => {
      const s = data.slices.find((c) => c.id === id && c.slice === data.middle[id]);
      if (!s) fail(`${id} slice ${data.middle[id]}`, 'the mid-ventricular slice has no image content');
      return s;
    });
}

/**
 * A random training pair: a slice, ED or ES fixed, both images flipped alike along each of `flipAxes`
 * (image axes 2, 3) with probability ½.
 */
export function randomSlicePair(
  slices: readonly AcdcSlice[],
  random: Random,
  flipAxes: readonly number[],
): { fixed: Tensor; moving: Tensor } {
  const s = slices[random.integer(slices.length)];
  const edFixed = random.uniform() < 0.5;
  const flips = flipAxes.filter(() => random.uniform() < 0.5);
  // An unsupervised pair needs no displacement target, so flipping both images is all there is to do.
  const prepare = (t: Tensor) => (flips.length ? t.flip(flips) : t.clone());
  return { fixed: prepare(edFixed ? s.ed : s.es), moving: prepare(edFixed ? s.es : s.ed) };
}

/** Frees the tensors of `data`. */
export function disposeSlices(data: AcdcSlices): void {
  for (const s of data.slices) for (const p of PARTS) s[p].dispose();
}

/**
 * ACDC on DiffuseReg's network grid for the bootstrap network: each patient's ED and ES images and
 * labels resampled onto the network grid of its ED image (whole, uncropped volumes, as users give them
 * at inference), cached in one safetensors file so a resumed run does not re-read the volumes.
 * Training pairs: ED fixed / ES moving (the benchmark's direction) and the reverse, with random flips
 * of both images together.
 */
import { existsSync } from 'node:fs';
import { readSafetensors, writeSafetensors, type RawTensor } from '../../engine/checkpoint/index.ts';
import { Tensor, tidy } from '../../engine/index.ts';
import { acdcDataset, type AcdcOptions } from '../../data/acdc.ts';
import type { RegistrationDataset } from '../../data/dataset.ts';
import type { Random } from '../../geometry/random.ts';
import { rawOf } from '../../models/training/checkpoint.ts';
import { stageReporter, type ProgressFn } from '../../util/progress.ts';
import { imageOnGrid, labelsOnGrid, networkGrid, NETWORK_DIMS, NETWORK_SPACING } from './grid.ts';

/** One patient on its network grid: images (1, 1, 64, 64, 16) in [0, 1], labels 0–3 as float32. */
export interface NetworkCase {
  id: string;
  ed: Tensor;
  es: Tensor;
  edLabels: Tensor;
  esLabels: Tensor;
}

const PARTS = ['ed', 'es', 'edLabels', 'esLabels'] as const;
const LABEL_PARTS = new Set<string>(['edLabels', 'esLabels']);

async function loadCase(dataset: RegistrationDataset, id: string): Promise<NetworkCase> {
  const c = await dataset.load(id);
  const grid = networkGrid(c.fixed);
  return {
    id,
    ed: imageOnGrid(c.fixed, grid, c.modality, `${id} ED`),
    es: imageOnGrid(c.moving, grid, c.modality, `${id} ES`),
    edLabels: labelsOnGrid(c.fixedLabels!, grid),
    esLabels: labelsOnGrid(c.movingLabels!, grid),
  };
}

/**
 * The ACDC patients `ids` on their network grids, from the cache at `cachePath` when it holds them on
 * the same grid, otherwise read (whole volumes, no cropping) and written there.
 */
export async function acdcOnNetworkGrid(
  ids: readonly string[],
  cachePath: string,
  options: Pick<AcdcOptions, 'root'> = {},
  progress?: ProgressFn,
): Promise<NetworkCase[]> {
  const gridKey = JSON.stringify({ dims: NETWORK_DIMS, spacing: NETWORK_SPACING });
  if (existsSync(cachePath)) {
    const { tensors, metadata } = readSafetensors(cachePath);
    if (metadata.grid === gridKey && ids.every((id) => tensors.has(`${id}.ed`))) {
      const get = (id: string, part: string) => {
        const r = tensors.get(`${id}.${part}`) as RawTensor;
        return tidy(() => Tensor.fromBytes(r.data, r.dtype, r.shape).float()).keep();
      };
      return ids.map((id) => ({
        id,
        ...(Object.fromEntries(PARTS.map((p) => [p, get(id, p)])) as Omit<NetworkCase, 'id'>),
      }));
    }
  }
  const dataset = acdcDataset({ root: options.root, cropMargin: 0 });
  const report = stageReporter(progress, 'resampling ACDC onto the network grid', ids.length);
  const cases: NetworkCase[] = [];
  for (const id of ids) {
    cases.push(await loadCase(dataset, id));
    report(cases.length);
  }
  const raw: [string, RawTensor][] = cases.flatMap((c) =>
    PARTS.map((p): [string, RawTensor] => [
      `${c.id}.${p}`,
      tidy(() => rawOf(LABEL_PARTS.has(p) ? c[p].to('uint8') : c[p])),
    ]),
  );
  writeSafetensors(cachePath, raw, { grid: gridKey });
  return cases;
}

export interface ImagePair {
  fixed: Tensor;
  moving: Tensor;
}

/** A random training pair: a patient, ED→ES or ES→ED, both images flipped alike along random axes. */
export function trainingPair(cases: readonly NetworkCase[], random: Random): ImagePair {
  const c = cases[random.integer(cases.length)];
  const [fixed, moving] = random.uniform() < 0.5 ? [c.ed, c.es] : [c.es, c.ed];
  const axes = [2, 3, 4].filter(() => random.uniform() < 0.5);
  if (axes.length === 0) return { fixed: fixed.clone(), moving: moving.clone() };
  return { fixed: fixed.flip(axes), moving: moving.flip(axes) };
}

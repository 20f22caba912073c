/**
 * ACDC cine cardiac MR (Bernard et al. 2018), training patients 001–100: end-systole (ES, moving)
 * → end-diastole (ED, fixed) of each patient. Labels 1 RV cavity, 2 LV myocardium, 3 LV cavity;
 * Dice is reported per label, of the unions LV+myocardium and whole heart, and as means (the five
 * structures of DiffuseReg's "overall" Dice). Slices are 5–10 mm apart, in-plane 0.7–1.9 mm.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readVolume } from '../io/index.ts';
import { fail } from '../util/errors.ts';
import type { Vec3, Volume } from '../geometry/index.ts';
import { number } from '../util/is.ts';
import {
  checkCaseId,
  cropVolume,
  defaultDataRoot,
  nonzeroBox,
  requireDirectory,
  type RegistrationDataset,
} from './dataset.ts';

export const ACDC_LABELS: Record<number, string> = { 1: 'RV', 2: 'myocardium', 3: 'LV' };

/** The label unions DiffuseReg (Zhuo & Shen 2024) scores besides the three labels. */
export const ACDC_LABEL_GROUPS: Record<string, number[]> = {
  'LV+myocardium': [2, 3],
  'whole heart': [1, 2, 3],
};

/**
 * The split of the learned methods (DiffuseReg, LDM-Morph), by patient id and stratified by ACDC's
 * five diagnostic groups of 20 consecutive patients (DCM, HCM, MINF, NOR, RV): the last four of each
 * group validate (017–020, 037–040, …, 097–100), the first sixteen train. It contains the default
 * model's held-out patients (the last two of each group).
 */
export function acdcSplit(id: string): 'train' | 'validation' {
  const n = Number(/^patient(\d{3})$/.exec(id)?.[1]);
  if (!(n >= 1 && n <= 100)) fail(`ACDC case ${JSON.stringify(id)}`, 'not a training patient 001–100');
  return (n - 1) % 20 >= 16 ? 'validation' : 'train';
}

export interface AcdcOptions {
  /** Folder with patientNNN/{ed,es,ed_gt,es_gt}.nii.gz (default <data>/cardiac-acdc). */
  root?: string;
  /**
   * In-plane margin (mm) around the heart labels of both frames to crop to, all slices kept, as
   * ACDC registration studies crop around the heart (default 30; 0 keeps the full field of view).
   */
  cropMargin?: number;
}

/** The four volumes (same grid) cropped in-plane to the labels of both frames plus `margin` mm. */
function aroundHeart(volumes: Volume[], margin: number): Volume[] {
  const [image, , fixedLabels, movingLabels] = volumes;
  const boxes = [fixedLabels, movingLabels].map((v) => nonzeroBox(v));
  if (!boxes[0] || !boxes[1] || !volumes.every((v) => v.sameGrid(image))) return volumes;
  const reach = image.spacing.map((s) => Math.ceil(margin / s));
  const lo = [0, 1, 2].map((a) =>
    a === 2 ? 0 : Math.min(boxes[0]!.lo[a], boxes[1]!.lo[a]) - reach[a],
  ) as Vec3;
  const hi = [0, 1, 2].map((a) =>
    a === 2 ? image.dims[2] - 1 : Math.max(boxes[0]!.hi[a], boxes[1]!.hi[a]) + reach[a],
  ) as Vec3;
  return volumes.map((v) => cropVolume(v, lo, hi));
}

export function acdcDataset(options: AcdcOptions = {}): RegistrationDataset {
  const margin = number('cropMargin', options.cropMargin ?? 30, { min: 0 });
  const root = requireDirectory(options.root ?? join(defaultDataRoot(), 'cardiac-acdc'), 'ACDC');
  const files = ['ed.nii.gz', 'es.nii.gz', 'ed_gt.nii.gz', 'es_gt.nii.gz'];
  const listed = join(root, 'patients.json');
  const candidates = existsSync(listed)
    ? Object.keys(JSON.parse(readFileSync(listed, 'utf8')).patients ?? {})
    : Array.from({ length: 150 }, (_, n) => `patient${String(n + 1).padStart(3, '0')}`);
  const caseIds = candidates.filter((id) => files.every((f) => existsSync(join(root, id, f)))).sort();
  if (caseIds.length === 0) fail(root, 'holds no ACDC patient folder with ed/es images and ground truth');
  return {
    name: 'acdc',
    description: `ACDC cine MR, end-systole (moving) → end-diastole (fixed) per patient; RV, myocardium, LV, and the unions LV+myocardium and whole heart${margin > 0 ? `; cropped in-plane to the heart labels + ${margin} mm` : ''}`,
    caseIds,
    citation: 'Bernard et al., IEEE TMI 37(11):2514–2525, 2018',
    async load(id) {
      checkCaseId('ACDC', caseIds, id);
      const full = await Promise.all(files.map((f) => readVolume(join(root, id, f))));
      const [fixed, moving, fixedLabels, movingLabels] = margin > 0 ? aroundHeart(full, margin) : full;
      return {
        id,
        fixed,
        moving,
        fixedLabels,
        movingLabels,
        labelSet: [1, 2, 3],
        labelNames: { ...ACDC_LABELS },
        labelGroups: structuredClone(ACDC_LABEL_GROUPS),
        modality: 'mr',
      };
    },
  };
}

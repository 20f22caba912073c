/**
 * LPBA40 brain MR (Shattuck et al. 2008), atlas-to-subject: the atlas S01 is the MOVING image and
 * each subject S11–S40 the FIXED one, so the field lives on the subject grid and the atlas labels
 * are carried onto the subject (the usual atlas-based segmentation direction). All 56 structures of
 * labels.json are scored. All volumes share one 160×192×160 1 mm grid.
 */
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { readVolume } from '../io/index.ts';
import { fail } from '../util/errors.ts';
import { checkCaseId, defaultDataRoot, requireDirectory, type RegistrationDataset } from './dataset.ts';

export const LPBA40_ATLAS = 'S01';

export interface Lpba40Options {
  /** Folder with SXX.nii.gz, SXX.label.nii.gz and labels.json (default <data>/brain-lpba40). */
  root?: string;
}

export function lpba40Dataset(options: Lpba40Options = {}): RegistrationDataset {
  const root = requireDirectory(options.root ?? join(defaultDataRoot(), 'brain-lpba40'), 'LPBA40');
  const labelsPath = join(root, 'labels.json');
  if (!existsSync(labelsPath)) fail(labelsPath, 'LPBA40 label list not found');
  const names: Record<string, string> = JSON.parse(readFileSync(labelsPath, 'utf8')).labels ?? {};
  const labelNames: Record<number, string> = {};
  for (const [value, name] of Object.entries(names))
    if (Number(value) !== 0) labelNames[Number(value)] = name;
  const labelSet = Object.keys(labelNames)
    .map(Number)
    .sort((a, b) => a - b);
  if (labelSet.length === 0) fail(labelsPath, 'lists no labels');
  const present = (id: string) =>
    existsSync(join(root, `${id}.nii.gz`)) && existsSync(join(root, `${id}.label.nii.gz`));
  if (!present(LPBA40_ATLAS))
    fail(root, `atlas ${LPBA40_ATLAS}.nii.gz / ${LPBA40_ATLAS}.label.nii.gz not found`);
  const caseIds = Array.from({ length: 30 }, (_, n) => `S${n + 11}`).filter(present);
  return {
    name: 'lpba40',
    description: `LPBA40 T1 MR, atlas ${LPBA40_ATLAS} (moving) → subject (fixed), ${labelSet.length} labels`,
    caseIds,
    citation: 'Shattuck et al., NeuroImage 39(3):1064–1080, 2008',
    async load(id) {
      checkCaseId('LPBA40', caseIds, id);
      const read = (name: string) => readVolume(join(root, name));
      return {
        id,
        fixed: await read(`${id}.nii.gz`),
        moving: await read(`${LPBA40_ATLAS}.nii.gz`),
        fixedLabels: await read(`${id}.label.nii.gz`),
        movingLabels: await read(`${LPBA40_ATLAS}.label.nii.gz`),
        labelSet,
        labelNames,
        modality: 'mr',
      };
    },
  };
}

/**
 * Learn2Reg task folders (Hering et al., IEEE TMI 2023): `<TASK>_dataset.json` lists image pairs
 * per split (`registration_val`, `training_paired_images`, `registration_test`, each an array of
 * { fixed, moving } paths like `./imagesTr/NLST_0101_0000.nii.gz`); optional keypoints
 * (`keypointsTr/<image>.csv`: 0-based voxel indices x,y,z of the NIfTI array, no header), labels
 * (`labelsTr/<image>.nii.gz`) alongside. Case ids are `<fixed>_<moving>` case numbers (`0101_0101`),
 * as in the submission file names.
 *
 * Submission convention: one `disp_<fixed>_<moving>.nii.gz` per pair, a 4D NIfTI of shape
 * (nx, ny, nz, 3) on the fixed image grid holding u in voxels along the array axes (Learn2Reg's
 * evaluation adds it to the voxel grid of the fixed image and samples the moving image there).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  checkField,
  fieldFromVoxelUnits,
  fieldToVoxelUnits,
  Volume,
  type DisplacementField,
  type Vec3,
} from '../geometry/index.ts';
import { encodeNifti, readLandmarks, readVolume } from '../io/index.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { fail } from '../util/errors.ts';
import { checkCaseId, requireDirectory, type RegistrationDataset } from './dataset.ts';

interface Pair {
  fixed: string;
  moving: string;
}

export interface Learn2RegOptions {
  /** Task folder holding `<TASK>_dataset.json`. */
  root: string;
  /** Split of the dataset JSON (default 'registration_val'). */
  split?: string;
}

const CASE_NUMBER = /_(\d+)_\d+\.nii(\.gz)?$/;

/** `NLST_0101_0000.nii.gz` → `0101`. */
function caseNumber(path: string, jsonPath: string): string {
  const match = CASE_NUMBER.exec(basename(path));
  if (!match) fail(jsonPath, `image name ${JSON.stringify(path)} does not end in _<case>_<modality>.nii.gz`);
  return match[1];
}

/** The sibling file of an image in another folder, e.g. imagesTr/X.nii.gz → keypointsTr/X.csv. */
function sibling(root: string, image: string, folder: string, extension: string): string {
  const stem = basename(image).replace(/\.nii(\.gz)?$/, '');
  const split = /images(Tr|Ts)/.exec(image)?.[1] ?? 'Tr';
  return join(root, `${folder}${split}`, `${stem}${extension}`);
}

function readPoints(path: string, grid: Volume): Vec3[] {
  const landmarks = readLandmarks(path, { format: 'learn2reg', reference: grid, allowOutside: true });
  return Array.from({ length: landmarks.count }, (_, i) => landmarks.point(i));
}

export function learn2regDataset(options: Learn2RegOptions): RegistrationDataset {
  const root = requireDirectory(options.root, 'Learn2Reg task');
  const jsonName = readdirSync(root).find((f) => f.endsWith('_dataset.json'));
  if (!jsonName) fail(root, 'holds no <TASK>_dataset.json');
  const jsonPath = join(root, jsonName);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(jsonPath, 'utf8'));
  } catch (e) {
    fail(jsonPath, `invalid JSON (${(e as Error).message})`);
  }
  const split = options.split ?? 'registration_val';
  const pairs = json[split];
  if (
    !Array.isArray(pairs) ||
    !pairs.every((p) => typeof p?.fixed === 'string' && typeof p?.moving === 'string')
  ) {
    fail(jsonPath, `has no list of { fixed, moving } pairs under ${JSON.stringify(split)}`);
  }
  const byId = new Map<string, Pair>();
  for (const pair of pairs as Pair[])
    byId.set(`${caseNumber(pair.fixed, jsonPath)}_${caseNumber(pair.moving, jsonPath)}`, pair);
  const caseIds = [...byId.keys()];
  const modalities = Object.values((json.modality as Record<string, string>) ?? {}).join(' ');
  const task = typeof json.name === 'string' ? json.name : jsonName.replace(/_dataset\.json$/, '');
  const resolvePath = (p: string) => join(root, p);
  return {
    name: `learn2reg-${task}`.toLowerCase(),
    description: `Learn2Reg ${task}, split ${split} (${caseIds.length} pairs)`,
    caseIds,
    citation: 'Hering et al., IEEE TMI 42(3):697–712, 2023, and the task data citation',
    async load(id) {
      checkCaseId(`Learn2Reg ${task}`, caseIds, id);
      const pair = byId.get(id) as Pair;
      const fixed = await readVolume(resolvePath(pair.fixed));
      const moving = await readVolume(resolvePath(pair.moving));
      const item: Awaited<ReturnType<RegistrationDataset['load']>> = {
        id,
        fixed,
        moving,
        modality: /CT/i.test(modalities) ? 'ct' : 'mr',
      };
      const [fixedKeypoints, movingKeypoints] = [pair.fixed, pair.moving].map((p) =>
        sibling(root, p, 'keypoints', '.csv'),
      );
      if (existsSync(fixedKeypoints) && existsSync(movingKeypoints)) {
        item.fixedPoints = readPoints(fixedKeypoints, fixed);
        item.movingPoints = readPoints(movingKeypoints, moving);
      }
      const [fixedLabels, movingLabels] = [pair.fixed, pair.moving].map((p) =>
        sibling(root, p, 'labels', '.nii.gz'),
      );
      if (existsSync(fixedLabels) && existsSync(movingLabels)) {
        item.fixedLabels = await readVolume(fixedLabels);
        item.movingLabels = await readVolume(movingLabels);
      }
      return item;
    },
  };
}

/** `disp_<fixed>_<moving>.nii.gz` for a case id `<fixed>_<moving>`. */
export function learn2regDisplacementName(caseId: string): string {
  return `disp_${caseId}.nii.gz`;
}

/**
 * Writes a field (diffreg convention, on the fixed grid) as a Learn2Reg submission file in `dir`:
 * voxel units along the array axes, 4D float32 NIfTI (nx, ny, nz, 3). Returns the path.
 */
export function writeLearn2RegDisplacement(dir: string, caseId: string, field: DisplacementField): string {
  const voxels = fieldToVoxelUnits(checkField(field));
  const bytes = encodeNifti(voxels, { version: 1 }, caseId);
  // encodeNifti writes vectors ITK-style as dim [5, nx, ny, nz, 1, 3]; Learn2Reg reads [4, nx, ny, nz, 3].
  const [nx, ny, nz] = field.dims;
  [4, nx, ny, nz, 3, 1, 1, 1].forEach((v, n) => bytes.writeInt16LE(v, 40 + 2 * n));
  bytes.writeInt16LE(0, 68); // intent_code: plain data
  const path = join(dir, learn2regDisplacementName(caseId));
  writeFileAtomic(path, gzipSync(bytes));
  return path;
}

/** Reads a Learn2Reg displacement file back into diffreg's convention (world mm on its grid). */
export async function readLearn2RegDisplacement(path: string): Promise<DisplacementField> {
  const components = await Promise.all([0, 1, 2].map((frame) => readVolume(path, { frame })));
  const grid = components[0];
  const n = grid.size;
  const data = new Float32Array(3 * n);
  components.forEach((c, a) => data.set(c.data, a * n));
  return fieldFromVoxelUnits(grid.withData(data, 3)) as DisplacementField;
}

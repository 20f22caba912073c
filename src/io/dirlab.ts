/**
 * DIR-Lab raw CT images (`.img`): int16 little-endian voxels, no header. Dimensions and spacing come
 * from the per-case tables below (DIR-Lab reference data, as collected in ../shared/data/lung/landmarks/
 * {dirlab-4dct,dirlab-copdgene}/cases.json), so that reading works without ../shared.
 *
 * Orientation (not documented by DIR-Lab; stated here with its evidence):
 * - Slices: slice index increases toward the patient's FEET (slice 1 is the most superior). Evidence:
 *   in every case the end-exhale (T50/eBH) landmarks sit at smaller slice indices than the end-inhale
 *   ones (64–100 % of points in cases 1–10, never the reverse for more than 10 %) and the motion grows
 *   with the slice index (correlation of |Δz| with z: 0.66–0.92). Exhalation moves the lung bases up,
 *   and motion is largest near the diaphragm, so larger indices are inferior. Third-party converters
 *   (RegNet's dirlab.py, the INR-DIR and vroc scripts) flip the slice axis for the same reason.
 * - In-plane: column index toward patient Left, row index toward Posterior, i.e. the usual axial CT
 *   layout (DICOM ImageOrientationPatient 1\0\0\0\1\0, head-first supine). This is an assumption:
 *   left/right cannot be checked without the original DICOM headers.
 * So the Volume direction is diag(1, 1, −1) (LPS) with the origin at voxel (0, 0, 0): the absolute
 * position is unknown and irrelevant for landmark errors. Distances between points do not depend on
 * this choice.
 *
 * Intensities are kept as stored. DIR-Lab values are not Hounsfield units: third-party converters
 * subtract 1024; `hounsfield: true` does that.
 */
import type { Mat3, Vec3 } from '../geometry/volume.ts';
import { Grid, Volume } from '../geometry/volume.ts';
import { fail } from '../util/errors.ts';
import { HOST_LITTLE, readInputFile, swapBytes } from './files.ts';

export interface DirLabCase {
  dims: Vec3;
  /** DIR-Lab's published spacing (mm); COPDgene in-plane values are the 3-decimal published ones. */
  spacing: Vec3;
}

const dirLab4dct = (nx: number, nz: number, s: number): DirLabCase => ({
  dims: [nx, nx, nz],
  spacing: [s, s, 2.5],
});
const copd = (nz: number, s: number): DirLabCase => ({ dims: [512, 512, nz], spacing: [s, s, 2.5] });

/** DIR-Lab 4DCT cases 1–10 (Castillo et al. 2009, 2010) and COPDgene copd1–copd10 (Castillo et al. 2013). */
export const DIRLAB_CASES: Readonly<Record<string, DirLabCase>> = {
  case1: dirLab4dct(256, 94, 0.97),
  case2: dirLab4dct(256, 112, 1.16),
  case3: dirLab4dct(256, 104, 1.15),
  case4: dirLab4dct(256, 99, 1.13),
  case5: dirLab4dct(256, 106, 1.1),
  case6: dirLab4dct(512, 128, 0.97),
  case7: dirLab4dct(512, 136, 0.97),
  case8: dirLab4dct(512, 128, 0.97),
  case9: dirLab4dct(512, 128, 0.97),
  case10: dirLab4dct(512, 120, 0.97),
  copd1: copd(121, 0.625),
  copd2: copd(102, 0.645),
  copd3: copd(126, 0.652),
  copd4: copd(126, 0.59),
  copd5: copd(131, 0.647),
  copd6: copd(119, 0.633),
  copd7: copd(112, 0.625),
  copd8: copd(115, 0.586),
  copd9: copd(116, 0.664),
  copd10: copd(135, 0.742),
};

/** Slice axis toward inferior, see the module comment. */
const DIRLAB_DIRECTION: Mat3 = [1, 0, 0, 0, 1, 0, 0, 0, -1];

function lookup(caseId: string): DirLabCase {
  const found = DIRLAB_CASES[String(caseId).toLowerCase()];
  if (!found)
    fail(
      'caseId',
      `unknown DIR-Lab case ${JSON.stringify(caseId)} (expected case1..case10 or copd1..copd10)`,
    );
  return found;
}

/** The image grid of a DIR-Lab case, for converting its landmark files without the image. */
export function dirLabGrid(caseId: string): Grid {
  const { dims, spacing } = lookup(caseId);
  return new Grid({ dims, spacing, origin: [0, 0, 0], direction: DIRLAB_DIRECTION });
}

export interface DirLabReadOptions {
  /** Subtract 1024 to get Hounsfield units (default false: values as stored). */
  hounsfield?: boolean;
}

/** Reads a DIR-Lab `.img` file of the given case (`case1`..`case10`, `copd1`..`copd10`). */
export function readDirLabImage(
  path: string,
  caseId: string,
  options: DirLabReadOptions = {},
): Volume<Int16Array> {
  const grid = dirLabGrid(caseId);
  const bytes = readInputFile(path);
  const n = grid.dims[0] * grid.dims[1] * grid.dims[2];
  if (bytes.length !== 2 * n) {
    fail(path, `has ${bytes.length} bytes but ${caseId} (${grid.dims.join('x')} int16) needs ${2 * n}`);
  }
  const raw = new Uint8Array(bytes); // a copy with its own aligned buffer
  if (!HOST_LITTLE) swapBytes(raw, 2);
  const data = new Int16Array(raw.buffer);
  if (options.hounsfield) for (let i = 0; i < n; i++) data[i] -= 1024;
  return new Volume({ data, ...grid });
}

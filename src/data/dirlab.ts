/**
 * DIR-Lab lung CT with 300 landmark pairs per case: 4DCT cases 1–10 (Castillo et al. 2009, 2010),
 * end-inhale T00 (fixed) and end-exhale T50 (moving), and COPDgene copd1–copd10 (Castillo et al.
 * 2013), inspiration iBH (fixed) and expiration eBH (moving). The images are not distributed with
 * diffreg: point `imageDir` at the folder holding DIR-Lab's raw `.img` files (searched recursively:
 * `case1_T00_s.img` / `case6_T00.img` style names for 4DCT, `copd1_iBHCT.img` / `copd1_eBHCT.img`
 * for COPDgene). Geometry and orientation are those of io/dirlab.ts; landmarks are DIR-Lab's 1-based
 * voxel indices converted to world mm on that grid. Intensities are shifted to Hounsfield units.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { dirLabGrid, readDirLabImage, readLandmarks } from '../io/index.ts';
import type { Vec3 } from '../geometry/index.ts';
import { fail } from '../util/errors.ts';
import { summarize, type Summary } from '../util/stats.ts';
import { checkCaseId, requireDirectory, type RegistrationDataset } from './dataset.ts';

export type DirLabSuite = '4dct' | 'copdgene';

/** Case ids of a suite: case1..case10 or copd1..copd10. */
export function dirLabCaseIds(suite: DirLabSuite): string[] {
  return Array.from({ length: 10 }, (_, n) => `${suite === '4dct' ? 'case' : 'copd'}${n + 1}`);
}

function suiteOf(caseId: string): DirLabSuite {
  if (/^case([1-9]|10)$/.test(caseId)) return '4dct';
  if (/^copd([1-9]|10)$/.test(caseId)) return 'copdgene';
  fail(`DIR-Lab case ${JSON.stringify(caseId)}`, 'unknown (expected case1..case10 or copd1..copd10)');
}

/** Landmark file paths (fixed phase first) inside `landmarkDir` (the folder holding dirlab-4dct/ and dirlab-copdgene/). */
function landmarkFiles(caseId: string, landmarkDir: string): [string, string] {
  const number = caseId.replace(/^\D+/, '');
  return suiteOf(caseId) === '4dct'
    ? ([`Case${number}_300_T00_xyz.txt`, `Case${number}_300_T50_xyz.txt`].map((f) =>
        join(landmarkDir, 'dirlab-4dct', f),
      ) as [string, string])
    : ([`copd${number}_300_iBH_xyz_r1.txt`, `copd${number}_300_eBH_xyz_r1.txt`].map((f) =>
        join(landmarkDir, 'dirlab-copdgene', f),
      ) as [string, string]);
}

/** The 300 landmark pairs of a case in LPS world mm on its DIR-Lab grid (fixed = T00/iBH). */
export function dirLabLandmarks(caseId: string, landmarkDir: string): { fixed: Vec3[]; moving: Vec3[] } {
  const reference = dirLabGrid(caseId);
  const [fixedFile, movingFile] = landmarkFiles(caseId, landmarkDir);
  const read = (path: string) => {
    const landmarks = readLandmarks(path, { format: 'dirlab', reference });
    return Array.from({ length: landmarks.count }, (_, i) => landmarks.point(i));
  };
  const fixed = read(fixedFile);
  const moving = read(movingFile);
  if (fixed.length !== moving.length)
    fail(movingFile, `${moving.length} landmarks but ${fixedFile} has ${fixed.length}`);
  return { fixed, moving };
}

/** Landmark distance before registration (mm), the "initial displacement" of DIR-Lab's tables. */
export function dirLabInitialDisplacement(caseId: string, landmarkDir: string): Summary {
  const { fixed, moving } = dirLabLandmarks(caseId, landmarkDir);
  return summarize(
    fixed.map((p, n) => Math.hypot(p[0] - moving[n][0], p[1] - moving[n][1], p[2] - moving[n][2])),
  );
}

/** Every file below `dir` (depth ≤ 4) by lower-case name. */
function filesBelow(dir: string, depth = 4, found = new Map<string, string>()): Map<string, string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      if (depth > 0) filesBelow(path, depth - 1, found);
    } else if (!found.has(name.toLowerCase())) found.set(name.toLowerCase(), path);
  }
  return found;
}

/** Candidate image names of a case's fixed and moving phase (lower case). */
function imageNames(caseId: string): [string[], string[]] {
  const number = caseId.replace(/^\D+/, '');
  if (suiteOf(caseId) === '4dct') {
    const names = (phase: string) => [`case${number}_${phase}_s.img`, `case${number}_${phase}.img`];
    return [names('t00'), names('t50')];
  }
  return [[`copd${number}_ibhct.img`], [`copd${number}_ebhct.img`]];
}

export interface DirLabOptions {
  suite: DirLabSuite;
  /** Folder holding the DIR-Lab `.img` files (searched recursively). */
  imageDir: string;
  /** Folder with dirlab-4dct/ and dirlab-copdgene/ landmark files (../shared/data/lung/landmarks). */
  landmarkDir: string;
}

export function dirLabDataset(options: DirLabOptions): RegistrationDataset {
  const { suite } = options;
  const imageDir = requireDirectory(options.imageDir, 'DIR-Lab image');
  requireDirectory(options.landmarkDir, 'DIR-Lab landmark');
  const files = filesBelow(imageDir);
  const locate = (names: string[]) => names.map((n) => files.get(n)).find((p) => p !== undefined);
  const caseIds = dirLabCaseIds(suite).filter((id) => {
    const [fixed, moving] = imageNames(id);
    return (
      locate(fixed) && locate(moving) && landmarkFiles(id, options.landmarkDir).every((f) => existsSync(f))
    );
  });
  if (caseIds.length === 0) {
    fail(
      imageDir,
      `holds no DIR-Lab ${suite === '4dct' ? '4DCT (caseN_T00[_s].img)' : 'COPDgene (copdN_iBHCT.img)'} image pair`,
    );
  }
  const [fixedPhase, movingPhase] = suite === '4dct' ? ['T00', 'T50'] : ['iBH', 'eBH'];
  return {
    name: suite === '4dct' ? 'dirlab-4dct' : 'dirlab-copdgene',
    description: `DIR-Lab ${suite === '4dct' ? '4DCT' : 'COPDgene'}: ${fixedPhase} (fixed) ↔ ${movingPhase} (moving), 300 landmark pairs per case`,
    caseIds,
    overlayAxis: 1,
    citation:
      suite === '4dct'
        ? 'Castillo et al., Phys. Med. Biol. 54(7):1849–1870, 2009; Castillo et al., Phys. Med. Biol. 55(1):305–327, 2010'
        : 'Castillo et al., Phys. Med. Biol. 58(9):2861–2877, 2013; COPDGene (Regan et al., COPD 7(1):32–43, 2010)',
    async load(id) {
      checkCaseId(`DIR-Lab ${suite}`, caseIds, id);
      const [fixedNames, movingNames] = imageNames(id);
      const { fixed: fixedPoints, moving: movingPoints } = dirLabLandmarks(id, options.landmarkDir);
      return {
        id,
        fixed: readDirLabImage(locate(fixedNames) as string, id, { hounsfield: true }),
        moving: readDirLabImage(locate(movingNames) as string, id, { hounsfield: true }),
        fixedPoints,
        movingPoints,
        modality: 'ct',
      };
    },
  };
}

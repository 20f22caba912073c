import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Mat3, Vec3 } from '../../src/geometry/volume.ts';
import { Landmarks, readLandmarks, writeLandmarks, type LandmarkFormat } from '../../src/io/landmarks.ts';
import { dirLabGrid } from '../../src/io/dirlab.ts';
import { readItkImage } from '../../src/io/itk.ts';
import type { GridInit as Grid } from '../../src/geometry/volume.ts';
import { requireShared } from '../helpers/shared.ts';

const dir = mkdtempSync(join(tmpdir(), 'diffreg-landmarks-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string) => join(dir, name);

/** Mean and sample SD (ddof = 1) of the point-to-point distances, rounded to 2 decimals as published. */
function displacement(a: Landmarks, b: Landmarks): [number, number] {
  assert.equal(a.count, b.count);
  const d = Array.from({ length: a.count }, (_, i) => {
    const [p, q] = [a.point(i), b.point(i)];
    return Math.hypot(p[0] - q[0], p[1] - q[1], p[2] - q[2]);
  });
  const mean = d.reduce((s, v) => s + v, 0) / d.length;
  const sd = Math.sqrt(d.reduce((s, v) => s + (v - mean) ** 2, 0) / (d.length - 1));
  return [Math.round(mean * 100) / 100, Math.round(sd * 100) / 100];
}

/** displacement() between two files of one folder. */
const filePair = (root: string, a: string, b: string, reference?: Grid) =>
  displacement(readLandmarks(join(root, a), { reference }), readLandmarks(join(root, b), { reference }));

test('DIR-Lab case1 T00/T50 reproduce the published 3.89 ± 2.78 mm; first point at the hand-computed position', (t) => {
  const root = requireShared(t, 'data', 'lung', 'landmarks', 'dirlab-4dct');
  if (!root) return;
  const reference = dirLabGrid('case1');
  const t00 = readLandmarks(join(root, 'Case1_300_T00_xyz.txt'), { reference });
  const t50 = readLandmarks(join(root, 'Case1_300_T50_xyz.txt'), { reference });
  assert.equal(t00.count, 300);
  assert.deepEqual(displacement(t00, t50), [3.89, 2.78]);
  // First line "211\t139\t66": ((211−1)·0.97, (139−1)·0.97, −(66−1)·2.5) with slices toward inferior.
  [203.7, 133.86, -162.5].forEach((v, a) => assert.ok(Math.abs(t00.point(0)[a] - v) < 1e-9));
  // The 4D-75 files: " %f\t" fields with leading spaces, trailing tab, CRLF → 3.91 ± 2.82 (cases.json).
  assert.deepEqual(
    filePair(root, 'sampled4d/case1_4D-75_T00.txt', 'sampled4d/case1_4D-75_T50.txt', reference),
    [3.91, 2.82],
  );
});

test('DIR-Lab COPDgene copd1 (eBH printed as %f) reproduces 26.33 ± 11.44 mm', (t) => {
  const root = requireShared(t, 'data', 'lung', 'landmarks', 'dirlab-copdgene');
  if (!root) return;
  const reference = dirLabGrid('copd1');
  assert.deepEqual(
    filePair(root, 'copd1_300_iBH_xyz_r1.txt', 'copd1_300_eBH_xyz_r1.txt', reference),
    [26.33, 11.44],
  );
});

test('POPI .pts (mm, "#X Y Z", trailing blank lines): phase 00 vs 50 gives 5.75 ± 2.77 mm', (t) => {
  const root = requireShared(t, 'data', 'lung', 'landmarks', 'popi');
  if (!root) return;
  const p00 = readLandmarks(join(root, '00-Landmarks.pts'));
  assert.equal(p00.count, 41);
  assert.deepEqual(p00.point(0), [295, 178.75, 194]);
  assert.deepEqual(filePair(root, '00-Landmarks.pts', '50-Landmarks.pts'), [5.75, 2.77]);
});

test('elastix point sets of the lung masks: 51 points, all inside the lung mask, 35.27 ± 3.09 mm apart', async (t) => {
  const root = requireShared(t, 'data', 'lung', 'ct-lung-masks');
  if (!root) return;
  const mask = await readItkImage(join(root, 'CT_3D_lung_fixed_mask.mha'), 'metaimage');
  const fixed = readLandmarks(join(root, 'CT_3D_lung_fixed_point_set_corrected.txt'), { reference: mask });
  const moving = readLandmarks(join(root, 'CT_3D_lung_moving_point_set_corrected.txt'));
  assert.equal(fixed.count, 51);
  assert.deepEqual(fixed.point(0), [-36.351, -36.974, -1204.5]);
  for (let p = 0; p < fixed.count; p++) {
    const [i, j, k] = mask.worldToVoxel(fixed.point(p)).map(Math.round);
    assert.equal(mask.data[mask.offset(i, j, k)], 1, `point ${p} in the lung`);
  }
  assert.deepEqual(displacement(fixed, moving), [35.27, 3.09]);
});

test('round trip through every format (world points preserved; labels where the format has them)', () => {
  // An oblique grid so that voxel formats exercise the full index ↔ world map.
  const [c, s] = [Math.cos(0.2), Math.sin(0.2)];
  const reference: Grid = {
    dims: [64, 48, 32],
    spacing: [0.8, 0.9, 2.5],
    origin: [-20, 15.5, -100],
    direction: [c, -s, 0, s, c, 0, 0, 0, 1] as Mat3,
  };
  const points: Vec3[] = [
    [-10.125, 20.5, -80],
    [5.5, 30.25, -60.75],
    [0, 25, -99],
  ];
  const labels = ['carina', 'apex, left', 'say "hi"'];
  const landmarks = new Landmarks(points, labels);
  const cases: [string, LandmarkFormat | undefined, boolean][] = [
    ['points.txt', undefined, false], // elastix "point"
    ['points.pts', undefined, false],
    ['points.csv', undefined, true],
    ['points.mrk.json', undefined, true],
    ['dirlab.txt', 'dirlab', false],
    ['keypoints.csv', 'learn2reg', false],
  ];
  for (const [name, format, keepsLabels] of cases) {
    writeLandmarks(file(name), landmarks, { format, reference });
    const back = readLandmarks(file(name), { format, reference });
    assert.equal(back.count, 3, name);
    for (let p = 0; p < 3; p++)
      points[p].forEach((v, a) => assert.ok(Math.abs(back.point(p)[a] - v) < 1e-5, `${name} point ${p}`));
    assert.deepEqual(back.labels, keepsLabels ? labels : undefined, name);
  }
  assert.equal(
    readFileSync(file('points.txt'), 'utf8'),
    'point\n3\n-10.125 20.5 -80\n5.5 30.25 -60.75\n0 25 -99\n',
  );
  assert.equal(readFileSync(file('points.pts'), 'utf8').split('\n')[0], '#X Y Z');

  writeLandmarks(file('ras.csv'), landmarks, { coordinateSystem: 'RAS' });
  assert.deepEqual(readFileSync(file('ras.csv'), 'utf8').split('\n').slice(0, 3), [
    'label,x,y,z',
    'carina,10.125,-20.5,-80',
    '"apex, left",-5.5,-30.25,-60.75',
  ]);
  assert.deepEqual(readLandmarks(file('ras.csv'), { coordinateSystem: 'RAS' }).point(1), points[1]);
});

test('Slicer markups: written as an LPS Fiducial (schema 1.0.3); RAS files are converted on reading', () => {
  writeLandmarks(file('out.mrk.json'), new Landmarks([[1, 2, 3]]));
  const json = JSON.parse(readFileSync(file('out.mrk.json'), 'utf8'));
  assert.match(json['@schema'], /markups-schema-v1\.0\.3\.json#$/);
  const markup = json.markups[0];
  assert.deepEqual([markup.type, markup.coordinateSystem, markup.coordinateUnits], ['Fiducial', 'LPS', 'mm']);
  assert.deepEqual(markup.controlPoints[0].position, [1, 2, 3]);
  assert.equal(markup.controlPoints[0].positionStatus, 'defined');

  const ras = {
    '@schema': json['@schema'],
    markups: [
      { type: 'Line', controlPoints: [] },
      {
        type: 'Fiducial',
        coordinateSystem: 'RAS',
        controlPoints: [
          { label: 'A', position: [10, -20, 30] },
          { label: 'B', position: [-1.5, 2.5, 0] },
        ],
      },
    ],
  };
  writeFileSync(file('ras.mrk.json'), JSON.stringify(ras));
  const back = readLandmarks(file('ras.mrk.json'));
  assert.deepEqual(
    [back.point(0), back.point(1), back.labels],
    [
      [-10, 20, 30],
      [1.5, -2.5, 0],
      ['A', 'B'],
    ],
  );
});

test('format detection: .txt by content, unknown extension needs format', () => {
  writeFileSync(file('index.txt'), 'index\n1\n1 2 3\n');
  const reference: Grid = {
    dims: [10, 10, 10],
    spacing: [2, 2, 2],
    origin: [100, 0, 0],
    direction: [1, 0, 0, 0, 1, 0, 0, 0, 1],
  };
  assert.deepEqual(readLandmarks(file('index.txt'), { reference }).point(0), [102, 4, 6]); // 0-based index
  writeFileSync(file('voxels.txt'), '1 2 3\r\n');
  assert.deepEqual(readLandmarks(file('voxels.txt'), { reference }).point(0), [100, 2, 4]); // DIR-Lab: 1-based
  writeFileSync(file('points.xyz'), '1 2 3\n');
  assert.throws(
    () => readLandmarks(file('points.xyz')),
    /points\.xyz: cannot tell the landmark format from the extension; give it \(--points-format on the command line\): one of dirlab, popi, elastix, csv, learn2reg, slicer$/,
  );
  assert.deepEqual(readLandmarks(file('points.xyz'), { format: 'popi' }).point(0), [1, 2, 3]);
  assert.throws(
    () => readLandmarks(file('points.xyz'), { format: 'vtk' as LandmarkFormat }),
    /format: expected one of dirlab, popi/,
  );
});

test('bad landmark files: one-line errors naming file, line or point', () => {
  const reference = dirLabGrid('case1');
  const cases: [string, string, RegExp][] = [
    ['columns.txt', '1 2 3\n4 5\n', /columns\.txt: line 2: expected 3 values \(x y z\), found 2$/],
    ['word.txt', '1 2 3\n4 five 6\n', /word\.txt: line 2: "five" is not a number$/],
    ['empty.txt', '\n \r\n', /empty\.txt: no landmarks \(empty file\)$/],
    [
      'outside.txt',
      '1 1 1\n10 20 30\n300 1 1\n',
      /outside\.txt: point 2 \(line 3\) lies outside the 256x256x94 image \(voxel 299, 0, 0\); points must lie inside the image$/,
    ],
    ['count.txt', 'point\n3\n1 2 3\n4 5 6\n', /count\.txt: header says 3 points, found 2$/],
    [
      'noheader.csv',
      '1,2,3\n',
      /noheader\.csv: line 1: expected a header with columns x,y,z \(Learn2Reg voxel keypoints have none: give the format learn2reg, --points-format learn2reg on the command line\)$/,
    ],
    ['bad.mrk.json', '{"markups": [', /bad\.mrk\.json: invalid JSON/],
  ];
  for (const [name, content, message] of cases) {
    writeFileSync(file(name), content);
    assert.throws(
      () => readLandmarks(file(name), { reference }),
      (e: Error) => e.name === 'DiffregError' && message.test(e.message),
      name,
    );
  }
  assert.throws(() => readLandmarks(file('missing.txt')), /missing\.txt: file not found$/);
  writeFileSync(file('voxels-only.txt'), '1 2 3\n');
  assert.throws(
    () => readLandmarks(file('voxels-only.txt')),
    /voxels-only\.txt: dirlab landmarks are voxel indices; pass reference/,
  );
  assert.equal(readLandmarks(file('outside.txt'), { reference, allowOutside: true }).count, 3);
  assert.throws(
    () =>
      writeLandmarks(
        file('out.txt'),
        new Landmarks([
          [0, 0, 0],
          [0, 0, 1000],
        ]),
        { format: 'dirlab', reference },
      ),
    /out\.txt: point 1 lies outside the 256x256x94 image/,
  );
});

test('values that overflow and markups whose controlPoints is not a list: one line naming the file', () => {
  const reference = { dims: [10, 10, 10], spacing: [2, 2, 2] };
  const cases: [string, string, RegExp][] = [
    ['huge.csv', 'x,y,z\n1,2,3\n1e999,2,3\n', /huge\.csv: line 3: 1e999 is out of range$/],
    ['huge.txt', 'point\n1\n1 -1e999 3\n', /huge\.txt: line 3: -1e999 is out of range$/],
    // Finite in the file, infinite once multiplied by the 2 mm spacing.
    ['overflow.txt', 'index\n1\n1e308 1 1\n', /overflow\.txt: line 3: coordinates out of range$/],
    [
      'points.mrk.json',
      JSON.stringify({ markups: [{ type: 'Fiducial', controlPoints: { position: [1, 2, 3] } }] }),
      /points\.mrk\.json: controlPoints of the Fiducial markup is not a list$/,
    ],
    [
      'nullpoint.mrk.json',
      JSON.stringify({ markups: [{ type: 'Fiducial', controlPoints: [null] }] }),
      /nullpoint\.mrk\.json: control point 0: position must be 3 finite numbers$/,
    ],
  ];
  for (const [name, content, message] of cases) {
    writeFileSync(file(name), content);
    assert.throws(
      () => readLandmarks(file(name), { reference, allowOutside: true }),
      (e: Error) => e.name === 'DiffregError' && message.test(e.message),
      name,
    );
  }
});

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { Volume, type Mat3, type Vec3, type VoxelArray } from '../../src/geometry/volume.ts';
import { readNifti, writeNifti, encodeNifti } from '../../src/io/nifti.ts';
import { DiffregError } from '../../src/util/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'diffreg-nifti-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string) => join(dir, name);

/**
 * An independent NIfTI-1 header builder for hand-made test files (does not use the encoder under
 * test). Fields not given are zero; `little` chooses the byte order of header and data.
 */
function rawNifti1(
  f: {
    dim: number[];
    datatype: number;
    bitpix: number;
    pixdim?: number[];
    slope?: number;
    inter?: number;
    qformCode?: number;
    sformCode?: number;
    quatern?: number[];
    qoffset?: number[];
    srow?: number[];
    intent?: number;
    magic?: string;
    sizeofHdr?: number;
  },
  data: Uint8Array,
  little = true,
): Buffer {
  const out = Buffer.alloc(352 + data.length);
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  v.setInt32(0, f.sizeofHdr ?? 348, little);
  f.dim.forEach((d, i) => v.setInt16(40 + 2 * i, d, little));
  v.setInt16(68, f.intent ?? 0, little);
  v.setInt16(70, f.datatype, little);
  v.setInt16(72, f.bitpix, little);
  (f.pixdim ?? [1, 1, 1, 1, 1, 1, 1, 1]).forEach((p, i) => v.setFloat32(76 + 4 * i, p, little));
  v.setFloat32(108, 352, little);
  v.setFloat32(112, f.slope ?? 0, little);
  v.setFloat32(116, f.inter ?? 0, little);
  v.setInt16(252, f.qformCode ?? 0, little);
  v.setInt16(254, f.sformCode ?? 0, little);
  (f.quatern ?? [0, 0, 0]).forEach((q, i) => v.setFloat32(256 + 4 * i, q, little));
  (f.qoffset ?? [0, 0, 0]).forEach((q, i) => v.setFloat32(268 + 4 * i, q, little));
  (f.srow ?? []).forEach((s, i) => v.setFloat32(280 + 4 * i, s, little));
  out.write(f.magic ?? 'n+1\0', 344, 'latin1');
  out.set(data, 352);
  return out;
}

/** Bytes of 16-bit values in the requested byte order. */
function int16Bytes(values: number[], little = true): Uint8Array {
  const b = new Uint8Array(values.length * 2);
  const v = new DataView(b.buffer);
  values.forEach((x, i) => v.setInt16(2 * i, x, little));
  return b;
}

const close = (a: readonly number[], b: readonly number[], tol: number, what: string) =>
  a.forEach((x, i) => assert.ok(Math.abs(x - b[i]) <= tol, `${what}[${i}]: ${x} vs ${b[i]}`));

const bytesOf = (a: VoxelArray) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

test('round trip of every datatype, NIfTI-1 .nii and NIfTI-2 .nii.gz: data bit-identical, geometry exact', () => {
  // Dyadic spacing/origin and a signed permutation direction: all exactly representable in float32.
  const geometry = {
    dims: [5, 4, 3] as Vec3,
    spacing: [0.5, 1.25, 2] as Vec3,
    origin: [-249.51171875, 163.5, -7.25] as Vec3,
    direction: [0, -1, 0, 1, 0, 0, 0, 0, -1] as Mat3,
  };
  const n = 60;
  const arrays: VoxelArray[] = [
    Uint8Array.from({ length: n }, (_, i) => (i * 37) % 256),
    Int8Array.from({ length: n }, (_, i) => i - 30),
    Int16Array.from({ length: n }, (_, i) => i * 1000 - 30000),
    Uint16Array.from({ length: n }, (_, i) => i * 1000 + 5000),
    Int32Array.from({ length: n }, (_, i) => i * 1e7 - 3e8),
    Uint32Array.from({ length: n }, (_, i) => i * 7e7),
    Float32Array.from({ length: n }, (_, i) => Math.fround(Math.sin(i) * 1e3)),
    Float64Array.from({ length: n }, (_, i) => Math.cos(i) / 3),
  ];
  for (const data of arrays) {
    const volume = new Volume({ data, ...geometry });
    for (const [name, version] of [
      ['v1.nii', 1],
      ['v2.nii.gz', 2],
    ] as const) {
      writeNifti(file(name), volume, { version });
      const back = readNifti(file(name));
      assert.equal(back.data.constructor, data.constructor, `${data.constructor.name} ${name}`);
      assert.ok(bytesOf(back.data).equals(bytesOf(data)), `${data.constructor.name} ${name} data`);
      assert.deepEqual(back.dims, geometry.dims);
      assert.deepEqual(back.spacing, geometry.spacing);
      assert.deepEqual(back.origin, geometry.origin);
      assert.deepEqual(back.direction, geometry.direction);
      assert.deepEqual(back.indexToWorld, volume.indexToWorld);
    }
  }
});

test('oblique geometry: NIfTI-1 keeps the affine exactly at float32 precision and is stable on re-writing', () => {
  const [c, s] = [Math.cos(0.4), Math.sin(0.4)];
  const volume = new Volume({
    data: new Float32Array(24),
    dims: [4, 3, 2],
    spacing: [0.97, 1.1, 2.5],
    origin: [12.3, -45.6, 78.9],
    direction: [c, -s, 0, s * 0.8, c * 0.8, -0.6, s * 0.6, c * 0.6, 0.8],
  });
  writeNifti(file('oblique.nii'), volume);
  const first = readNifti(file('oblique.nii'));
  assert.deepEqual(first.indexToWorld.map(Math.fround), volume.indexToWorld.map(Math.fround));
  writeNifti(file('oblique2.nii'), first);
  const second = readNifti(file('oblique2.nii'));
  assert.deepEqual(
    [second.spacing, second.origin, second.direction],
    [first.spacing, first.origin, first.direction],
  );

  writeNifti(file('oblique.v2.nii'), volume, { version: 2 });
  close(readNifti(file('oblique.v2.nii')).indexToWorld, volume.indexToWorld, 1e-13, 'NIfTI-2 affine');
});

test('written header: sform and qform (code 1), xyzt_units mm, RAS affine and quaternion as derived by hand', () => {
  // LPS identity direction = RAS diag(-1,-1,1): a 180° rotation about z, quaternion (b,c,d) = (0,0,1), qfac 1.
  const volume = new Volume({
    data: new Int16Array(24),
    dims: [4, 3, 2],
    spacing: [2, 3, 4],
    origin: [10, 20, 30],
  });
  const bytes = encodeNifti(volume);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const f32 = (at: number, k: number) => Array.from({ length: k }, (_, i) => v.getFloat32(at + 4 * i, true));
  assert.equal(v.getInt32(0, true), 348);
  assert.equal(bytes.toString('latin1', 344, 348), 'n+1\0');
  assert.deepEqual(
    Array.from({ length: 8 }, (_, i) => v.getInt16(40 + 2 * i, true)),
    [3, 4, 3, 2, 1, 1, 1, 1],
  );
  assert.equal(v.getInt16(70, true), 4); // int16
  assert.equal(v.getFloat32(108, true), 352);
  assert.equal(bytes[123], 2); // NIFTI_UNITS_MM
  assert.deepEqual([v.getInt16(252, true), v.getInt16(254, true)], [1, 1]);
  assert.deepEqual(f32(76, 4), [1, 2, 3, 4]); // qfac, spacing
  assert.deepEqual(f32(256, 6), [0, 0, 1, -10, -20, 30]); // quaternion, qoffset (RAS)
  assert.deepEqual(f32(280, 12), [-2, 0, 0, -10, 0, -3, 0, -20, 0, 0, 4, 30]); // srow_x/y/z

  const vector = new Volume({ data: new Float32Array(72), dims: [4, 3, 2], components: 3 });
  const vb = encodeNifti(vector);
  const vv = new DataView(vb.buffer, vb.byteOffset);
  assert.deepEqual(
    Array.from({ length: 8 }, (_, i) => vv.getInt16(40 + 2 * i, true)),
    [5, 4, 3, 2, 1, 3, 1, 1],
  );
  assert.equal(vv.getInt16(68, true), 1007);
});

test('qform only: the quaternion we write reproduces the direction, including reflections (qfac = -1)', () => {
  const [c, s] = [Math.cos(1.1), Math.sin(1.1)];
  for (const direction of [
    [c, -s, 0, s, c, 0, 0, 0, 1],
    [c, -s, 0, s, c, 0, 0, 0, -1],
    [0, 0, 1, 1, 0, 0, 0, 1, 0],
    [-1, 0, 0, 0, 1, 0, 0, 0, 1],
  ] as Mat3[]) {
    const volume = new Volume({
      data: new Uint8Array(8),
      dims: [2, 2, 2],
      spacing: [1, 2, 3],
      origin: [5, 6, 7],
      direction,
    });
    const bytes = encodeNifti(volume);
    bytes.writeInt16LE(0, 254); // sform_code = 0: only the qform remains
    writeFileSync(file('qonly.nii'), bytes);
    const back = readNifti(file('qonly.nii'));
    close(back.direction, direction, 1e-6, `direction ${direction.join(',')}`);
    assert.deepEqual([back.spacing, back.origin], [volume.spacing, volume.origin]);
  }
});

test('qform from a hand-made header: 90° about z with qfac -1', () => {
  // q = (cos 45°, 0, 0, sin 45°) → RAS R = [[0,-1,0],[1,0,0],[0,0,1]]; qfac -1 negates column 3.
  // LPS = rows x and y negated: [[0,1,0],[-1,0,0],[0,0,-1]]; qoffset (1,2,3) RAS → (-1,-2,3) LPS.
  const header = rawNifti1(
    {
      dim: [3, 2, 2, 2, 1, 1, 1, 1],
      datatype: 2,
      bitpix: 8,
      pixdim: [-1, 0.5, 0.75, 3, 0, 0, 0, 0],
      qformCode: 1,
      quatern: [0, 0, Math.SQRT1_2],
      qoffset: [1, 2, 3],
    },
    new Uint8Array(8),
  );
  writeFileSync(file('q90.nii'), header);
  const v = readNifti(file('q90.nii'));
  close(v.direction, [0, 1, 0, -1, 0, 0, 0, 0, -1], 1e-6, 'direction');
  assert.deepEqual(v.spacing, [0.5, 0.75, 3]);
  assert.deepEqual(v.origin, [-1, -2, 3]);
});

test('sform without voxel size (ACDC style): spacing from pixdim, direction from the sform', () => {
  const header = rawNifti1(
    {
      dim: [3, 2, 2, 2, 1, 1, 1, 1],
      datatype: 2,
      bitpix: 8,
      pixdim: [1, 1.5625, 1.5625, 10, 1, 1, 1, 1],
      sformCode: 2,
      srow: [-1, 0, 0, 4, 0, -1, 0, 5, 0, 0, 1, 6],
    },
    new Uint8Array(8),
  );
  writeFileSync(file('acdc-like.nii'), header);
  const v = readNifti(file('acdc-like.nii'));
  assert.deepEqual(v.spacing, [1.5625, 1.5625, 10]);
  assert.deepEqual(v.direction, [1, 0, 0, 0, 1, 0, 0, 0, 1]);
  assert.deepEqual(v.origin, [-4, -5, 6]);
});

test('no qform and no sform: NIfTI Method 1, RAS = diag(pixdim)·index', () => {
  writeFileSync(
    file('method1.nii'),
    rawNifti1(
      { dim: [3, 2, 2, 2, 1, 1, 1, 1], datatype: 2, bitpix: 8, pixdim: [0, 2, 3, 4, 0, 0, 0, 0] },
      new Uint8Array(8),
    ),
  );
  const v = readNifti(file('method1.nii'));
  assert.deepEqual(
    [v.spacing, v.origin, v.direction],
    [
      [2, 3, 4],
      [0, 0, 0],
      [-1, 0, 0, 0, -1, 0, 0, 0, 1],
    ],
  );
});

test('scl_slope/scl_inter: applied to float32 when not (1, 0), ignored when slope is 0', () => {
  const values = [-1000, 0, 7, 32767];
  const base = {
    dim: [3, 2, 2, 1, 1, 1, 1, 1],
    datatype: 4,
    bitpix: 16,
    sformCode: 1,
    srow: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0],
  };
  writeFileSync(file('scaled.nii'), rawNifti1({ ...base, slope: 0.5, inter: -10 }, int16Bytes(values)));
  const scaled = readNifti(file('scaled.nii'));
  assert.ok(scaled.data instanceof Float32Array);
  assert.deepEqual(Array.from(scaled.data), [-510, -10, -6.5, 16373.5]);
  for (const [slope, inter] of [
    [1, 0],
    [0, 5],
  ]) {
    writeFileSync(file('unscaled.nii'), rawNifti1({ ...base, slope, inter }, int16Bytes(values)));
    const kept = readNifti(file('unscaled.nii'));
    assert.ok(kept.data instanceof Int16Array, `slope ${slope}`);
    assert.deepEqual(Array.from(kept.data), values);
  }
});

test('big-endian files are byte-swapped (header and data)', () => {
  const values = [-2, 300, -30000, 12345, 1, 0, 7, -7];
  const fields = {
    dim: [3, 2, 2, 2, 1, 1, 1, 1],
    datatype: 4,
    bitpix: 16,
    pixdim: [1, 0.5, 0.5, 2, 1, 1, 1, 1],
  };
  writeFileSync(file('be.nii'), rawNifti1(fields, int16Bytes(values, false), false));
  const v = readNifti(file('be.nii'));
  assert.deepEqual(Array.from(v.data), values);
  assert.deepEqual(v.spacing, [0.5, 0.5, 2]);
});

test('vector images: 3-component round trip; intent 1006 (DISPVECT) is RAS and gets x, y negated', () => {
  const field = new Volume({
    data: Float32Array.from({ length: 24 }, (_, i) => i - 11.5),
    dims: [2, 2, 2],
    components: 3,
    spacing: [1, 2, 3],
  });
  writeNifti(file('field.nii.gz'), field);
  const back = readNifti(file('field.nii.gz'));
  assert.equal(back.components, 3);
  assert.deepEqual(Array.from(back.data), Array.from(field.data));

  const data = new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6]).buffer);
  writeFileSync(
    file('dispvect.nii'),
    rawNifti1({ dim: [5, 2, 1, 1, 1, 3, 1, 1], datatype: 16, bitpix: 32, intent: 1006 }, data),
  );
  assert.deepEqual(Array.from(readNifti(file('dispvect.nii')).data), [-1, -2, -3, -4, 5, 6]);
});

test('4D images need frame; frame k reads the k-th time point', () => {
  const values = Array.from({ length: 12 }, (_, i) => i * 10); // 2x2x1 voxels, 3 frames
  writeFileSync(
    file('cine.nii'),
    rawNifti1({ dim: [4, 2, 2, 1, 3, 1, 1, 1], datatype: 4, bitpix: 16 }, int16Bytes(values)),
  );
  assert.throws(() => readNifti(file('cine.nii')), {
    name: 'DiffregError',
    message: `${file('cine.nii')}: 4D image with 3 time frames; choose one (0..2) or save one time point as a 3D image`,
  });
  assert.deepEqual(Array.from(readNifti(file('cine.nii'), { frame: 2 }).data), [80, 90, 100, 110]);
  assert.throws(
    () => readNifti(file('cine.nii'), { frame: 3 }),
    /frame: expected an integer in \[0, 2\], got 3/,
  );
});

test('bad input: one-line DiffregError naming the file', () => {
  const volume = new Volume({
    data: Float32Array.from({ length: 4096 }, (_, i) => Math.sin(i)),
    dims: [16, 16, 16],
  });
  writeNifti(file('good.nii.gz'), volume);
  const gz = readFileSync(file('good.nii.gz'));
  writeFileSync(file('half.nii.gz'), gz.subarray(0, gz.length >> 1));
  const raw = gunzipSync(gz);
  writeFileSync(file('short.nii'), raw.subarray(0, 1000));
  const badSize = Buffer.from(raw);
  badSize.writeInt32LE(123, 0);
  writeFileSync(file('badsize.nii'), badSize);
  const cases: [string, RegExp][] = [
    ['missing.nii', /missing\.nii: file not found$/],
    ['half.nii.gz', /half\.nii\.gz: corrupt or truncated compressed data/],
    ['short.nii', /short\.nii: truncated: voxel data needs 16384 bytes from offset 352, file has 648$/],
    ['badsize.nii', /badsize\.nii: not a NIfTI file \(sizeof_hdr is 123, expected 348 or 540\)$/],
  ];
  for (const [name, message] of cases) {
    assert.throws(
      () => readNifti(file(name)),
      (e: Error) => e instanceof DiffregError && message.test(e.message) && !e.message.includes('\n'),
      name,
    );
  }
  for (const [code, name] of [
    [32, 'complex64'],
    [128, 'RGB24'],
    [1024, 'int64'],
  ] as const) {
    writeFileSync(
      file('odd.nii'),
      rawNifti1({ dim: [3, 1, 1, 1, 1, 1, 1, 1], datatype: code, bitpix: 64 }, new Uint8Array(8)),
    );
    assert.throws(
      () => readNifti(file('odd.nii')),
      new RegExp(`odd\\.nii: unsupported NIfTI datatype ${name} \\(supported:`),
    );
  }
  assert.throws(() => encodeNifti(new Volume({ data: new Uint8Array(40000), dims: [40000, 1, 1] })), {
    message: "volume: size 40000 exceeds NIfTI-1's limit of 32767; write NIfTI-2 (version 2)",
  });
  const big = new Volume({ data: new Uint8Array(40000), dims: [40000, 1, 1] });
  writeNifti(file('big.nii'), big, { version: 2 });
  assert.deepEqual(readNifti(file('big.nii')).dims, [40000, 1, 1]);
});

test('NaN/Inf voxels are rejected with their count unless allowNonFinite', () => {
  const data = Float32Array.from([0, NaN, 1, Infinity, -Infinity, 2, 3, 4]);
  writeNifti(file('nan.nii'), new Volume({ data, dims: [2, 2, 2] }));
  assert.throws(() => readNifti(file('nan.nii')), {
    message: `${file('nan.nii')}: 3 non-finite voxel values (NaN or Inf voxels are not accepted)`,
  });
  assert.ok(Number.isNaN(readNifti(file('nan.nii'), { allowNonFinite: true }).data[1]));
});

test('gzip output is a plain gzip stream of the .nii bytes', () => {
  const volume = new Volume({ data: Int16Array.from({ length: 8 }, (_, i) => i), dims: [2, 2, 2] });
  writeNifti(file('plain.nii.gz'), volume, { compressionLevel: 1 });
  assert.ok(gunzipSync(readFileSync(file('plain.nii.gz'))).equals(encodeNifti(volume)));
  writeFileSync(file('renamed.nii'), gzipSync(encodeNifti(volume))); // gzip detected by content
  assert.deepEqual(Array.from(readNifti(file('renamed.nii')).data), [0, 1, 2, 3, 4, 5, 6, 7]);
});

test('non-finite or degenerate geometry: one line naming the file and the field', () => {
  const base = { dim: [3, 2, 2, 2, 1, 1, 1, 1], datatype: 2, bitpix: 8, pixdim: [1, 2, 3, 4, 1, 1, 1, 1] };
  const rotation = { qformCode: 1, quatern: [0, 0, 0] };
  const cases: [string, Parameters<typeof rawNifti1>[0], string][] = [
    ['qinf.nii', { ...base, ...rotation, qoffset: [Infinity, 0, 0] }, 'qoffset_x is not finite (Infinity)'],
    ['qnan.nii', { ...base, qformCode: 1, quatern: [0, NaN, 0] }, 'quatern_c is not finite (NaN)'],
    [
      'pixnan.nii',
      { ...base, ...rotation, pixdim: [1, 2, NaN, 4, 1, 1, 1, 1] },
      'pixdim[2] (voxel size) is NaN, expected a positive number',
    ],
    [
      'pixzero.nii',
      { ...base, pixdim: [1, 2, 3, 0, 1, 1, 1, 1] },
      'pixdim[3] (voxel size) is 0, expected a positive number',
    ],
    [
      'singular.nii',
      { ...base, sformCode: 1, srow: [1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0] },
      'the sform matrix (srow_x/y/z) is singular and there is no qform',
    ],
    [
      'snan.nii',
      { ...base, sformCode: 1, srow: [1, 0, 0, 0, 0, 1, 0, NaN, 0, 0, 1, 0] },
      'srow_y[3] is not finite (NaN) and there is no qform',
    ],
  ];
  for (const [name, fields, message] of cases) {
    writeFileSync(file(name), rawNifti1(fields, new Uint8Array(8)));
    assert.throws(
      () => readNifti(file(name)),
      { name: 'DiffregError', message: `${file(name)}: ${message}` },
      name,
    );
  }
  // An unusable sform with a qform: the qform places the image (nifti1.h's fallback).
  writeFileSync(
    file('sform-nan-qform.nii'),
    rawNifti1(
      { ...base, ...rotation, qoffset: [1, 2, 3], sformCode: 1, srow: new Array(12).fill(NaN) },
      new Uint8Array(8),
    ),
  );
  const v = readNifti(file('sform-nan-qform.nii'));
  assert.deepEqual(
    [v.spacing, v.origin],
    [
      [2, 3, 4],
      [-1, -2, 3],
    ],
  );
  // A 2-D image has no third voxel size: pixdim[3] = 0 is read as 1 mm.
  writeFileSync(
    file('flat.nii'),
    rawNifti1(
      { ...base, dim: [2, 4, 2, 1, 1, 1, 1, 1], pixdim: [1, 2, 3, 0, 0, 0, 0, 0] },
      new Uint8Array(8),
    ),
  );
  assert.deepEqual(readNifti(file('flat.nii')).spacing, [2, 3, 1]);
});

test('a single file whose magic is not "n+1"/"n+2" is refused; a .hdr/.img pair without it is ANALYZE 7.5', () => {
  const fields = { dim: [3, 2, 2, 2, 1, 1, 1, 1], datatype: 2, bitpix: 8, pixdim: [1, 2, 3, 4, 1, 1, 1, 1] };
  const voxels = Uint8Array.from({ length: 8 }, (_, i) => i * 3);
  for (const magic of ['\0\0\0\0', 'n+3\0', 'xyz\0']) {
    writeFileSync(file('nomagic.nii'), rawNifti1({ ...fields, magic }, voxels));
    assert.throws(() => readNifti(file('nomagic.nii')), {
      name: 'DiffregError',
      message: `${file('nomagic.nii')}: bad NIfTI-1 magic ${JSON.stringify(magic.slice(0, 3))} (expected "n+1" (or a .hdr/.img pair))`,
    });
  }
  const pair = rawNifti1({ ...fields, magic: '\0\0\0\0', qformCode: 1, qoffset: [5, 6, 7] }, voxels);
  pair.writeFloatLE(0, 108); // vox_offset 0: the voxels start the .img
  writeFileSync(file('analyze.hdr'), pair.subarray(0, 348));
  writeFileSync(file('analyze.img'), voxels);
  const analyze = readNifti(file('analyze.hdr'));
  assert.deepEqual(Array.from(analyze.data), Array.from(voxels));
  // ANALYZE has no qform: its bytes are ignored, Method 1 (origin 0, RAS = diag(pixdim)) applies.
  assert.deepEqual(
    [analyze.spacing, analyze.origin],
    [
      [2, 3, 4],
      [0, 0, 0],
    ],
  );
});

test('gzip decompression is bounded by the header: a stream longer than the header says is refused', () => {
  const volume = new Volume({ data: Uint8Array.from({ length: 8 }, (_, i) => i), dims: [2, 2, 2] });
  const bytes = encodeNifti(volume);
  writeFileSync(file('long.nii.gz'), gzipSync(Buffer.concat([bytes, Buffer.alloc(1 << 20)])));
  assert.throws(() => readNifti(file('long.nii.gz')), {
    name: 'DiffregError',
    message: `${file('long.nii.gz')}: compressed data decompress to more than the 360 bytes the header describes`,
  });
  writeFileSync(file('exact.nii.gz'), gzipSync(bytes));
  assert.deepEqual(Array.from(readNifti(file('exact.nii.gz')).data), [0, 1, 2, 3, 4, 5, 6, 7]);
});

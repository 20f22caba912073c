/**
 * Reader fuzz test: seeded mutations (byte flips and extreme values in headers, random field values in
 * text headers, truncations) of NIfTI, MetaImage and NRRD files and of landmark files. Every read must
 * either give a consistent result (positive integer dims, data length = voxels × components, finite
 * positive spacing, finite origin and direction) or throw a one-line DiffregError — never another error
 * type (a bug: "internal error" at the CLI), never hang (the test's timeout), and never grow the
 * process by more than the files could justify (headers claiming huge images are refused before any
 * allocation). Reads run in-process; ITK-backed formats get fewer iterations (each read is ~20 ms).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { Volume } from '../../src/geometry/volume.ts';
import { readLandmarks, writeLandmarks, Landmarks } from '../../src/io/landmarks.ts';
import { readVolume, writeVolume } from '../../src/io/volume-io.ts';
import { DiffregError } from '../../src/util/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'diffreg-fuzz-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string) => join(dir, name);

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const random = mulberry32(20240519);
const below = (n: number) => Math.floor(random() * n);
const pick = <T>(items: readonly T[]): T => items[below(items.length)];

const EXTREME_NUMBERS = [
  0,
  -1,
  1,
  2,
  -0,
  7,
  255,
  32767,
  -32768,
  65535,
  2 ** 31 - 1,
  -(2 ** 31),
  1e38,
  -1e38,
  1e-38,
  NaN,
  Infinity,
  -Infinity,
];
const EXTREME_TEXT = [
  '0',
  '-1',
  '1',
  '2',
  '4 4',
  '4 4 4 4',
  '1e308',
  '-1e308',
  '1e999',
  'nan',
  'inf',
  '-inf',
  '',
  'x',
  '99999999999',
  '4294967297 1 1',
  '0.5 0.5 0.5',
  '3 3 3',
  'True',
  'False',
  'LOCAL',
  'missing.raw',
  'MET_FOO',
  'MET_DOUBLE',
  'MET_LONG_LONG',
  'gzip',
  'raw',
  'bzip2',
  'int64',
  'block',
  '(nan,0,0) (0,1,0) (0,0,1)',
  '(0,0,0) (0,0,0) (0,0,0)',
  'none',
];

/** One random change to a binary header: flipped bits, or an extreme number at an aligned offset. */
function mutateBinary(bytes: Buffer, headerLength: number): Buffer {
  const out = Buffer.from(bytes);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const changes = 1 + below(3);
  for (let c = 0; c < changes; c++) {
    const kind = below(4);
    if (kind === 0) out[below(headerLength)] ^= 1 << below(8);
    else if (kind === 1) out[below(headerLength)] = below(256);
    else {
      const width = pick([2, 4, 8]);
      const at = below(Math.floor(headerLength / width)) * width;
      const v = pick(EXTREME_NUMBERS);
      // kind 2 writes floats, kind 3 integers (2-byte fields are integers in both headers).
      const integer = Math.trunc(Number.isFinite(v) ? v : 2 ** 53);
      if (width === 2) view.setInt16(at, integer, true);
      else if (width === 4 && kind === 2) view.setFloat32(at, v, true);
      else if (width === 4) view.setInt32(at, integer, true);
      else if (kind === 2) view.setFloat64(at, v, true);
      else view.setBigInt64(at, BigInt(integer), true);
    }
  }
  return out;
}

/** A prefix of random length (at least one byte). */
const truncate = (bytes: Buffer): Buffer => bytes.subarray(0, 1 + below(bytes.length - 1));

/** One random change to a text header: a line's value replaced or removed, a byte changed. */
function mutateTextHeader(bytes: Buffer, headerLength: number, separator: string): Buffer {
  const header = bytes.toString('latin1', 0, headerLength).split('\n');
  const line = 1 + below(header.length - 2);
  const kind = below(4);
  if (kind === 0) header.splice(line, 1);
  else if (kind === 1) header[line] = header[line].slice(0, below(header[line].length + 1));
  else {
    const at = header[line].indexOf(separator);
    if (at > 0) header[line] = header[line].slice(0, at + separator.length) + pick(EXTREME_TEXT);
  }
  const text = Buffer.from(header.join('\n'), 'latin1');
  if (kind === 3 && text.length > 0) text[below(text.length)] = below(256);
  return Buffer.concat([text, bytes.subarray(headerLength)]);
}

/** Checks one read: a consistent Volume or a one-line DiffregError; returns which it was. */
function judge(where: string, outcome: { volume?: Volume; error?: unknown }): 'read' | 'refused' {
  if (outcome.error !== undefined) {
    const e = outcome.error as Error;
    assert.ok(e instanceof DiffregError, `${where}: ${e?.stack ?? e}`);
    assert.ok(!e.message.includes('\n'), `${where}: multi-line message ${JSON.stringify(e.message)}`);
    return 'refused';
  }
  const v = outcome.volume!;
  assert.ok(
    v.dims.every((d) => Number.isSafeInteger(d) && d > 0),
    `${where}: dims ${v.dims}`,
  );
  assert.equal(v.data.length, v.dims[0] * v.dims[1] * v.dims[2] * v.components, `${where}: data length`);
  assert.ok(
    v.spacing.every((s) => Number.isFinite(s) && s > 0),
    `${where}: spacing ${v.spacing}`,
  );
  assert.ok([...v.origin, ...v.direction].every(Number.isFinite), `${where}: geometry`);
  return 'read';
}

async function attempt(where: string, read: () => Promise<Volume> | Volume) {
  try {
    return judge(where, { volume: await read() });
  } catch (error) {
    if (error instanceof assert.AssertionError) throw error;
    return judge(where, { error });
  }
}

const sample = new Volume({
  data: Int16Array.from({ length: 6 * 5 * 4 }, (_, i) => ((i * 37) % 500) - 100),
  dims: [6, 5, 4],
  spacing: [0.8, 1.2, 2.5],
  origin: [-10, 20.5, 3],
  direction: [0, -1, 0, 1, 0, 0, 0, 0, 1],
});

/** Mutated copies of one image file: header mutations and truncations, read through readVolume. */
async function fuzzImage(name: string, iterations: number, mutate: (bytes: Buffer) => Buffer) {
  const original = readFileSync(file(name));
  const counts = { read: 0, refused: 0 };
  const rssLimit = process.memoryUsage().rss + 1024 * 1024 * 1024;
  for (let i = 0; i < iterations; i++) {
    const bytes = i % 5 === 4 ? truncate(original) : mutate(original);
    const path = file(`m-${name}`);
    writeFileSync(path, bytes);
    counts[
      await attempt(`${name} #${i} (${bytes.toString('base64').slice(0, 2000)})`, () => readVolume(path))
    ]++;
    assert.ok(process.memoryUsage().rss < rssLimit, `${name} #${i}: memory grew by more than 1 GiB`);
  }
  return counts;
}

test(
  'fuzzed image headers and truncations: a consistent image or a one-line DiffregError',
  { timeout: 180_000 },
  async (t) => {
    await writeVolume(file('a.nii'), sample);
    await writeVolume(file('a2.nii.gz'), sample, { version: 2 });
    await writeVolume(file('a.mha'), sample);
    await writeVolume(file('b.mha'), sample, { compress: false });
    const nrrdHeader = [
      'NRRD0004',
      'type: short',
      'dimension: 3',
      'space: left-posterior-superior',
      'sizes: 6 5 4',
      'space directions: (0,0.8,0) (-1.2,0,0) (0,0,2.5)',
      'kinds: domain domain domain',
      'endian: little',
      'encoding: raw',
      'space origin: (-10,20.5,3)',
      '',
      '',
    ].join('\n');
    const voxels = Buffer.from(sample.data.buffer);
    writeFileSync(file('a.nrrd'), Buffer.concat([Buffer.from(nrrdHeader, 'latin1'), voxels]));
    const gzHeader = nrrdHeader.replace('encoding: raw', 'encoding: gzip');
    writeFileSync(file('b.nrrd'), Buffer.concat([Buffer.from(gzHeader, 'latin1'), gzipSync(voxels)]));

    // Each unmutated file reads back as written: the mutations start from valid files.
    for (const name of ['a.nii', 'a2.nii.gz', 'a.mha', 'b.mha', 'a.nrrd', 'b.nrrd']) {
      const v = await readVolume(file(name));
      assert.deepEqual(Array.from(v.data), Array.from(sample.data), name);
      v.spacing.forEach((s, a) => assert.ok(Math.abs(s - sample.spacing[a]) < 1e-6, `${name} spacing`));
    }

    const textHeaderLength = (name: string) => {
      const bytes = readFileSync(file(name));
      const marker = name.endsWith('.mha') ? 'ElementDataFile = LOCAL\n' : '\n\n';
      return bytes.indexOf(marker) + marker.length;
    };
    const started = Date.now();
    const report: Record<string, { read: number; refused: number }> = {};
    report['a.nii'] = await fuzzImage('a.nii', 3000, (b) => mutateBinary(b, 352));
    const raw2 = gunzipSync(readFileSync(file('a2.nii.gz')));
    report['a2.nii.gz'] = await fuzzImage('a2.nii.gz', 800, (b) =>
      below(4) === 0 ? mutateBinary(b, b.length) : gzipSync(mutateBinary(raw2, 544)),
    );
    for (const name of ['a.mha', 'b.mha']) {
      const length = textHeaderLength(name);
      report[name] = await fuzzImage(name, 150, (b) =>
        below(4) === 0 ? mutateBinary(b, b.length) : mutateTextHeader(b, length, ' = '),
      );
    }
    for (const name of ['a.nrrd', 'b.nrrd']) {
      const length = textHeaderLength(name);
      report[name] = await fuzzImage(name, 100, (b) =>
        below(4) === 0 ? mutateBinary(b, b.length) : mutateTextHeader(b, length, ': '),
      );
    }
    t.diagnostic(`image reads in ${Date.now() - started} ms: ${JSON.stringify(report)}`);
    // Both outcomes occur: the mutations neither all miss nor all break the files.
    for (const [name, c] of Object.entries(report))
      assert.ok(c.read > 0 && c.refused > 0, `${name}: ${JSON.stringify(c)}`);
  },
);

/** One random change to a text file: a number made extreme, a character dropped or inserted. */
function mutateText(text: string): string {
  const kind = below(4);
  if (kind === 0) {
    const numbers = [...text.matchAll(/-?\d+(\.\d+)?(e-?\d+)?/g)];
    if (numbers.length) {
      const m = pick(numbers);
      return text.slice(0, m.index) + pick(EXTREME_TEXT) + text.slice(m.index! + m[0].length);
    }
  }
  const at = below(text.length);
  if (kind === 1) return text.slice(0, at) + text.slice(at + 1);
  if (kind === 2)
    return (
      text.slice(0, at) +
      pick([',', '"', '\n', ' ', '[', ']', '{', '}', 'null', '1e999', 'x']) +
      text.slice(at)
    );
  return text.slice(0, 1 + at);
}

/** One random change to a JSON document: a value replaced by another JSON type. */
function mutateJson(text: string): string {
  const doc = JSON.parse(text);
  const paths: (string | number)[][] = [];
  const walk = (v: unknown, path: (string | number)[]) => {
    paths.push(path);
    if (v && typeof v === 'object')
      for (const [k, c] of Object.entries(v)) walk(c, [...path, Array.isArray(v) ? Number(k) : k]);
  };
  walk(doc, []);
  const path = pick(paths.slice(1));
  let parent = doc;
  for (const key of path.slice(0, -1)) parent = parent[key];
  parent[path[path.length - 1]] = pick([
    null,
    [],
    {},
    'x',
    1e308,
    -1,
    0,
    [1, 2],
    [1, 2, 'x'],
    true,
    { position: 1 },
  ]);
  return JSON.stringify(doc);
}

test('fuzzed landmark files: landmarks or a one-line DiffregError', { timeout: 60_000 }, (t) => {
  const points = new Landmarks(
    [
      [1.5, -2, 3],
      [10, 20, 30.25],
      [-7, 0, 12],
    ],
    ['a', 'b,c', 'd'],
  );
  const reference = { dims: [40, 40, 40], spacing: [1, 1, 2], origin: [-20, -20, -20] };
  writeLandmarks(file('p.csv'), points);
  writeLandmarks(file('p.mrk.json'), points);
  writeLandmarks(file('p.txt'), points, { format: 'elastix' });
  writeFileSync(file('q.txt'), 'index\n2\n1 2 3\n4 5 6\n');
  const started = Date.now();
  const counts = { read: 0, refused: 0 };
  for (const name of ['p.csv', 'p.mrk.json', 'p.txt', 'q.txt']) {
    const original = readFileSync(file(name), 'utf8');
    for (let i = 0; i < 1000; i++) {
      const text = name.endsWith('.json') && i % 2 ? mutateJson(original) : mutateText(original);
      const path = file(`m-${name}`);
      writeFileSync(path, text);
      try {
        const read = readLandmarks(path, { reference, allowOutside: i % 2 === 0 });
        assert.ok(read.count > 0 && read.points.every(Number.isFinite), `${name} #${i}: ${text}`);
        counts.read++;
      } catch (e) {
        assert.ok(
          e instanceof DiffregError,
          `${name} #${i} (${JSON.stringify(text)}): ${(e as Error).stack}`,
        );
        assert.ok(
          !e.message.includes('\n'),
          `${name} #${i}: multi-line message ${JSON.stringify(e.message)}`,
        );
        counts.refused++;
      }
    }
  }
  t.diagnostic(`landmark reads in ${Date.now() - started} ms: ${JSON.stringify(counts)}`);
  assert.ok(counts.read > 0 && counts.refused > 0);
});

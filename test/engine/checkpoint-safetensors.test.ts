/**
 * safetensors: the shared fixtures parse to the shapes, dtypes and values their JSON files list;
 * writing gives the documented byte layout; malformed files fail with one line naming the file.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseSafetensors,
  readSafetensors,
  readSafetensorsHeader,
  serializeSafetensors,
  toFloat32,
  toTypedArray,
  writeSafetensors,
  type RawTensor,
} from '../../src/engine/checkpoint/index.ts';
import { requireShared } from '../helpers/shared.ts';
import { assertOneLineError } from './checkpoint-helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'diffreg-st-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const f32 = (shape: number[], values: number[]): RawTensor => ({
  dtype: 'float32',
  shape,
  data: new Uint8Array(Float32Array.from(values).buffer),
});

const fixtureLists: [string, string, string][] = [
  ['maisi-unet-tiny', 'unet_io.safetensors', 'config.json'],
  ['maisi-vae-tiny', 'vae_io.safetensors', 'config.json'],
  ['meddift-tiny', 'meddift_tiny.safetensors', 'meddift_tiny.json'],
  ['scheduler', 'scheduler.safetensors', 'scheduler.json'],
];

for (const [folder, file, listing] of fixtureLists) {
  test(`${folder}/${file}: names, shapes and dtypes as ${listing} lists them`, (t) => {
    const path = requireShared(t, 'fixtures', folder, file);
    if (!path) return;
    const list = JSON.parse(readFileSync(join(path, '..', listing), 'utf8')).tensors as Record<
      string,
      { shape: number[]; dtype: string }
    >;
    const header = readSafetensorsHeader(path);
    assert.deepEqual(
      Object.fromEntries(header.entries.map((e) => [e.name, { shape: e.shape, dtype: e.dtype }])),
      list,
    );
    assert.equal(header.dataStart % 8, 0, 'header padded to a multiple of 8');
    // Reading from memory gives the same bytes as ranged reads from the file.
    const fromFile = readSafetensors(path);
    const fromBuffer = parseSafetensors(readFileSync(path), file);
    assert.deepEqual([...fromFile.tensors.keys()], Object.keys(list));
    for (const [name, x] of fromBuffer.tensors) {
      assert.equal(Buffer.compare(fromFile.tensors.get(name)!.data, x.data), 0, name);
    }
    assert.deepEqual(fromFile.metadata, fromBuffer.metadata);
  });
}

test('unet_io.safetensors: known values of the conditioning inputs', (t) => {
  const path = requireShared(t, 'fixtures', 'maisi-unet-tiny', 'unet_io.safetensors');
  if (!path) return;
  const names = ['b1.timesteps', 'b2.timesteps', 'b1.spacing', 'b1.top_region_index', 'b2.spacing'];
  const { tensors, metadata } = readSafetensors(path, { names });
  assert.deepEqual([...tensors.keys()].sort(), [...names].sort());
  const b1t = tensors.get('b1.timesteps')!;
  assert.equal(b1t.dtype, 'int64');
  assert.deepEqual(b1t.shape, [1]);
  assert.deepEqual(toTypedArray(b1t), BigInt64Array.of(20n));
  assert.deepEqual(toTypedArray(tensors.get('b2.timesteps')!), BigInt64Array.of(0n, 999n));
  assert.deepEqual([...toFloat32(tensors.get('b1.spacing')!)], [68.375, 75, 125]);
  assert.deepEqual([...toFloat32(tensors.get('b1.top_region_index')!)], [0, 100, 0, 0]);
  assert.deepEqual([...toFloat32(tensors.get('b2.spacing')!)], [150, 150, 150, 80, 80, 250]);
  assert.equal(typeof metadata.fixture, 'string');
});

test('vae_io.safetensors and scheduler.safetensors: shapes and exact values', (t) => {
  const vae = requireShared(t, 'fixtures', 'maisi-vae-tiny', 'vae_io.safetensors');
  const sched = requireShared(t, 'fixtures', 'scheduler', 'scheduler.safetensors');
  if (!vae || !sched) return;
  const v = readSafetensors(vae).tensors;
  assert.deepEqual(v.get('x')!.shape, [1, 1, 32, 32, 32]);
  assert.deepEqual(v.get('z_mu')!.shape, [1, 4, 8, 8, 8]);
  const x = toFloat32(v.get('x')!);
  assert.ok(
    x.every((e) => e >= 0 && e <= 1),
    'x is a volume in [0, 1]',
  );
  // scheduler.json prints every float32 beta exactly; the tensor must hold the same values.
  const doc = JSON.parse(readFileSync(join(sched, '..', 'scheduler.json'), 'utf8'));
  const s = readSafetensors(sched, { names: ['betas_f32', 'ddim50.timesteps'] }).tensors;
  assert.deepEqual(
    [...toFloat32(s.get('betas_f32')!)],
    (doc.betas as string[]).map((b) => Math.fround(Number(b))),
  );
  assert.deepEqual(
    [...toTypedArray(s.get('ddim50.timesteps')!)],
    (doc.ddim50_timesteps as number[]).map(BigInt),
  );
});

test('write: exact layout, space-padded header, order and metadata kept', () => {
  const bytes = serializeSafetensors([['a', f32([2], [1, -2])]], { k: 'v' });
  const json = '{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
  const n = Math.ceil(json.length / 8) * 8;
  const expected = Buffer.concat([
    Buffer.from(new BigUint64Array([BigInt(n)]).buffer),
    Buffer.from(json.padEnd(n, ' ')),
    Buffer.from(Float32Array.of(1, -2).buffer),
  ]);
  assert.deepEqual(Buffer.from(bytes), expected);

  // Integer-like and non-ASCII names, a 0-dim and an empty tensor, several dtypes: order is the written order.
  const tensors: [string, RawTensor][] = [
    ['10', f32([], [3.5])],
    ['2', { dtype: 'int64', shape: [2], data: new Uint8Array(BigInt64Array.of(-1n, 2n ** 40n).buffer) }],
    ['é.bias', f32([0, 4], [])],
    ['h', { dtype: 'float16', shape: [1], data: new Uint8Array(Uint16Array.of(0x3c00).buffer) }],
    ['b', { dtype: 'bool', shape: [3], data: Uint8Array.of(1, 0, 1) }],
  ];
  const path = join(dir, 'mixed.safetensors');
  writeSafetensors(path, tensors, { note: 'x', json: '{"a":1}' });
  const back = readSafetensors(path);
  assert.deepEqual([...back.tensors], tensors);
  assert.deepEqual(back.metadata, { note: 'x', json: '{"a":1}' });
  const header = readSafetensorsHeader(path);
  assert.equal(header.dataStart % 8, 0);
  assert.match(readFileSync(path).subarray(8, header.dataStart).toString(), /^\{.*\}\x20*$/);
});

/** A safetensors file with the given header text and `data` bytes after it. */
function craft(name: string, header: string, data = 0, lengthField?: bigint): string {
  const json = Buffer.from(header);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(lengthField ?? BigInt(json.length));
  const path = join(dir, name);
  writeFileSync(path, Buffer.concat([head, json, Buffer.alloc(data)]));
  return path;
}

const entry = (dtype: string, shape: number[], begin: number, end: number): object => ({
  dtype,
  shape,
  data_offsets: [begin, end],
});

test('read errors: one line naming the file and the problem', () => {
  const tiny = join(dir, 'tiny.safetensors');
  writeFileSync(tiny, Uint8Array.of(1, 2, 3, 4, 5));
  const cases: [string, RegExp][] = [
    [tiny, /not a safetensors file \(5 bytes, shorter than the 8-byte header length\)/],
    [craft('zero.safetensors', ''), /header length 0 is not sane/],
    [craft('huge.safetensors', '{}', 0, 1n << 40n), /header length 1099511627776 is not sane/],
    [craft('past.safetensors', '{}', 0, 64n), /header length 64 runs past the end of the file/],
    [craft('json.safetensors', '{"a":'), /invalid safetensors header/],
    [
      craft('range.safetensors', JSON.stringify({ a: entry('F32', [4], 0, 16) }), 8),
      /tensor 'a': .*run past the data \(8 bytes\)/,
    ],
    [
      craft(
        'overlap.safetensors',
        JSON.stringify({ a: entry('F32', [2], 0, 8), b: entry('F32', [2], 4, 12) }),
        12,
      ),
      /tensor 'b': data_offsets \[4, 12\] overlap the previous tensor/,
    ],
    [
      craft('gap.safetensors', JSON.stringify({ a: entry('F32', [1], 4, 8) }), 8),
      /tensor 'a': 4 unused bytes before its data/,
    ],
    [
      craft('tail.safetensors', JSON.stringify({ a: entry('F32', [1], 0, 4) }), 8),
      /4 bytes after the last tensor/,
    ],
    [
      craft('dtype.safetensors', JSON.stringify({ a: entry('F8_E4M3', [1], 0, 1) }), 1),
      /tensor 'a': unsupported dtype "F8_E4M3"/,
    ],
    [
      craft('size.safetensors', JSON.stringify({ a: entry('F32', [3], 0, 8) }), 8),
      /shape \[3\] float32 needs 12/,
    ],
    [
      craft('meta.safetensors', JSON.stringify({ __metadata__: { n: 1 } })),
      /__metadata__ must map strings to strings/,
    ],
    [join(dir, 'missing.safetensors'), /file not found/],
  ];
  for (const [path, pattern] of cases) assertOneLineError(() => readSafetensors(path), path, pattern);
  // The in-memory parser applies the same checks.
  assert.throws(() => parseSafetensors(readFileSync(join(dir, 'overlap.safetensors')), 'mem'), {
    message: /^mem: tensor 'b': data_offsets \[4, 12\] overlap/,
  });
  const good = join(dir, 'good.safetensors');
  writeSafetensors(good, [['a', f32([1], [1])]]);
  assert.throws(() => readSafetensors(good, { names: ['nope'] }), { message: `${good}: no tensor 'nope'` });
});

test('write errors: wrong byte count or reserved name, and no file is left behind', () => {
  const path = join(dir, 'bad-write.safetensors');
  assert.throws(
    () => writeSafetensors(path, [['a', { dtype: 'float32', shape: [3], data: new Uint8Array(8) }]]),
    {
      message: `${path}: tensor 'a': 8 data bytes, shape [3] float32 needs 12`,
    },
  );
  assert.throws(() => writeSafetensors(path, [['__metadata__', f32([1], [0])]]), {
    message: `${path}: tensor name '__metadata__' is reserved or repeated`,
  });
  assert.throws(() => readSafetensorsHeader(path), { message: `${path}: file not found` });
});

/**
 * torch.save reading, checked against torch itself: fixtures-ref/pt-hashes.json holds per-tensor
 * SHA-256 and every other leaf value as torch 1.13 loads them (fixtures-ref/pt_hashes.py); when
 * a python3 with torch is present the JSON is also regenerated live and compared.
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import {
  convertCheckpoint,
  isRawTensor,
  loadStateDict,
  numel,
  readSafetensors,
  readTorchCheckpoint,
  scalarValue,
  toFloat32,
  toTypedArray,
  writeSafetensors,
  type RawTensor,
} from '../../src/engine/checkpoint/index.ts';
import { requireShared, sharedPath } from '../helpers/shared.ts';
import { assertOneLineError, refDir } from './checkpoint-helpers.ts';

interface Described {
  tensors: { name: string; dtype: string; shape: number[]; sha256: string }[];
  values: Record<string, unknown>;
}

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

/** The same walk as pt_hashes.py: tensors and other leaves under dotted paths, in order. */
function describe(tree: unknown): Described {
  const out: Described = { tensors: [], values: {} };
  const walk = (v: unknown, path: string): void => {
    const under = (k: unknown): string => (path ? `${path}.${String(k)}` : String(k));
    if (isRawTensor(v))
      out.tensors.push({ name: path, dtype: v.dtype, shape: v.shape, sha256: sha256(v.data) });
    else if (v instanceof Map) for (const [k, x] of v) walk(x, under(k));
    else if (Array.isArray(v)) v.forEach((x, i) => walk(x, under(i)));
    else if (typeof v === 'bigint') out.values[path] = { int: v.toString() };
    else if (v instanceof Uint8Array) out.values[path] = { bytes: Buffer.from(v).toString('hex') };
    else out.values[path] = v;
  };
  walk(tree, '');
  return out;
}

const reference = JSON.parse(readFileSync(join(refDir, 'pt-hashes.json'), 'utf8')) as Record<
  string,
  Described
>;

const manifest = (): {
  diffusion_unet: { state_dict: { name: string; shape: number[] }[] };
  autoencoder: { state_dict: { name: string; shape: number[] }[] };
} =>
  JSON.parse(
    readFileSync(sharedPath('fixtures', 'maisi-full-manifest', 'maisi_v1_ddpm_full_manifest.json'), 'utf8'),
  );

const configOf = (model: string): { checkpoint: { num_params: number } } =>
  JSON.parse(readFileSync(sharedPath('fixtures', model, 'config.json'), 'utf8'));

function paramCount(tensors: Map<string, RawTensor>): number {
  let n = 0;
  for (const t of tensors.values()) n += numel(t.shape);
  return n;
}

function assertKeysLikeManifest(
  tensors: Map<string, RawTensor>,
  entries: { name: string; shape: number[] }[],
): void {
  assert.deepEqual(
    [...tensors.keys()],
    entries.map((e) => e.name),
  );
  for (const e of entries) assert.equal(tensors.get(e.name)!.shape.length, e.shape.length, e.name);
}

test('unet.pt: top-level values and the 372 state-dict keys in manifest order', (t) => {
  const path = requireShared(t, 'fixtures', 'maisi-unet-tiny', 'unet.pt');
  if (!path) return;
  const top = readTorchCheckpoint(path);
  assert.ok(top instanceof Map);
  assert.deepEqual(
    [...top.keys()],
    ['epoch', 'loss', 'num_train_timesteps', 'scale_factor', 'unet_state_dict'],
  );
  assert.equal(top.get('epoch'), 1);
  assert.equal(top.get('loss'), 0.1234567890123);
  assert.equal(top.get('num_train_timesteps'), 1000);
  const scale = top.get('scale_factor') as RawTensor;
  assert.equal(scale.dtype, 'float32');
  assert.deepEqual(scale.shape, []);
  assert.equal(toFloat32(scale)[0], Math.fround(0.7875311970710754));

  const sd = loadStateDict(path, { key: 'unet_state_dict' });
  assert.equal(sd.tensors.size, 372);
  assertKeysLikeManifest(sd.tensors, manifest().diffusion_unet.state_dict);
  assert.equal(paramCount(sd.tensors), configOf('maisi-unet-tiny').checkpoint.num_params);
  assert.deepEqual([...sd.rest.keys()], ['epoch', 'loss', 'num_train_timesteps', 'scale_factor']);
  assert.equal(scalarValue(sd.rest.get('scale_factor')), Math.fround(0.7875311970710754));
  assert.deepEqual(sd.tensors.get('conv_in.conv.weight')!.shape, [4, 4, 3, 3, 3]);
  // Without a key, the only dict of tensors is found.
  assert.equal(loadStateDict(path).key, 'unet_state_dict');
});

test('autoencoder.pt: a plain state dict with the 130 keys in manifest order', (t) => {
  const path = requireShared(t, 'fixtures', 'maisi-vae-tiny', 'autoencoder.pt');
  if (!path) return;
  const sd = loadStateDict(path);
  assert.equal(sd.key, '');
  assert.equal(sd.rest.size, 0);
  assert.equal(sd.tensors.size, 130);
  assertKeysLikeManifest(sd.tensors, manifest().autoencoder.state_dict);
  assert.equal(paramCount(sd.tensors), configOf('maisi-vae-tiny').checkpoint.num_params);
});

function checkAgainstReference(file: string, path: string): void {
  const ours = describe(readTorchCheckpoint(path));
  const ref = reference[file];
  assert.ok(ref, `pt-hashes.json has no entry for ${file}`);
  assert.equal(ours.tensors.length, ref.tensors.length);
  assert.deepEqual(ours, ref);
}

test('tensor bytes and values are identical to what torch loads (pt-hashes.json)', (t) => {
  checkAgainstReference('views.pt', join(refDir, 'views.pt'));
  checkAgainstReference('views_p4.pt', join(refDir, 'views_p4.pt'));
  const unet = requireShared(t, 'fixtures', 'maisi-unet-tiny', 'unet.pt');
  const vae = sharedPath('fixtures', 'maisi-vae-tiny', 'autoencoder.pt');
  if (!unet) return;
  checkAgainstReference('maisi-unet-tiny/unet.pt', unet);
  checkAgainstReference('maisi-vae-tiny/autoencoder.pt', vae);
});

/** pt_hashes.py's output from the first python with torch (the script exits 3 without torch, a shell 127 without python). */
function liveReference(
  fixtures: string,
): { python: string; stdout: string; status: number | null; stderr: string } | undefined {
  for (const python of [process.env.DIFFREG_PYTHON, 'python3', '/usr/bin/python3']) {
    if (!python) continue;
    const run = spawnSync(python, [join(refDir, 'pt_hashes.py'), fixtures], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    if (!run.error && run.status !== 3 && run.status !== 127) return { python, ...run };
  }
  return undefined;
}

test('pt-hashes.json matches a live run of pt_hashes.py with torch', (t: TestContext) => {
  const fixtures = requireShared(t, 'fixtures');
  if (!fixtures) return;
  const run = liveReference(fixtures);
  if (!run) {
    const message =
      'SKIPPED live part: no python3 with torch; compared against the committed pt-hashes.json only';
    console.log(`# ${message}`);
    t.skip(message);
    return;
  }
  assert.equal(run.status, 0, `${run.python} pt_hashes.py failed: ${run.stderr}`);
  assert.deepEqual(JSON.parse(run.stdout), reference);
});

test('views.pt: strided views are gathered, contiguous views share their storage', () => {
  const top = readTorchCheckpoint(join(refDir, 'views.pt')) as Map<string, unknown>;
  const tensors = top.get('tensors') as Map<string, RawTensor>;
  const base = toFloat32(tensors.get('base')!);
  const at = (r: number, c: number): number => base[r * 6 + c];
  const transposed = toFloat32(tensors.get('transposed')!);
  assert.equal(transposed[2 * 4 + 3], at(3, 2));
  assert.deepEqual(
    [...toFloat32(tensors.get('slice_offset')!)],
    [at(1, 2), at(1, 3), at(1, 4), at(2, 2), at(2, 3), at(2, 4)],
  );
  assert.deepEqual([...toFloat32(tensors.get('expanded')!)], [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
  const row = tensors.get('row')!;
  assert.equal(row.data.buffer, tensors.get('base')!.data.buffer);
  assert.equal(row.data.byteOffset - tensors.get('base')!.data.byteOffset, 12 * 4);
  assert.deepEqual(toTypedArray(tensors.get('i64')!), BigInt64Array.of(2n ** 62n, -5n, 0n, 2n ** 53n + 1n));
  assert.deepEqual([...toTypedArray(tensors.get('bool')!)], [1, 0, 1]);
  assert.equal(scalarValue(tensors.get('f64_scalar')), 1 / 3);
  assert.deepEqual(tensors.get('empty'), { dtype: 'float32', shape: [0, 3], data: new Uint8Array(0) });
  assert.equal(top.get('huge_int'), 2n ** 70n);
  assert.equal(top.get('neg_int'), -123456);
  const items = top.get('items') as unknown[];
  assert.ok(Object.isFrozen(items[3]), 'tuples are frozen arrays');
  assert.ok(!Object.isFrozen(items), 'lists are mutable arrays');
});

test('toFloat32 decodes float16, bfloat16, float64 and integers', () => {
  const bits = (dtype: 'float16' | 'bfloat16', ...v: number[]): RawTensor => ({
    dtype,
    shape: [v.length],
    data: new Uint8Array(Uint16Array.from(v).buffer),
  });
  const half = toFloat32(bits('float16', 0x3c00, 0xc000, 0x7bff, 0x0001, 0x3555, 0x7c00, 0xfc00, 0x8000));
  assert.deepEqual([...half], [1, -2, 65504, 2 ** -24, Math.fround(0.333251953125), Infinity, -Infinity, -0]);
  assert.ok(Number.isNaN(toFloat32(bits('float16', 0x7e00))[0]));
  assert.deepEqual(
    [...toFloat32(bits('bfloat16', 0x3f80, 0xc040, 0x3eab))],
    [1, -3, Math.fround(0.333984375)],
  );
  const f64: RawTensor = {
    dtype: 'float64',
    shape: [2],
    data: new Uint8Array(Float64Array.of(0.1, -1e300).buffer),
  };
  assert.deepEqual([...toFloat32(f64)], [Math.fround(0.1), -Infinity]);
  const i64: RawTensor = {
    dtype: 'int64',
    shape: [2],
    data: new Uint8Array(BigInt64Array.of(-7n, 1n << 40n).buffer),
  };
  assert.deepEqual([...toFloat32(i64)], [-7, 2 ** 40]);
  const i8: RawTensor = { dtype: 'int8', shape: [2], data: Uint8Array.of(0xff, 0x7f) };
  assert.deepEqual([...toFloat32(i8)], [-1, 127]);
});

test('unet.pt → safetensors → back: every tensor bit-identical, order kept', (t) => {
  const path = requireShared(t, 'fixtures', 'maisi-unet-tiny', 'unet.pt');
  if (!path) return;
  const dir = mkdtempSync(join(tmpdir(), 'diffreg-ckpt-'));
  try {
    const sd = loadStateDict(path, { key: 'unet_state_dict' });
    const out = join(dir, 'unet.safetensors');
    writeSafetensors(out, sd.tensors, { note: 'round trip' });
    const back = readSafetensors(out);
    assert.deepEqual(back.metadata, { note: 'round trip' });
    assert.deepEqual([...back.tensors.keys()], [...sd.tensors.keys()]);
    for (const [name, t0] of sd.tensors) {
      const t1 = back.tensors.get(name)!;
      assert.equal(t1.dtype, t0.dtype);
      assert.deepEqual(t1.shape, t0.shape);
      assert.equal(sha256(t1.data), sha256(t0.data), name);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('convertCheckpoint: the nested state dict plus top-level scalars as metadata', (t) => {
  const path = requireShared(t, 'fixtures', 'maisi-unet-tiny', 'unet.pt');
  if (!path) return;
  const dir = mkdtempSync(join(tmpdir(), 'diffreg-ckpt-'));
  try {
    const out = join(dir, 'unet.safetensors');
    const result = convertCheckpoint(path, out, { key: 'unet_state_dict' });
    assert.equal(result.tensors, 372);
    assert.deepEqual(result.skipped, []);
    assert.deepEqual(result.metadata, {
      epoch: '1',
      loss: '0.1234567890123',
      num_train_timesteps: '1000',
      scale_factor: '0.7875311970710754',
    });
    const sd = loadStateDict(out, { key: 'unet_state_dict' });
    assert.equal(sd.rest.get('scale_factor'), Math.fround(0.7875311970710754));
    assert.equal(sd.rest.get('epoch'), 1);
    const ref = reference['maisi-unet-tiny/unet.pt'].tensors.filter((e) =>
      e.name.startsWith('unet_state_dict.'),
    );
    assert.deepEqual(
      [...sd.tensors].map(([name, x]) => ({
        name: `unet_state_dict.${name}`,
        dtype: x.dtype,
        shape: x.shape,
        sha256: sha256(x.data),
      })),
      ref,
    );
    // views.pt: the non-scalar, non-state-dict entries are reported, not silently dropped.
    const views = convertCheckpoint(join(refDir, 'views.pt'), join(dir, 'views.safetensors'), {
      key: 'tensors',
    });
    assert.deepEqual(views.skipped, ['nested', 'items', 'raw', 'param', 'buffers']);
    assert.equal(views.metadata.device, '"cuda:0"');
    assert.equal(views.metadata.huge_int, '1180591620717411303424');
    assert.equal(views.metadata.text, '"h\u00e9llo"');
    assert.equal(views.tensors, 17);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loadStateDict errors name the file and the problem in one line', (t) => {
  const path = requireShared(t, 'fixtures', 'maisi-unet-tiny', 'unet.pt');
  if (!path) return;
  assert.throws(() => loadStateDict(path, { key: 'state_dict' }), {
    name: 'DiffregError',
    message: `${path}: no key 'state_dict' (keys: epoch, loss, num_train_timesteps, scale_factor, unet_state_dict)`,
  });
  assert.throws(() => loadStateDict(path, { key: 'epoch' }), {
    message: `${path}: 'epoch' is not a dict of tensors`,
  });
  const views = join(refDir, 'views.pt');
  assertOneLineError(
    () => loadStateDict(views),
    views,
    /several state dicts \(tensors, buffers\); choose one with a key$/,
  );
  assert.deepEqual([...loadStateDict(views, { key: 'buffers' }).tensors.keys()], ['running_mean']);
  const missing = join(refDir, 'no-such.pt');
  assert.throws(() => loadStateDict(missing), {
    name: 'DiffregError',
    message: `${missing}: file not found`,
  });
  assert.throws(() => loadStateDict(join(refDir, 'absent.safetensors')), {
    message: /absent\.safetensors: file not found$/,
  });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  F,
  Generator,
  cosineScores,
  cosineTopK,
  dispose,
  getNumThreads,
  nearestRows,
  randn,
  tensor,
  searchLevel,
  setNumThreads,
  tidy,
  type Tensor,
} from '../../src/engine/index.ts';

// Two levels of different channel counts and grids, upsampled to a fine grid whose sizes are not
// multiples of theirs (so every axis has fractional taps and clamped borders).
const SIZE = [13, 17, 11];
const gen = new Generator(7);
const levels = [
  randn([6, 4, 5, 3], { generator: gen }).keep(),
  randn([3, 7, 9, 6], { generator: gen }).keep(),
];
const queries = [randn([5, 6], { generator: gen }).keep(), randn([5, 3], { generator: gen }).keep()];

/** MedDIFT's definition, by brute force: upsample, normalise (max(‖v‖, 1e-8)), dot, sum over levels. */
function reference(): Float32Array {
  return tidy(() => {
    let total: Tensor | undefined;
    levels.forEach((level, l) => {
      const up = F.interpolate(level.unsqueeze(0), { size: SIZE, mode: 'trilinear', alignCorners: false })
        .squeeze(0)
        .reshape(level.shape[0], -1);
      const part = queries[l].matmul(up.div(up.norm(2, 0, true).clamp(1e-8)));
      total = total ? total.add(part) : part;
    });
    return (total as Tensor).toTypedArray() as Float32Array;
  });
}

const prepared = () => levels.map((level, l) => searchLevel(level, queries[l]));
const N = SIZE[0] * SIZE[1] * SIZE[2];

test('cosineScores equals upsample → normalise → dot over the whole grid and over a box', () => {
  const expected = reference();
  const s = prepared();
  const all = cosineScores(s, { size: SIZE }).toTypedArray() as Float32Array;
  assert.equal(all.length, 5 * N);
  let err = 0;
  for (let i = 0; i < all.length; i++) err = Math.max(err, Math.abs(all[i] - expected[i]));
  assert.ok(err < 2e-5, `max error ${err}`);

  // A box and a query range: rows 2..3, voxels [3, 9) × [5, 17) × [0, 4).
  const lo = [3, 5, 0];
  const hi = [9, 17, 4];
  const box = cosineScores(s, { size: SIZE, lo, hi, first: 2, count: 2 }).toTypedArray() as Float32Array;
  const n = 6 * 12 * 4;
  for (let q = 0; q < 2; q++)
    for (let x = 3; x < 9; x++)
      for (let y = 5; y < 17; y++)
        for (let z = 0; z < 4; z++) {
          const got = box[q * n + ((x - 3) * 12 + (y - 5)) * 4 + z];
          const want = expected[(q + 2) * N + (x * SIZE[1] + y) * SIZE[2] + z];
          assert.ok(Math.abs(got - want) < 2e-5, `q${q + 2} (${x},${y},${z}): ${got} vs ${want}`);
        }
  dispose(s.flatMap((l) => [l.dots, l.gram]));
});

test('cosineTopK: the k best voxels in order, lowest index first among equal values, with 1 and 2 threads', () => {
  const expected = reference();
  const s = prepared();
  const threads = getNumThreads();
  for (const t of [1, 2]) {
    setNumThreads(t);
    const { values, indices } = cosineTopK(s, 10, { size: SIZE });
    const v = values.toTypedArray() as Float32Array;
    const ix = indices.toTypedArray() as BigInt64Array;
    for (let q = 0; q < 5; q++) {
      const row = expected.subarray(q * N, (q + 1) * N);
      const order = Array.from(row.keys()).sort((a, b) => row[b] - row[a] || a - b);
      // The reference's order can differ only where values agree to rounding; compare values, and
      // indices where the gap to the neighbours is clear.
      for (let j = 0; j < 10; j++) {
        assert.ok(Math.abs(v[q * 10 + j] - row[order[j]]) < 2e-5, `q${q} rank ${j}`);
        const gap = Math.min(
          j > 0 ? row[order[j - 1]] - row[order[j]] : Infinity,
          row[order[j]] - row[order[j + 1]],
        );
        if (gap > 1e-4) assert.equal(Number(ix[q * 10 + j]), order[j], `q${q} rank ${j} index`);
      }
    }
    dispose([values, indices]);
  }
  setNumThreads(threads);

  // Real ties: a level one voxel thick along axis 0 scores every x of a (y, z) line equally (and the
  // clamped border taps tie neighbouring lines too): the order must be value, then ascending index.
  for (const t of [1, 2]) {
    setNumThreads(t);
    const flatLevel = [searchLevel(levels[0].narrow(1, 0, 1).contiguous(), queries[0])];
    const { values, indices } = cosineTopK(flatLevel, 13, { size: SIZE, first: 3, count: 1 });
    const ix = Array.from(indices.toTypedArray() as BigInt64Array, Number);
    const v = values.toTypedArray() as Float32Array;
    const scores = cosineScores(flatLevel, { size: SIZE, first: 3, count: 1 });
    const row = scores.toTypedArray() as Float32Array;
    const order = Array.from(row.keys()).sort((a, b) => row[b] - row[a] || a - b);
    assert.deepEqual(ix, order.slice(0, 13));
    assert.ok(
      v.every((x) => x === v[0]),
      'the 13 best are tied',
    );
    assert.ok(ix[0] < SIZE[1] * SIZE[2], 'the first of the tied voxels has x = 0');
    scores.dispose();
    dispose([values, indices, ...flatLevel.flatMap((l) => [l.dots, l.gram])]);
  }
  setNumThreads(threads);
  dispose(s.flatMap((l) => [l.dots, l.gram]));
});

test('cosineTopK with a spherical window keeps only voxels inside it', () => {
  const expected = reference();
  const s = prepared();
  const center = [6.2, 8, 5];
  const spacing = [1, 0.5, 2];
  const radius = 3;
  const { values, indices } = cosineTopK(s, 400, {
    size: SIZE,
    lo: [3, 2, 3],
    hi: [10, 15, 7],
    first: 1,
    count: 1,
    window: { center, spacing, radius },
  });
  const v = values.toTypedArray() as Float32Array;
  const ix = indices.toTypedArray() as BigInt64Array;
  const inside: number[] = [];
  for (let x = 3; x < 10; x++)
    for (let y = 2; y < 15; y++)
      for (let z = 3; z < 7; z++) {
        const r2 =
          ((x - center[0]) * spacing[0]) ** 2 +
          ((y - center[1]) * spacing[1]) ** 2 +
          ((z - center[2]) * spacing[2]) ** 2;
        if (r2 <= radius * radius) inside.push((x * SIZE[1] + y) * SIZE[2] + z);
      }
  assert.equal(v.length, 7 * 13 * 4);
  const finite = Array.from(v).filter(Number.isFinite).length;
  assert.equal(finite, inside.length);
  const best = inside.reduce((a, b) => (expected[N + b] > expected[N + a] ? b : a));
  assert.equal(Number(ix[0]), best);
  assert.ok(Math.abs(v[0] - expected[N + best]) < 2e-5);
  dispose([values, indices, ...s.flatMap((l) => [l.dots, l.gram])]);
});

test('cosine search options are checked before native code', () => {
  const s = prepared();
  assert.throws(() => cosineTopK(s, 0, { size: SIZE }), /search k: expected an integer >= 1, got 0/);
  assert.throws(() => cosineTopK(s, 3, { size: [13, 17] }), /search size: expected three positive integers/);
  assert.throws(
    () => cosineTopK(s, 3, { size: SIZE, lo: [0, 0, 5], hi: [13, 17, 5] }),
    /search box: expected 0 <= lo < hi <= \[13, 17, 11\] per axis/,
  );
  assert.throws(() => cosineTopK(s, 3, { size: SIZE, first: 4, count: 2 }), /search query range/);
  assert.throws(
    () => cosineTopK(s, 3, { size: SIZE, window: { center: [1, 2, 3], spacing: [1, 1, 1], radius: 0 } }),
    /search window: expected a centre, a spacing \(3 values each\) and a radius > 0/,
  );
  assert.throws(() => searchLevel(levels[0], queries[1]), /search queries: expected a \(Q, 6\) tensor/);
  dispose(s.flatMap((l) => [l.dots, l.gram]));
});

test('nearestRows: the nearest code by squared distance, the lowest index among equal ones, with 1 and 2 threads', () => {
  // Integer coordinates: every distance is exact in float32, so ties are real ties. 37 codes (not a
  // multiple of the kernel's 16 lanes), codes 5 and 30 equal, code 33 equal to row 2 of x.
  const codes = Array.from({ length: 37 }, (_, k) => [(k * 7) % 11, (k * 5) % 9, (k * 3) % 13]);
  codes[30] = [...codes[5]];
  const rows = Array.from({ length: 150 }, (_, i) => [(i * 3) % 12, (i * 7) % 10, (i * 11) % 14]);
  rows[2] = [...codes[33]];
  const expected = rows.map((r) => {
    let best = 0;
    let least = Infinity;
    codes.forEach((e, k) => {
      const d = e.reduce((s, v, j) => s + (v - r[j]) ** 2, 0);
      if (d < least) [best, least] = [k, d];
    });
    return best;
  });
  assert.ok(expected.includes(5) && !expected.includes(30), 'the fixture exercises the tie');
  assert.equal(expected[2], 33);
  const threads = getNumThreads();
  tidy(() => {
    const x = tensor(rows);
    const e = tensor(codes);
    for (const t of [1, 2]) {
      setNumThreads(t);
      const got = Array.from(nearestRows(x, e).toTypedArray() as BigInt64Array, Number);
      assert.deepEqual(got, expected, `${t} threads`);
    }
  });
  setNumThreads(threads);
  assert.throws(
    () => tidy(() => nearestRows(randn([4, 2]), randn([5, 3]))),
    /nearest rows codes: expected a \(K, 2\) tensor with K >= 1/,
  );
  assert.throws(
    () => tidy(() => nearestRows(randn([4]), randn([5, 1]))),
    /nearest rows: expected a 2-D tensor/,
  );
});

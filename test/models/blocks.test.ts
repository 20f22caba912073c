/**
 * Shared transformer blocks against hand-worked values and naive loops: window partition order and
 * its inverse, the shifted-window mask, padded and shifted windows in 3-D, patch merging's neighbour
 * order, the relative-position index, and multi-head attention (self and cross, with per-head bias
 * and per-window masks, queries from the last tokens only) against a loop over sequences and heads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  arange,
  cat,
  Generator,
  manualSeed,
  nn,
  noGrad,
  randn,
  stack,
  tidy,
  type Tensor,
} from '../../src/engine/index.ts';
import {
  MASKED,
  MultiHeadAttention,
  PatchMerging,
  relativePositionIndex,
  ShiftedWindows,
  shiftedWindowMask,
  windowPartition,
  windowReverse,
} from '../../src/models/blocks/index.ts';
import { assertClose } from '../helpers/tensors.ts';

const values = (t: Tensor) => [...(t.toTypedArray() as Float32Array)].map(Number);

test('windowPartition orders windows row-major and tokens row-major inside; windowReverse undoes it', () => {
  // A 4×4 map whose value is its flat position y·4 + x; 2×2 windows.
  const x = arange(0, 16, 1).float().reshape(1, 4, 4, 1);
  const w = windowPartition(x, [2, 2]);
  assert.deepEqual(w.shape, [4, 4, 1]);
  // Window 1 is the top-right one: positions (0,2), (0,3), (1,2), (1,3).
  assert.deepEqual(values(w.select(0, 1).flatten()), [2, 3, 6, 7]);
  assert.deepEqual(values(w.select(0, 2).flatten()), [8, 9, 12, 13]);
  assert.deepEqual(values(windowReverse(w, [2, 2], [4, 4])), values(x));
  // 3-D, two batch elements, three channels: the round trip is exact.
  const v = randn([2, 4, 6, 4, 3], { generator: new Generator(1) });
  const wv = windowPartition(v, [2, 3, 2]);
  assert.deepEqual(wv.shape, [2 * 2 * 2 * 2, 12, 3]);
  assert.deepEqual(values(windowReverse(wv, [2, 3, 2], [4, 6, 4])), values(v));
  // The first token of batch 1's first window is v[1, 0, 0, 0].
  assert.deepEqual(
    values(wv.select(0, 8).select(0, 0)),
    values(v.select(0, 1).select(0, 0).select(0, 0).select(0, 0)),
  );
});

test('windowPartition refuses a window that does not divide the map', () => {
  assert.throws(
    () => windowPartition(randn([1, 5, 4, 1]), [2, 2]),
    /does not divide the feature map's axis 0 \(5\)/,
  );
});

test('shifted-window mask: the hand-worked 4×4 case, and tokens may attend exactly when the shift did not wrap between them', () => {
  const mask = shiftedWindowMask([4, 4], [2, 2], [1, 1]);
  assert.deepEqual(mask.shape, [4, 4, 4]);
  // Window 0 (top-left) holds no wrapped tokens: all zeros.
  assert.deepEqual(values(mask.select(0, 0).flatten()), new Array(16).fill(0));
  // Window 3 (bottom-right): rows 2/3 and columns 2/3 come from opposite ends: only self-pairs allowed.
  const m3 = values(mask.select(0, 3).flatten());
  for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) assert.equal(m3[i * 4 + j], i === j ? 0 : MASKED);
  // Window 1 (top-right): columns 2 and 3 differ, rows 0 and 1 do not.
  const m1 = values(mask.select(0, 1).flatten());
  assert.equal(m1[0 * 4 + 1], MASKED); // (0,2) vs (0,3)
  assert.equal(m1[0 * 4 + 2], 0); // (0,2) vs (1,2)

  // 3-D, against the wrap rule: rolled position p came from (p + shift) mod s; two tokens may attend
  // iff on every axis both or neither wrapped.
  const spatial = [4, 6, 4];
  const window = [2, 3, 2];
  const shift = [1, 1, 1];
  const m = values(shiftedWindowMask(spatial, window, shift));
  const grid = spatial.map((s, a) => s / window[a]);
  const n = 12;
  let checked = 0;
  for (let g = 0; g < grid[0] * grid[1] * grid[2]; g++) {
    const gpos = [Math.floor(g / (grid[1] * grid[2])), Math.floor(g / grid[2]) % grid[1], g % grid[2]];
    const pos = (t: number) => {
      const local = [Math.floor(t / 6), Math.floor(t / 2) % 3, t % 2];
      return local.map((l, a) => gpos[a] * window[a] + l);
    };
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const pi = pos(i);
        const pj = pos(j);
        const same = pi.every((p, a) => p + shift[a] >= spatial[a] === pj[a] + shift[a] >= spatial[a]);
        assert.equal(m[(g * n + i) * n + j], same ? 0 : MASKED, `window ${g} tokens ${i},${j}`);
        checked++;
      }
    }
  }
  assert.equal(checked, 8 * 144);
});

test('ShiftedWindows in 3-D: the grid padded at the end of each axis, rolled, partitioned, and back exactly', () => {
  const windows = new ShiftedWindows({ grid: [5, 3, 2], window: [2, 2, 2] }, [1, 1, 1]);
  assert.deepEqual(windows.padded, [6, 4, 2]);
  const x = randn([2, 5, 3, 2, 3], { generator: new Generator(4) });
  const parts = windows.partition(x);
  assert.deepEqual(parts.shape, [2 * 3 * 2 * 1, 8, 3]);
  // Zero tokens fill the 6·4·2 − 5·3·2 padded positions of each map and channel.
  assert.equal(parts.eq(0).sum().item(), 2 * 18 * 3);
  assert.deepEqual(values(windows.reverse(parts)), values(x));
});

test('PatchMerging concatenates neighbours in MONAI PatchMergingV2 order: rows fastest in 2-D, the last axis in 3-D', () => {
  const order = (spatialDims: 2 | 3, x: Tensor) => values(new PatchMerging(1, spatialDims).neighbourhoods(x));
  // A 2×2 plane holding 2y + x at (y, x), and a 2×2×2 cube holding 4i + 2j + k.
  assert.deepEqual(order(2, arange(0, 4, 1).float().reshape(1, 2, 2, 1)), [0, 2, 1, 3]);
  assert.deepEqual(order(3, arange(0, 8, 1).float().reshape(1, 2, 2, 2, 1)), [0, 1, 2, 3, 4, 5, 6, 7]);
  // Odd axes are zero-padded at the end: 3×2 → 2×1 positions, the second with zeros for row 3.
  assert.deepEqual(order(2, arange(1, 7, 1).float().reshape(1, 3, 2, 1)), [1, 3, 2, 4, 5, 0, 6, 0]);
});

test('relative-position index: hand values for a 2×2 window and the 3-D table size', () => {
  // (Δy + 1)·3 + (Δx + 1) for tokens (0,0), (0,1), (1,0), (1,1).
  assert.deepEqual(
    [...(relativePositionIndex([2, 2]).toTypedArray() as BigInt64Array)].map(Number),
    [4, 3, 1, 0, 5, 4, 2, 1, 7, 6, 4, 3, 8, 7, 5, 4],
  );
  const idx = [...(relativePositionIndex([2, 3, 2]).toTypedArray() as BigInt64Array)].map(Number);
  assert.equal(Math.max(...idx), 3 * 5 * 3 - 1);
  assert.equal(Math.min(...idx), 0);
  // The diagonal (zero offset) is the table's centre.
  assert.equal(idx[0], (3 * 5 * 3 - 1) / 2);
});

/** softmax(q kᵀ/√d + bias[h] + mask[b mod G]) v per sequence and head, then the output projection. */
function naiveAttention(
  attn: MultiHeadAttention,
  x: Tensor,
  context: Tensor,
  bias: Tensor | undefined,
  mask: Tensor | undefined,
): Tensor {
  return tidy(() => {
    const [b, , c] = x.shape;
    const d = attn.headDim;
    // Rows [start, start + d) of a projection: one head's share of q, k or v.
    const rows = (layer: nn.Linear | null, t: Tensor, start: number) =>
      t
        .matmul((layer as nn.Linear).weight.narrow(0, start, d).t())
        .add(((layer as nn.Linear).bias as Tensor).narrow(0, start, d));
    const sequences: Tensor[] = [];
    for (let s = 0; s < b; s++) {
      const xs = x.select(0, s);
      const cs = context.select(0, s);
      const heads: Tensor[] = [];
      for (let h = 0; h < attn.heads; h++) {
        const [q, k, v] = attn.qkv
          ? [rows(attn.qkv, xs, h * d), rows(attn.qkv, xs, c + h * d), rows(attn.qkv, xs, 2 * c + h * d)]
          : [rows(attn.q, xs, h * d), rows(attn.kv, cs, h * d), rows(attn.kv, cs, c + h * d)];
        let scores = q.matmul(k.t()).div(Math.sqrt(d));
        if (bias) scores = scores.add(bias.select(0, h));
        if (mask) scores = scores.add(mask.select(0, s % mask.shape[0]));
        heads.push(scores.softmax(-1).matmul(v));
      }
      sequences.push(cat(heads, -1));
    }
    return attn.proj.forward(stack(sequences, 0));
  });
}

test('multi-head self-attention with relative bias and window masks equals the per-sequence, per-head loop', () => {
  manualSeed(3);
  const g = new Generator(4);
  const attn = new MultiHeadAttention(8, 2);
  // 3 images × 2 windows of 5 tokens; the mask is per window (batch ordered window-fastest).
  const x = randn([6, 5, 8], { generator: g });
  const bias = randn([2, 5, 5], { generator: g });
  const mask = randn([2, 5, 5], { generator: g }).gt(0.5).float().mul(MASKED);
  noGrad(() => {
    assertClose(attn.forward(x, { bias, mask }), naiveAttention(attn, x, x, bias, mask), 'bias + mask', 1e-5);
    assertClose(attn.forward(x), naiveAttention(attn, x, x, undefined, undefined), 'plain', 1e-5);
  });
});

test('multi-head cross-attention: queries from x, keys and values from a context of another width and length', () => {
  manualSeed(5);
  const g = new Generator(6);
  const attn = new MultiHeadAttention(8, 4, { contextDim: 6 });
  assert.deepEqual(
    [...attn.stateDict().keys()],
    ['q.weight', 'q.bias', 'kv.weight', 'kv.bias', 'proj.weight', 'proj.bias'],
  );
  const x = randn([2, 3, 8], { generator: g });
  const context = randn([2, 7, 6], { generator: g });
  const bias = randn([4, 3, 7], { generator: g });
  noGrad(() =>
    assertClose(
      attn.forward(x, { context, bias }),
      naiveAttention(attn, x, context, bias, undefined),
      'cross',
      1e-5,
    ),
  );
  assert.throws(() => attn.forward(x), /cross-attention needs a context/);
});

test('multi-head attention with queries from the last L tokens equals those rows of full attention', () => {
  manualSeed(7);
  const g = new Generator(8);
  const attn = new MultiHeadAttention(8, 2);
  // 2 images × 3 windows of 7 tokens; queries from the last 3.
  const x = randn([6, 7, 8], { generator: g });
  const bias = randn([2, 7, 7], { generator: g });
  const mask = randn([3, 7, 7], { generator: g }).gt(0.5).float().mul(MASKED);
  noGrad(() =>
    assertClose(
      attn.forward(x, { bias: bias.narrow(1, 4, 3), mask: mask.narrow(1, 4, 3), queryTokens: 3 }),
      naiveAttention(attn, x, x, bias, mask).narrow(1, 4, 3),
      'last 3 queries',
      1e-5,
    ),
  );
  assert.throws(() => attn.forward(x, { queryTokens: 8 }), /queryTokens: expected an integer in \[1, 7\]/);
});

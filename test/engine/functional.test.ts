import { test } from 'node:test';
import assert from 'node:assert/strict';
import { F, Generator, Tensor, arange, ones, randn, tensor, zeros } from '../../src/engine/index.ts';

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-4): void => {
  assert.equal(a.length, b.length, `length ${a.length} vs ${b.length}`);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol, `[${i}] ${a[i]} vs ${b[i]}`);
};

/** Naive 3-D convolution over row-major arrays (float64), PyTorch's definition (cross-correlation). */
function naiveConv3d(
  x: number[],
  [n, cin, d, h, w]: number[],
  wt: number[],
  [cout, , kd, kh, kw]: number[],
  bias: number[],
  s: number[],
  p: number[],
  dil: number[],
  groups: number,
): { out: number[]; shape: number[] } {
  const od = Math.floor((d + 2 * p[0] - dil[0] * (kd - 1) - 1) / s[0]) + 1;
  const oh = Math.floor((h + 2 * p[1] - dil[1] * (kh - 1) - 1) / s[1]) + 1;
  const ow = Math.floor((w + 2 * p[2] - dil[2] * (kw - 1) - 1) / s[2]) + 1;
  const cinG = cin / groups;
  const coutG = cout / groups;
  const out: number[] = [];
  for (let b = 0; b < n; b++)
    for (let co = 0; co < cout; co++)
      for (let z = 0; z < od; z++)
        for (let y = 0; y < oh; y++)
          for (let xx = 0; xx < ow; xx++) {
            let acc = bias[co];
            const g = Math.floor(co / coutG);
            for (let ci = 0; ci < cinG; ci++)
              for (let a = 0; a < kd; a++)
                for (let bb = 0; bb < kh; bb++)
                  for (let c = 0; c < kw; c++) {
                    const iz = z * s[0] - p[0] + a * dil[0];
                    const iy = y * s[1] - p[1] + bb * dil[1];
                    const ix = xx * s[2] - p[2] + c * dil[2];
                    if (iz < 0 || iy < 0 || ix < 0 || iz >= d || iy >= h || ix >= w) continue;
                    const xi = (((b * cin + g * cinG + ci) * d + iz) * h + iy) * w + ix;
                    const wi = (((co * cinG + ci) * kd + a) * kh + bb) * kw + c;
                    acc += x[xi] * wt[wi];
                  }
            out.push(acc);
          }
  return { out, shape: [n, cout, od, oh, ow] };
}

test('conv3d matches a naive loop (stride, padding, dilation, groups)', () => {
  const g = new Generator(1);
  const xs = [2, 4, 5, 6, 7];
  const ws = [6, 2, 3, 2, 3];
  const x = randn(xs, { generator: g });
  const w = randn(ws, { generator: g });
  const b = randn([6], { generator: g });
  const opts = { stride: [1, 2, 1], padding: [1, 0, 2], dilation: [1, 1, 2], groups: 2 };
  const y = F.conv3d(x, w, b, opts);
  const ref = naiveConv3d(
    x.toArray(),
    xs,
    w.toArray(),
    ws,
    b.toArray(),
    opts.stride,
    opts.padding,
    opts.dilation,
    2,
  );
  assert.deepEqual(y.shape, ref.shape);
  close(y.toArray(), ref.out);
  // padding 'same' keeps the spatial size.
  assert.deepEqual(F.conv3d(x, randn([3, 4, 3, 3, 3]), null, { padding: 'same' }).shape, [2, 3, 5, 6, 7]);
});

test('conv1d/conv2d reduce to the same naive loop', () => {
  const x = randn([1, 2, 5, 6]);
  const w = randn([3, 2, 3, 3]);
  const y = F.conv2d(x, w, null, { padding: 1 });
  const ref = naiveConv3d(
    x.toArray(),
    [1, 2, 1, 5, 6],
    w.toArray(),
    [3, 2, 1, 3, 3],
    [0, 0, 0],
    [1, 1, 1],
    [0, 1, 1],
    [1, 1, 1],
    1,
  );
  close(y.toArray(), ref.out);
  const x1 = tensor([[[1, 2, 3, 4]]]);
  close(F.conv1d(x1, tensor([[[1, 0, -1]]])).toArray(), [-2, -2]);
});

test('transposed convolution: a hand case and the adjoint identity <conv(x), y> = <x, convT(y)>', () => {
  // x = [1, 2], kernel [1, 1, 1], stride 2 → [1, 1, 1+2, 2, 2].
  close(
    F.convTranspose1d(tensor([[[1, 2]]]), tensor([[[1, 1, 1]]]), null, { stride: 2 }).toArray(),
    [1, 1, 3, 2, 2],
  );
  const g = new Generator(2);
  const x = randn([1, 3, 6, 7, 5], { generator: g });
  const w = randn([4, 3, 3, 3, 3], { generator: g });
  const o = { stride: 2, padding: 1 };
  const cx = F.conv3d(x, w, null, o);
  const y = randn(cx.shape, { generator: g });
  // Output padding restores the size lost to the stride's floor: 6 → 3 → 5 needs 1; 7 → 4 → 7 and 5 → 3 → 5 none.
  const ty = F.convTranspose3d(y, w, null, { ...o, outputPadding: [1, 0, 0] });
  assert.deepEqual(ty.shape, x.shape);
  const lhs = cx.mul(y).sum().item();
  const rhs = x.mul(ty).sum().item();
  assert.ok(Math.abs(lhs - rhs) < 1e-3 * Math.max(1, Math.abs(lhs)), `${lhs} vs ${rhs}`);
});

test('linear and matmul against a naive loop', () => {
  const x = tensor([
    [1, 2, 3],
    [4, 5, 6],
  ]);
  const w = tensor([
    [1, 0, 0],
    [0, 1, 0],
    [1, 1, 1],
    [2, -1, 0.5],
  ]);
  const b = tensor([0, 1, 2, 3]);
  close(F.linear(x, w, b).toArray(), [1, 3, 8, 4.5, 4, 6, 17, 9]);
  close(x.matmul(w.t()).toArray(), [1, 2, 6, 1.5, 4, 5, 15, 6]);
  close(F.bmm(x.unsqueeze(0), w.t().unsqueeze(0)).toArray(), [1, 2, 6, 1.5, 4, 5, 15, 6]);
});

test('normalisation layers against their formulas', () => {
  const g = new Generator(3);
  const x = randn([2, 4, 3], { generator: g });
  const w = tensor([1, 2, 3, 4]);
  const b = tensor([0, -1, 1, 0.5]);
  const xv = x.toArray();
  const y = F.groupNorm(x, 2, w, b, 1e-5).toArray();
  // Group (n, k) spans channels 2k, 2k+1: 6 values, biased variance.
  for (let n = 0; n < 2; n++)
    for (let k = 0; k < 2; k++) {
      const idx = [0, 1, 2, 3, 4, 5].map((i) => n * 12 + k * 6 + i);
      const mean = idx.reduce((s, i) => s + xv[i], 0) / 6;
      const v = idx.reduce((s, i) => s + (xv[i] - mean) ** 2, 0) / 6;
      for (const i of idx) {
        const c = Math.floor((i % 12) / 3);
        const want = ((xv[i] - mean) / Math.sqrt(v + 1e-5)) * w.toArray()[c] + b.toArray()[c];
        assert.ok(Math.abs(y[i] - want) < 1e-4, `${y[i]} vs ${want}`);
      }
    }
  const ln = F.layerNorm(x, [3]).toArray();
  for (let r = 0; r < 8; r++) {
    const row = xv.slice(r * 3, r * 3 + 3);
    const mean = (row[0] + row[1] + row[2]) / 3;
    const v = row.reduce((s, q) => s + (q - mean) ** 2, 0) / 3;
    close(
      ln.slice(r * 3, r * 3 + 3),
      row.map((q) => (q - mean) / Math.sqrt(v + 1e-5)),
    );
  }
  const inorm = F.instanceNorm(x);
  close(inorm.mean(2).toArray(), new Array(8).fill(0));
  close(inorm.var(2, { unbiased: false }).toArray(), new Array(8).fill(1), 1e-3);
});

test('softmax, logSoftmax and attention against naive computations', () => {
  const x = tensor([
    [1, 2, 3],
    [0, 0, Math.log(2)],
  ]);
  const e = [Math.E, Math.E ** 2, Math.E ** 3];
  const s = e.reduce((a, b) => a + b);
  close(F.softmax(x, 1).toArray(), [...e.map((v) => v / s), 0.25, 0.25, 0.5]);
  close(F.logSoftmax(x, 1).select(0, 1).toArray(), [Math.log(0.25), Math.log(0.25), Math.log(0.5)]);
  close(
    F.softmax(randn([5, 7]), -1)
      .sum(-1)
      .toArray(),
    new Array(5).fill(1),
  );

  const g = new Generator(4);
  const [L, S, E] = [3, 4, 2];
  const q = randn([1, L, E], { generator: g });
  const k = randn([1, S, E], { generator: g });
  const v = randn([1, S, E], { generator: g });
  const bias = randn([L, S], { generator: g });
  const [qa, ka, va, ba] = [q, k, v, bias].map((t) => t.toArray());
  const naive = (maskFn: (i: number, j: number) => number): number[] => {
    const out: number[] = [];
    for (let i = 0; i < L; i++) {
      const logits = [];
      for (let j = 0; j < S; j++) {
        let dot = 0;
        for (let c = 0; c < E; c++) dot += qa[i * E + c] * ka[j * E + c];
        logits.push(dot / Math.sqrt(E) + maskFn(i, j));
      }
      const m = Math.max(...logits);
      const p = logits.map((l) => Math.exp(l - m));
      const z = p.reduce((a, b) => a + b);
      for (let c = 0; c < E; c++) out.push(p.reduce((acc, pj, j) => acc + (pj / z) * va[j * E + c], 0));
    }
    return out;
  };
  close(
    F.scaledDotProductAttention(q, k, v).toArray(),
    naive(() => 0),
  );
  close(
    F.scaledDotProductAttention(q, k, v, { attnMask: bias }).toArray(),
    naive((i, j) => ba[i * S + j]),
  );
  close(
    F.scaledDotProductAttention(q, k, v, { isCausal: true }).toArray(),
    naive((i, j) => (j > i ? -Infinity : 0)),
  );
  const keep = ones([L, S], { dtype: 'bool' }).triu(1).logicalNot();
  close(
    F.scaledDotProductAttention(q, k, v, { attnMask: keep }).toArray(),
    naive((i, j) => (j > i ? -Infinity : 0)),
  );
});

test('scaledDotProductAttention: the fused inference kernel equals the softmax(q·kᵀ)·v composition', () => {
  const g = new Generator(8);
  const zerosMask = (l: number, s: number) => zeros([l, s]); // a float mask selects the composition
  // Tiles of 8 query rows with a remainder, keys in 16-blocks with a tail, fewer than 16 keys, odd E.
  for (const [L, S, E, Ev] of [
    [21, 37, 5, 32],
    [8, 7, 3, 16],
    [3, 64, 32, 48],
  ]) {
    const q = randn([2, 3, L, E], { generator: g }).mul(3); // peaked softmax rows
    const k = randn([2, 3, S, E], { generator: g });
    const v = randn([2, 3, S, Ev], { generator: g });
    const fused = F.scaledDotProductAttention(q, k, v);
    const reference = F.scaledDotProductAttention(q, k, v, { attnMask: zerosMask(L, S) });
    assert.deepEqual(fused.shape, [2, 3, L, Ev]);
    const err = fused.sub(reference).abs().max().item();
    assert.ok(err < 2e-6 * Math.max(1, reference.abs().max().item()), `L ${L} S ${S} E ${E}: ${err}`);
  }
  // Non-contiguous heads (the U-Net's permuted projections) and an explicit scale.
  const x = randn([1, 40, 4, 16], { generator: g }).permute(0, 2, 1, 3);
  const y = F.scaledDotProductAttention(x, x, x, { scale: 0.7 });
  const want = F.scaledDotProductAttention(x, x, x, { scale: 0.7, attnMask: zerosMask(40, 40) });
  assert.ok(y.sub(want).abs().max().item() < 2e-6);
  // With autograd recording, the composition runs and gradients reach q.
  const qg = randn([1, 5, 16], { generator: g }).requiresGrad_();
  F.scaledDotProductAttention(qg, qg.detach(), qg.detach()).sum().backward();
  assert.ok(qg.grad !== null && qg.grad.abs().sum().item() > 0);
});

test('gridSample: identity grid reproduces the input, a one-voxel shift moves it', () => {
  const g = new Generator(5);
  const x = randn([1, 2, 4, 5, 6], { generator: g });
  for (const alignCorners of [false, true]) {
    const theta = tensor([
      [
        [1, 0, 0, 0],
        [0, 1, 0, 0],
        [0, 0, 1, 0],
      ],
    ]);
    const grid = F.affineGrid(theta, [1, 2, 4, 5, 6], { alignCorners });
    assert.deepEqual(grid.shape, [1, 4, 5, 6, 3]);
    close(F.gridSample(x, grid, { alignCorners }).toArray(), x.toArray());
    close(F.gridSample(x, grid, { alignCorners, mode: 'nearest' }).toArray(), x.toArray());
  }
  const x2 = randn([1, 1, 3, 4], { generator: g });
  const id2 = F.affineGrid(
    tensor([
      [
        [1, 0, 0],
        [0, 1, 0],
      ],
    ]),
    [1, 1, 3, 4],
    { alignCorners: false },
  );
  close(F.gridSample(x2, id2).toArray(), x2.toArray());

  // Shift by one voxel along W (grid component 0) and along D (component 2), alignCorners: 1 voxel = 2/(n−1).
  const id = F.affineGrid(
    tensor([
      [
        [1, 0, 0, 0],
        [0, 1, 0, 0],
        [0, 0, 1, 0],
      ],
    ]),
    [1, 2, 4, 5, 6],
    { alignCorners: true },
  );
  const shiftW = id.add(tensor([2 / 5, 0, 0]));
  const yb = F.gridSample(x, shiftW, { alignCorners: true, paddingMode: 'border' });
  const want = x.narrow(4, 1, 5);
  close(yb.narrow(4, 0, 5).toArray(), want.toArray());
  close(yb.select(4, 5).toArray(), x.select(4, 5).toArray());
  const yz = F.gridSample(x, shiftW, { alignCorners: true });
  close(yz.select(4, 5).toArray(), new Array(2 * 4 * 5).fill(0));
  const shiftD = id.add(tensor([0, 0, -2 / 3]));
  close(
    F.gridSample(x, shiftD, { alignCorners: true }).narrow(2, 1, 3).toArray(),
    x.narrow(2, 0, 3).toArray(),
  );
  // Half a voxel along W: the mean of neighbours.
  const half = F.gridSample(x, id.add(tensor([1 / 5, 0, 0])), { alignCorners: true });
  close(
    half.narrow(4, 0, 5).toArray(),
    x
      .narrow(4, 0, 5)
      .add(x.narrow(4, 1, 5))
      .mul(0.5)
      .toArray(),
  );
  assert.throws(
    () => F.gridSample(x, id, { paddingMode: 'wrap' as never }),
    /gridSample paddingMode: expected one of zeros, border, reflection, got "wrap"/,
  );
});

test('interpolate: nearest, (tri)linear, area', () => {
  close(F.interpolate(tensor([[[1, 2]]]), { scaleFactor: 2 }).toArray(), [1, 1, 2, 2]);
  close(
    F.interpolate(tensor([[[0, 3]]]), { size: 4, mode: 'linear', alignCorners: true }).toArray(),
    [0, 1, 2, 3],
  );
  // alignCorners false: output sample i maps to input (i + 0.5)/2 − 0.5, clamped at 0 → [0, .75, 2.25, 3].
  close(F.interpolate(tensor([[[0, 3]]]), { size: 4, mode: 'linear' }).toArray(), [0, 0.75, 2.25, 3]);
  // A trilinear resize of a linear ramp with alignCorners is exact.
  const ramp = arange(0, 3).float().reshape(1, 1, 3, 1, 1).expand(1, 1, 3, 2, 2).contiguous();
  const up = F.interpolate(ramp, { size: [5, 3, 3], mode: 'trilinear', alignCorners: true });
  assert.deepEqual(up.shape, [1, 1, 5, 3, 3]);
  close(up.select(4, 1).select(3, 1).reshape(-1).toArray(), [0, 0.5, 1, 1.5, 2]);
  close(
    F.interpolate(arange(16).float().reshape(1, 1, 4, 4), { scaleFactor: 0.5, mode: 'area' }).toArray(),
    [2.5, 4.5, 10.5, 12.5],
  );
  const c = F.interpolate(ones([1, 1, 3, 3]).mul(7), {
    scaleFactor: 2,
    mode: 'bicubic',
    alignCorners: false,
  });
  close(c.toArray(), new Array(36).fill(7));
  assert.throws(
    () => F.interpolate(ones([1, 1, 3]), { size: 2, mode: 'trilinear' }),
    /interpolate input for mode trilinear: expected a 5-D tensor/,
  );
  assert.throws(
    () => F.interpolate(ones([1, 1, 3]), { size: 2, scaleFactor: 2 }),
    /exactly one of size and scaleFactor/,
  );
  assert.throws(
    () => F.interpolate(ones([1, 1, 3]), { size: 2, alignCorners: true }),
    /interpolate alignCorners/,
  );
});

test('pad, pooling, dropout and losses on hand cases', () => {
  const x = tensor([[[1, 2, 3]]]);
  close(F.pad(x, [2, 1], { mode: 'reflect' }).toArray(), [3, 2, 1, 2, 3, 2]);
  close(F.pad(x, [2, 1], { mode: 'replicate' }).toArray(), [1, 1, 1, 2, 3, 3]);
  close(F.pad(x, [1, 1], { value: 9 }).toArray(), [9, 1, 2, 3, 9]);
  close(F.pad(x, [1, 1], { mode: 'circular' }).toArray(), [3, 1, 2, 3, 1]);
  const g = arange(16).float().reshape(1, 1, 4, 4);
  close(F.maxPool2d(g, 2).toArray(), [5, 7, 13, 15]);
  close(F.avgPool2d(g, 2).toArray(), [2.5, 4.5, 10.5, 12.5]);
  close(F.maxPool1d(tensor([[[1, 5, 2, 4, 3]]]), 3, { stride: 1 }).toArray(), [5, 5, 4]);
  close(
    F.avgPool3d(ones([1, 1, 2, 2, 2]), 2, { padding: 1, countIncludePad: false }).toArray(),
    new Array(8).fill(1),
  );
  close(F.adaptiveAvgPool3d(arange(8).float().reshape(1, 1, 2, 2, 2), 1).toArray(), [3.5]);

  const d = F.dropout(ones([1000]), 0.25, { generator: new Generator(9) }).toArray();
  assert.ok(d.every((v) => v === 0 || Math.abs(v - 4 / 3) < 1e-6));
  const kept = d.filter((v) => v !== 0).length;
  assert.ok(kept > 700 && kept < 800, `kept ${kept}`);
  assert.deepEqual(F.dropout(ones([1000]), 0.25, { generator: new Generator(9) }).toArray(), d);
  assert.deepEqual(F.dropout(ones([3]), 0.9, { training: false }).toArray(), [1, 1, 1]);

  const a = tensor([1, 2, 3]);
  const b = tensor([1, 0, 5]);
  close([F.mseLoss(a, b).item()], [(0 + 4 + 4) / 3]);
  close([F.l1Loss(a, b, { reduction: 'sum' }).item()], [4]);
  close(F.mseLoss(a, b, { reduction: 'none' }).toArray(), [0, 4, 4]);
  close([F.smoothL1Loss(tensor([0, 0]), tensor([0.5, 3])).item()], [(0.125 + 2.5) / 2]);
  const logits = tensor([[0, Math.log(3)]]);
  close([F.crossEntropy(logits, tensor([1], { dtype: 'int64' })).item()], [-Math.log(3 / 4)]);
  close([F.binaryCrossEntropyWithLogits(tensor([0]), tensor([1])).item()], [Math.log(2)]);
  assert.deepEqual(F.oneHot(tensor([0, 2], { dtype: 'int64' }), 3).toArray(), [1, 0, 0, 0, 0, 1]);
  close(F.gelu(tensor([1])).toArray(), [0.8413447]);
  close(F.leakyRelu(tensor([-2, 2]), 0.1).toArray(), [-0.2, 2]);
  close(F.softsign(tensor([-3, 1])).toArray(), [-0.75, 0.5]);
  close(F.prelu(tensor([[-2, 2]]), tensor([0.25])).toArray(), [-0.5, 2]);
});

test('libtorch errors become JS Errors with its message; the process lives on', () => {
  const x = zeros([1, 16, 8, 8, 8]);
  const w = zeros([32, 8, 3, 3, 3]);
  assert.throws(
    () => F.conv3d(x, w),
    (e: Error & { code?: string }) => {
      assert.equal(e.code, 'ERR_TORCH');
      assert.match(
        e.message,
        /^Given groups=1, weight of size \[32, 8, 3, 3, 3\], expected input\[1, 16, 8, 8, 8\] to have 8 channels, but got 16 channels instead$/,
      );
      return true;
    },
  );
  assert.throws(
    () => F.matmul(zeros([2, 3]), zeros([4, 5])),
    /mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x5\)/,
  );
  assert.throws(
    () => F.conv3d(x, zeros([32, 16, 3, 3])),
    /conv3d weight: expected a 5-D tensor, got "shape \[32, 16, 3, 3\]"/,
  );
  assert.throws(
    () => F.conv3d(x, w, null, { padding: -1 }),
    /conv3d padding: expected an integer >= 0 or 3 of them, got -1/,
  );
  // Still working afterwards.
  assert.equal(F.conv3d(x, zeros([2, 16, 1, 1, 1])).shape[1], 2);
  assert.ok(Tensor.fromArray([1]).item() === 1);
});

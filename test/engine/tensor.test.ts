import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Generator,
  Tensor,
  arange,
  cat,
  einsum,
  engineInfo,
  full,
  linspace,
  ones,
  rand,
  randint,
  randn,
  randomCrop,
  stack,
  tensor,
  where,
  zeros,
} from '../../src/engine/index.ts';

const close = (a: number[], b: number[], tol = 1e-5): void => {
  assert.equal(a.length, b.length, `length ${a.length} vs ${b.length}`);
  a.forEach((v, i) => assert.ok(Math.abs(v - b[i]) <= tol, `[${i}] ${v} vs ${b[i]}`));
};

test('creation: shapes, dtypes and values', () => {
  const z = zeros([2, 3]);
  assert.deepEqual(z.shape, [2, 3]);
  assert.equal(z.dtype, 'float32');
  assert.equal(z.numel, 6);
  assert.deepEqual(ones([2], { dtype: 'int32' }).toArray(), [1, 1]);
  assert.deepEqual(full([3], 2.5, { dtype: 'float64' }).toArray(), [2.5, 2.5, 2.5]);
  const a = arange(5);
  assert.equal(a.dtype, 'int64');
  assert.deepEqual(a.toArray(), [0, 1, 2, 3, 4]);
  close(arange(0, 1, 0.25).toArray(), [0, 0.25, 0.5, 0.75]);
  close(linspace(-1, 1, 5).toArray(), [-1, -0.5, 0, 0.5, 1]);
  assert.deepEqual(
    tensor([
      [1, 2, 3],
      [4, 5, 6],
    ]).shape,
    [2, 3],
  );
  assert.equal(tensor(true).dtype, 'bool');
  assert.throws(() => tensor([[1, 2], [3]]), /nested lists must be regular/);
  assert.throws(() => zeros([2, -1]), /shape: expected a list of integers >= 0, got \[2, -1\]/);
  assert.throws(() => zeros([2], { dtype: 'float8' as never }), /dtype: expected one of float32/);
});

test('random creation is reproducible from a Generator seed and its saved state', () => {
  const a = randn([4], { generator: new Generator(7) }).toArray();
  const b = randn([4], { generator: new Generator(7) }).toArray();
  assert.deepEqual(a, b);
  const g = new Generator(3);
  const state = g.getState();
  const u1 = rand([5], { generator: g }).toArray();
  g.setState(state);
  assert.deepEqual(rand([5], { generator: g }).toArray(), u1);
  assert.ok(u1.every((v) => v >= 0 && v < 1));
  const r = randint(2, 5, [1000], { generator: g }).toArray();
  assert.ok(r.every((v) => v >= 2 && v < 5));
  assert.deepEqual(new Set(r), new Set([2, 3, 4]));
  // A large sample has mean ≈ 0 and std ≈ 1.
  const n = randn([100000], { generator: g });
  assert.ok(Math.abs(n.mean().item()) < 0.02);
  assert.ok(Math.abs(n.std().item() - 1) < 0.02);
});

test('bytes and typed arrays round-trip for every dtype', () => {
  const f = new Float32Array([1.5, -2, 3.25, 4]);
  const t = Tensor.fromArray(f, [2, 2]);
  assert.deepEqual(t.shape, [2, 2]);
  assert.deepEqual(Array.from(t.toTypedArray() as Float32Array), [1.5, -2, 3.25, 4]);
  const bytes = t.toBytes();
  assert.deepEqual(bytes, new Uint8Array(f.buffer));
  assert.deepEqual(Tensor.fromBytes(bytes, 'float32', [4]).toArray(), [1.5, -2, 3.25, 4]);
  // float16: 1.5 = 0x3E00, -2 = 0xC000 (little-endian bytes).
  const h = Tensor.fromBytes(new Uint8Array([0x00, 0x3e, 0x00, 0xc0]), 'float16', [2]);
  assert.deepEqual(h.toArray(), [1.5, -2]);
  assert.deepEqual(Array.from(h.toBytes()), [0x00, 0x3e, 0x00, 0xc0]);
  // bfloat16: 1.0 = 0x3F80.
  assert.deepEqual(Tensor.fromBytes(new Uint8Array([0x80, 0x3f]), 'bfloat16', [1]).toArray(), [1]);
  const i64 = Tensor.fromArray(new BigInt64Array([-3n, 2n ** 40n]));
  assert.equal(i64.dtype, 'int64');
  assert.deepEqual(i64.toArray(), [-3, 2 ** 40]);
  const b = Tensor.fromArray(new Uint8Array([0, 1, 1]), [3], { dtype: 'bool' });
  assert.equal(b.dtype, 'bool');
  assert.equal(b.sum().item(), 2);
  for (const dtype of ['int16', 'int8', 'uint8', 'int32', 'float64'] as const) {
    const x = Tensor.fromArray([1, 2, 3], [3], { dtype });
    assert.equal(x.dtype, dtype);
    assert.deepEqual(Tensor.fromBytes(x.toBytes(), dtype, [3]).toArray(), [1, 2, 3]);
  }
  assert.throws(
    () => Tensor.fromBytes(new Uint8Array(5), 'float32', [2]),
    /data holds 5 bytes but shape \[2\]/,
  );
});

test('zero-copy views share memory with the JS array', () => {
  const data = new Float32Array([1, 2, 3, 4]);
  const v = Tensor.fromArray(data, [2, 2], { copy: false });
  data[0] = 10;
  assert.equal(v.sum().item(), 19);
  v.mul_(2);
  assert.deepEqual(Array.from(data), [20, 4, 6, 8]);
  const copied = Tensor.fromArray(data, [4]);
  data[1] = 0;
  assert.equal(copied.sum().item(), 38);
  assert.throws(
    () => Tensor.fromArray(new Int32Array(2), [2], { copy: false, dtype: 'float32' }),
    /copy: expected true/,
  );
});

test('broadcasting arithmetic against a naive loop', () => {
  const a = tensor([
    [1, 2, 3],
    [4, 5, 6],
  ]);
  const b = tensor([10, 20, 30]);
  assert.deepEqual(a.add(b).toArray(), [11, 22, 33, 14, 25, 36]);
  assert.deepEqual(a.sub(b, 0.5).toArray(), [-4, -8, -12, -1, -5, -9]);
  assert.deepEqual(a.mul(2).toArray(), [2, 4, 6, 8, 10, 12]);
  close(a.div(b).toArray(), [0.1, 0.1, 0.1, 0.4, 0.25, 0.2]);
  assert.deepEqual(a.pow(2).toArray(), [1, 4, 9, 16, 25, 36]);
  assert.deepEqual(a.rsub(10).toArray(), [9, 8, 7, 6, 5, 4]);
  close(a.rdiv(1).toArray(), [1, 0.5, 1 / 3, 0.25, 0.2, 1 / 6]);
  assert.deepEqual(a.neg().toArray(), [-1, -2, -3, -4, -5, -6]);
  assert.deepEqual(a.gt(3).toArray(), [0, 0, 0, 1, 1, 1]);
  assert.equal(a.gt(3).dtype, 'bool');
  assert.deepEqual(a.eq(tensor([1, 0, 3])).toArray(), [1, 0, 1, 0, 0, 0]);
  assert.deepEqual(a.gt(1).logicalAnd(a.lt(5)).toArray(), [0, 1, 1, 1, 0, 0]);
  assert.deepEqual(a.lt(2).logicalOr(a.ge(6)).logicalNot().toArray(), [0, 1, 1, 1, 1, 0]);
  // Integer tensors stay integer with integer scalars, promote with fractional ones (Python's rule).
  const i = arange(3);
  assert.equal(i.add(1).dtype, 'int64');
  assert.equal(i.add(0.5).dtype, 'float32');
  const x = tensor([-1.5, 0.25, 4]);
  close(x.abs().toArray(), [1.5, 0.25, 4]);
  assert.deepEqual(x.sign().toArray(), [-1, 1, 1]);
  assert.deepEqual(x.floor().toArray(), [-2, 0, 4]);
  assert.deepEqual(tensor([0.5, 1.5, 2.5, -0.5]).round().toArray(), [0, 2, 2, -0]);
  close(tensor([1, 4, 9]).sqrt().toArray(), [1, 2, 3]);
  close(tensor([1, 4]).rsqrt().toArray(), [1, 0.5]);
  close(tensor([0, 1]).exp().toArray(), [1, Math.E]);
  close(tensor([1, Math.E]).log().toArray(), [0, 1]);
  close(x.clamp(-1, 1).toArray(), [-1, 0.25, 1]);
  close(x.clamp(null, 0).toArray(), [-1.5, 0, 0]);
  close(where(x.gt(0), x, 0).toArray(), [0, 0.25, 4]);
  close(x.where(x.lt(0), tensor(9)).toArray(), [-1.5, 9, 9]);
  close(x.maskedFill(x.gt(1), -7).toArray(), [-1.5, 0.25, -7]);
  // Activations against their formulas.
  const xs = [-2, -0.5, 0, 1.5];
  const t = tensor(xs);
  close(
    t.sigmoid().toArray(),
    xs.map((v) => 1 / (1 + Math.exp(-v))),
  );
  close(
    t.silu().toArray(),
    xs.map((v) => v / (1 + Math.exp(-v))),
  );
  close(t.tanh().toArray(), xs.map(Math.tanh));
  close(
    t.relu().toArray(),
    xs.map((v) => Math.max(0, v)),
  );
});

test('in-place ops modify the receiver', () => {
  const p = tensor([1, 2, 3]);
  assert.equal(p.add_(tensor([1, 1, 1]), 2), p);
  assert.deepEqual(p.toArray(), [3, 4, 5]);
  p.mul_(2).sub_(1);
  assert.deepEqual(p.toArray(), [5, 7, 9]);
  p.addcmul_(tensor([1, 2, 3]), tensor([2, 2, 2]), 0.5);
  assert.deepEqual(p.toArray(), [6, 9, 12]);
  p.addcdiv_(tensor([6, 9, 12]), tensor([2, 3, 4]), -1);
  assert.deepEqual(p.toArray(), [3, 6, 9]);
  p.lerp_(tensor([5, 6, 13]), 0.5);
  assert.deepEqual(p.toArray(), [4, 6, 11]);
  p.clamp_(5, 10);
  assert.deepEqual(p.toArray(), [5, 6, 10]);
  p.fill_(1);
  assert.deepEqual(p.toArray(), [1, 1, 1]);
  p.zero_();
  assert.deepEqual(p.toArray(), [0, 0, 0]);
  const s = zeros([2, 3]);
  s.slice(1, 1, 3).copy_(ones([2, 2]));
  assert.deepEqual(s.toArray(), [0, 1, 1, 0, 1, 1]);
  s.indexPut_([tensor([0], { dtype: 'int64' }), tensor([0], { dtype: 'int64' })], tensor(7));
  assert.deepEqual(s.toArray(), [7, 1, 1, 0, 1, 1]);
});

test('reductions against hand-computed values', () => {
  const a = tensor([
    [1, 5, 3],
    [4, 2, 6],
  ]);
  assert.equal(a.sum().item(), 21);
  assert.deepEqual(a.sum(0).toArray(), [5, 7, 9]);
  assert.deepEqual(a.sum(1, true).shape, [2, 1]);
  assert.deepEqual(a.mean([0, 1]).toArray(), [3.5]);
  assert.equal(a.max().item(), 6);
  assert.equal(a.min().item(), 1);
  const m = a.max(1);
  assert.deepEqual(m.values.toArray(), [5, 6]);
  assert.deepEqual(m.indices.toArray(), [1, 2]);
  assert.deepEqual(a.min(0).indices.toArray(), [0, 1, 0]);
  assert.equal(a.argmax().item(), 5);
  assert.deepEqual(a.argmax(1).toArray(), [1, 2]);
  assert.deepEqual(a.argmin(1, true).shape, [2, 1]);
  // var of [1, 5, 3]: mean 3, squares 4 + 4 + 0 = 8 → unbiased 4, biased 8/3.
  close(a.var(1).toArray(), [4, 4]); // [4, 2, 6]: mean 4, squares 0 + 4 + 4
  close(a.var(1, { unbiased: false }).toArray(), [8 / 3, 8 / 3]);
  close(a.std(1).toArray(), [2, 2]);
  close([a.norm().item()], [Math.sqrt(1 + 25 + 9 + 16 + 4 + 36)]);
  close(a.norm(1, 1).toArray(), [9, 12]);
  assert.deepEqual(a.prod(1).toArray(), [15, 48]);
  close(a.logsumexp(1).toArray(), [
    Math.log(Math.E + Math.exp(5) + Math.exp(3)),
    Math.log(Math.exp(4) + Math.exp(2) + Math.exp(6)),
  ]);
  assert.deepEqual(a.cumsum(1).toArray(), [1, 6, 9, 4, 6, 12]);
  assert.deepEqual(a.cumprod(1).toArray(), [1, 5, 15, 4, 8, 48]);
  const k = a.topk(2);
  assert.deepEqual(k.values.toArray(), [5, 3, 6, 4]);
  assert.deepEqual(k.indices.toArray(), [1, 2, 2, 0]);
  assert.deepEqual(a.topk(1, { dim: 0, largest: false }).values.toArray(), [1, 2, 3]);
  assert.deepEqual(a.sort(1, true).values.toArray(), [5, 3, 1, 6, 4, 2]);
  assert.deepEqual(a.argsort(1).toArray(), [0, 2, 1, 1, 0, 2]);
  assert.equal(a.gt(0).all().item(), 1);
  assert.deepEqual(a.gt(4).any(1).toArray(), [1, 1]);
  close([randn([10]).softmax(0).sum().item()], [1]);
});

test('shape and indexing ops', () => {
  const x = arange(24).reshape(2, 3, 4);
  assert.deepEqual(x.shape, [2, 3, 4]);
  assert.deepEqual(x.reshape([6, -1]).shape, [6, 4]);
  assert.deepEqual(x.view(4, 6).shape, [4, 6]);
  const p = x.permute(2, 0, 1);
  assert.deepEqual(p.shape, [4, 2, 3]);
  assert.equal(p.isContiguous, false);
  // p[1, 1, 2] = x[1, 2, 1] = 12 + 8 + 1.
  assert.equal(p.select(0, 1).select(0, 1).select(0, 2).item(), 21);
  assert.equal(p.contiguous().isContiguous, true);
  assert.deepEqual(x.transpose(0, 2).shape, [4, 3, 2]);
  assert.deepEqual(x.flatten(1).shape, [2, 12]);
  assert.deepEqual(x.unsqueeze(1).shape, [2, 1, 3, 4]);
  assert.deepEqual(x.unsqueeze(1).squeeze(1).shape, [2, 3, 4]);
  assert.deepEqual(x.slice(2, 1, 4, 2).select(0, 0).select(0, 0).toArray(), [1, 3]);
  assert.deepEqual(x.slice(2, -1).reshape(-1).toArray(), [3, 7, 11, 15, 19, 23]);
  assert.deepEqual(x.narrow(1, 1, 1).reshape(-1).toArray(), [4, 5, 6, 7, 16, 17, 18, 19]);
  assert.deepEqual(tensor([1, 2]).expand(2, 2).toArray(), [1, 2, 1, 2]);
  assert.deepEqual(tensor([1, 2]).repeat(2).toArray(), [1, 2, 1, 2]);
  assert.deepEqual(tensor([1, 2]).repeatInterleave(2, 0).toArray(), [1, 1, 2, 2]);
  assert.deepEqual(tensor([1, 2, 3, 4]).roll(1, 0).toArray(), [4, 1, 2, 3]);
  assert.deepEqual(
    tensor([
      [1, 2],
      [3, 4],
    ])
      .flip(1)
      .toArray(),
    [2, 1, 4, 3],
  );
  assert.deepEqual(
    tensor([
      [1, 2],
      [3, 4],
    ])
      .t()
      .toArray(),
    [1, 3, 2, 4],
  );
  assert.deepEqual(cat([tensor([1, 2]), tensor([3])]).toArray(), [1, 2, 3]);
  assert.deepEqual(stack([tensor([1, 2]), tensor([3, 4])], 1).toArray(), [1, 3, 2, 4]);
  assert.deepEqual(
    arange(5)
      .split(2)
      .map((t) => t.toArray()),
    [[0, 1], [2, 3], [4]],
  );
  assert.deepEqual(
    arange(5)
      .split([1, 4])
      .map((t) => t.shape[0]),
    [1, 4],
  );
  assert.deepEqual(
    arange(6)
      .chunk(3)
      .map((t) => t.toArray()),
    [
      [0, 1],
      [2, 3],
      [4, 5],
    ],
  );
  assert.deepEqual(
    tensor([
      [1, 2],
      [3, 4],
    ])
      .unbind(1)
      .map((t) => t.toArray()),
    [
      [1, 3],
      [2, 4],
    ],
  );
  const idx = tensor([2, 0], { dtype: 'int64' });
  assert.deepEqual(tensor([10, 20, 30]).indexSelect(0, idx).toArray(), [30, 10]);
  assert.deepEqual(
    tensor([
      [1, 2],
      [3, 4],
    ])
      .gather(1, tensor([[1], [0]], { dtype: 'int64' }))
      .toArray(),
    [2, 3],
  );
  assert.deepEqual(
    zeros([3])
      .scatter(0, idx, tensor([5, 6]))
      .toArray(),
    [6, 0, 5],
  );
  assert.deepEqual(zeros([3]).scatter(0, idx, 1).toArray(), [1, 0, 1]);
  assert.deepEqual(
    zeros([3])
      .scatterAdd(0, tensor([1, 1], { dtype: 'int64' }), tensor([2, 3]))
      .toArray(),
    [0, 5, 0],
  );
  assert.deepEqual(tensor([10, 20, 30]).index([idx]).toArray(), [30, 10]);
  // unfold(0, 2, 1) of [0..3] → windows [0,1], [1,2], [2,3].
  assert.deepEqual(arange(4).unfold(0, 2, 1).toArray(), [0, 1, 1, 2, 2, 3]);
  assert.deepEqual(ones([3, 3]).triu(1).toArray(), [0, 1, 1, 0, 0, 1, 0, 0, 0]);
  close(
    einsum(
      'ij,j->i',
      tensor([
        [1, 2],
        [3, 4],
      ]),
      tensor([1, 1]),
    ).toArray(),
    [3, 7],
  );
  assert.deepEqual(tensor([0, 3, 0, 5]).nonzero().toArray(), [1, 3]);
  assert.equal(tensor([1, 2]).float().dtype, 'float32');
  assert.equal(tensor([1.7, -1.7]).to('int32').toArray().join(), '1,-1');
  assert.equal(tensor([1]).half().dtype, 'float16');
  assert.equal(tensor([1]).to({ dtype: 'float64', device: 'cpu' }).dtype, 'float64');
  assert.equal(tensor([1]).device, 'cpu');
  assert.throws(() => x.reshape(5, 5), /shape '\[5, 5\]' is invalid for input of size 24/);
});

test('randomCrop crops several tensors at one random offset', () => {
  const img = arange(64).reshape(1, 4, 4, 4).float();
  const lab = img.mul(10);
  const [a, b] = randomCrop([img, lab], [2, 3, 2], { generator: new Generator(5) });
  assert.deepEqual(a.shape, [1, 2, 3, 2]);
  assert.deepEqual(b.mul(0.1).toArray().map(Math.round), a.toArray());
  // The crop is a contiguous block of the original: consecutive entries along the last axis differ by 1.
  const v = a.toArray();
  assert.equal(v[1] - v[0], 1);
  assert.equal(v[2] - v[0], 4);
  assert.equal(v[6] - v[0], 16);
  assert.deepEqual(randomCrop(img, [4, 4, 4]).toArray(), img.toArray());
  assert.throws(() => randomCrop(img, [5, 1, 1]), /randomCrop size: expected at most \[4, 4, 4\]/);
});

test('item, metadata and disposed tensors', () => {
  const t = tensor([[2.5]]);
  assert.equal(t.item(), 2.5);
  assert.equal(t.ndim, 2);
  assert.equal(t.size(-1), 1);
  assert.match(t.toString(), /Tensor\(shape=\[1, 1\], dtype=float32, device=cpu\)/);
  assert.throws(() => tensor([1, 2]).item(), /item\(\) needs a tensor with one element, got 2/);
  // Devices: 'cuda' is part of the API; on a CPU-only libtorch it fails with libtorch's message.
  if (!engineInfo().cudaAvailable) {
    assert.throws(() => t.to('cuda'), /PyTorch is not linked with support for cuda devices/);
    assert.throws(() => zeros([1], { device: 'cuda:0' }), /from the 'CUDA' backend/);
  }
  assert.throws(() => t.to('gpu' as never), /device: expected cpu, cuda or cuda:<index>, got "gpu"/);
  t.dispose();
  assert.equal(t.isDisposed, true);
  t.dispose();
  assert.throws(() => t.add(1), /tensor was disposed/);
});

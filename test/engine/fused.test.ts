import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  F,
  Generator,
  Tensor,
  empty,
  memoryStats,
  randn,
  releaseFreeMemory,
  tidy,
  zeros,
} from '../../src/engine/index.ts';

const gen = new Generator(11);

test('channelAffineSilu equals silu(x·scale + shift) on a strided slab view, float32 and float16', () => {
  // Rows of 4·9 = 36 values: two 16-wide vector blocks and a scalar tail.
  const stored = randn([1, 3, 6, 4, 9], { generator: gen }).mul(8);
  const scale = randn([3], { generator: gen });
  const shift = randn([3], { generator: gen });
  for (const dtype of ['float32', 'float16'] as const) {
    const view = stored.to(dtype).narrow(2, 1, 4);
    const got = F.channelAffineSilu(view, scale, shift);
    assert.deepEqual(got.shape, [1, 3, 4, 4, 9]);
    assert.equal(got.dtype, 'float32');
    const v = tidy(() =>
      view
        .to('float64')
        .mul(scale.reshape(1, 3, 1, 1, 1))
        .add(shift.reshape(1, 3, 1, 1, 1)),
    );
    const x = v.toTypedArray() as Float64Array;
    const y = got.toTypedArray() as Float32Array;
    x.forEach((xi, i) => {
      const want = xi / (1 + Math.exp(-xi));
      assert.ok(
        Math.abs(y[i] - want) <= 4e-7 * Math.max(1, Math.abs(want)),
        `silu(${xi}) = ${y[i]}, not ${want}`,
      );
    });
  }
});

test('channelAffineSilu is exact to float32 rounding far into both tails', () => {
  const xs = [-200, -100, -88, -87, -30, -10, -1e-3, 0, 1e-3, 0.5, 10, 30, 88, 100, 200];
  const x = Tensor.fromArray(Float32Array.from(xs), [1, 1, 1, 1, xs.length]);
  const got = F.channelAffineSilu(x, Tensor.fromArray([1], [1]), Tensor.fromArray([0], [1])).toArray();
  xs.forEach((v, i) => {
    const want = v / (1 + Math.exp(-v));
    assert.ok(
      Math.abs(got[i] - want) <= 4e-7 * Math.max(1e-30, Math.abs(want)) + 1e-38,
      `silu(${v}) = ${got[i]}`,
    );
  });
});

test('storeRows writes y + residual into a view and returns the stored values’ per-channel sums', () => {
  for (const dtype of ['float32', 'float16'] as const) {
    for (const residualType of ['float32', 'float16'] as const) {
      const out = zeros([1, 2, 5, 3, 12], { dtype });
      const y = randn([1, 2, 2, 3, 12], { generator: gen });
      const residual = randn([1, 2, 5, 3, 12], { generator: gen }).to(residualType).narrow(2, 1, 2);
      const sums = F.storeRows(out.narrow(2, 3, 2), y, residual).toTypedArray() as Float64Array;
      const stored = out.narrow(2, 3, 2).float();
      // Exactly y + residual in float32, rounded once to the stored type.
      const want = tidy(() => y.add(residual.float()).to(dtype).float());
      assert.equal(
        tidy(() => stored.sub(want).abs().max().item()),
        0,
        `${dtype} store, ${residualType} residual`,
      );
      assert.equal(
        tidy(() => out.narrow(2, 0, 3).abs().sum().item()),
        0,
        'rows outside the view untouched',
      );
      for (let c = 0; c < 2; c++) {
        const values = stored.select(1, c).toTypedArray() as Float32Array;
        const sum = values.reduce((s, v) => s + v, 0);
        const squares = values.reduce((s, v) => s + v * v, 0);
        assert.ok(Math.abs(sums[2 * c] - sum) < 1e-9 * Math.max(1, Math.abs(sum)) + 1e-6);
        assert.ok(Math.abs(sums[2 * c + 1] - squares) < 1e-6 * squares);
      }
    }
  }
});

test('storeRows adds a residual read from the output itself (the in-place residual block)', () => {
  for (const dtype of ['float32', 'float16'] as const) {
    const h = randn([1, 2, 4, 3, 12], { generator: gen }).to(dtype);
    const before = h.clone().float();
    const y = randn([1, 2, 2, 3, 12], { generator: gen });
    F.storeRows(h.narrow(2, 1, 2), y, h.narrow(2, 1, 2));
    const want = tidy(() => before.narrow(2, 1, 2).add(y).to(dtype).float());
    assert.equal(
      tidy(() => h.narrow(2, 1, 2).float().sub(want).abs().max().item()),
      0,
    );
    assert.equal(
      tidy(() =>
        h
          .narrow(2, 0, 1)
          .float()
          .sub(before.narrow(2, 0, 1))
          .abs()
          .max()
          .item(),
      ),
      0,
    );
  }
});
test('large blocks freed are cached for reuse, least recently freed evicted within 1 GiB, released by releaseFreeMemory', () => {
  const MiB = 2 ** 20;
  releaseFreeMemory();
  assert.equal(memoryStats().cachedBytes, 0);
  const big = zeros([8, 1024, 1024]); // 32 MiB
  big.dispose();
  assert.equal(memoryStats().cachedBytes, 32 * MiB);
  // The same size again is served from the cache, and is a usable tensor.
  const again = randn([8, 1024, 1024], { generator: gen });
  assert.equal(memoryStats().cachedBytes, 0);
  assert.ok(Math.abs(tidy(() => again.mean().item())) < 0.01);
  again.dispose();
  // Another size is mapped anew while the cached block stays (both fit in the 1 GiB limit).
  const other = zeros([4, 1024, 1024]);
  assert.equal(memoryStats().cachedBytes, 32 * MiB);
  other.dispose();
  assert.equal(memoryStats().cachedBytes, 48 * MiB);
  // A new 992 MiB block counts against the limit: the least recently freed block (32 MiB) goes first.
  const large = empty([248, 1024, 1024]);
  assert.equal(memoryStats().cachedBytes, 16 * MiB);
  large.dispose();
  assert.equal(memoryStats().cachedBytes, (16 + 992) * MiB);
  assert.equal(releaseFreeMemory(), true);
  assert.equal(memoryStats().cachedBytes, 0);
});

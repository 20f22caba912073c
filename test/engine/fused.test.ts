import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  F,
  Generator,
  empty,
  memoryStats,
  randn,
  releaseFreeMemory,
  tidy,
  zeros,
} from '../../src/engine/index.ts';

const gen = new Generator(11);

test('channelAffineSilu equals silu(x·scale + shift) on a strided slab view, float32 and float16', () => {
  const stored = randn([1, 3, 6, 4, 5], { generator: gen });
  const scale = randn([3], { generator: gen });
  const shift = randn([3], { generator: gen });
  for (const dtype of ['float32', 'float16'] as const) {
    const view = stored.to(dtype).narrow(2, 1, 4);
    const got = F.channelAffineSilu(view, scale, shift);
    const want = tidy(() =>
      view
        .float()
        .mul(scale.reshape(1, 3, 1, 1, 1))
        .add(shift.reshape(1, 3, 1, 1, 1))
        .silu(),
    );
    assert.deepEqual(got.shape, [1, 3, 4, 4, 5]);
    assert.equal(got.dtype, 'float32');
    assert.ok(tidy(() => got.sub(want).abs().max().item()) < 1e-6);
  }
});

test('storeRows writes y + residual into a view and returns the stored values’ per-channel sums', () => {
  for (const dtype of ['float32', 'float16'] as const) {
    const out = zeros([1, 2, 5, 3, 4], { dtype });
    const y = randn([1, 2, 2, 3, 4], { generator: gen });
    const residual = randn([1, 2, 5, 3, 4], { generator: gen }).narrow(2, 1, 2);
    const sums = F.storeRows(out.narrow(2, 3, 2), y, residual).toTypedArray() as Float64Array;
    const stored = out.narrow(2, 3, 2).float();
    assert.ok(
      tidy(() => stored.sub(y.add(residual)).abs().max().item()) < (dtype === 'float16' ? 5e-3 : 1e-6),
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

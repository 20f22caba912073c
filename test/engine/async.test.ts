import { test } from 'node:test';
import assert from 'node:assert/strict';
import { F, Generator, noGrad, randn, zeros } from '../../src/engine/index.ts';

test('a heavy async conv3d leaves the event loop running and equals the sync result', async () => {
  const g = new Generator(21);
  const x = randn([1, 32, 40, 40, 40], { generator: g });
  const w = randn([32, 32, 3, 3, 3], { generator: g });
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const t0 = performance.now();
  const pending = F.conv3dAsync(x, w, null, { padding: 1 });
  // Runs two convolutions in turn on the pool while the timer keeps firing.
  const y = await pending;
  const y2 = await F.conv3dAsync(x, w, null, { padding: 1 });
  const ms = performance.now() - t0;
  clearInterval(timer);
  console.log(`async conv3d x2: ${ms.toFixed(0)} ms, ${ticks} timer ticks`);
  assert.ok(ticks >= Math.min(5, ms / 10), `only ${ticks} ticks in ${ms.toFixed(0)} ms`);
  const ref = F.conv3d(x, w, null, { padding: 1 });
  assert.equal(ref.sub(y).abs().max().item(), 0);
  assert.equal(ref.sub(y2).abs().max().item(), 0);
});

test('async ops: matmul, interpolate, gridSample, attention, backward; errors reject', async () => {
  const a = randn([64, 32]);
  const b = randn([32, 16]);
  assert.equal((await F.matmulAsync(a, b)).sub(a.matmul(b)).abs().max().item(), 0);
  const v = randn([1, 2, 4, 4, 4]);
  const up = await F.interpolateAsync(v, { scaleFactor: 2, mode: 'trilinear' });
  assert.equal(
    up
      .sub(F.interpolate(v, { scaleFactor: 2, mode: 'trilinear' }))
      .abs()
      .max()
      .item(),
    0,
  );
  const grid = randn([1, 3, 3, 3, 3]).mul(0.5);
  assert.equal((await F.gridSampleAsync(v, grid)).sub(F.gridSample(v, grid)).abs().max().item(), 0);
  const q = randn([2, 5, 8]);
  assert.equal(
    (await F.scaledDotProductAttentionAsync(q, q, q))
      .sub(F.scaledDotProductAttention(q, q, q))
      .abs()
      .max()
      .item(),
    0,
  );

  const p = randn([3, 3]).requiresGrad_();
  await p.pow(2).sum().backwardAsync();
  assert.equal(p.grad!.sub(p.mul(2)).abs().max().item(), 0);

  // The caller's grad mode travels with the work.
  const r = noGrad(() => F.linearAsync(randn([2, 3]), p));
  assert.equal((await r).requiresGrad, false);
  assert.equal((await F.linearAsync(randn([2, 3]), p)).requiresGrad, true);

  await assert.rejects(
    F.conv3dAsync(zeros([1, 4, 4, 4, 4]), zeros([2, 3, 1, 1, 1])),
    (e: Error & { code?: string }) => {
      assert.equal(e.code, 'ERR_TORCH');
      assert.match(
        e.message,
        /expected input\[1, 4, 4, 4, 4\] to have 3 channels, but got 4 channels instead/,
      );
      return true;
    },
  );
});

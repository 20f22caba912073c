import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  dispose,
  getNumThreads,
  memoryStats,
  releaseFreeMemory,
  ones,
  rand,
  setNumThreads,
  tensor,
  tidy,
  zeros,
  type Tensor,
} from '../../src/engine/index.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const MB = 1024 * 1024;

/** RSS of live memory: garbage V8 has not collected yet and freed heap blocks glibc keeps for reuse go first. */
function rss(): number {
  gc();
  releaseFreeMemory();
  return process.memoryUsage().rss;
}

test('a 10,000-iteration create/compute/dispose loop keeps RSS flat', () => {
  const sizeBytes = 64 * 1024 * 4; // 256 KiB per tensor: a leak would add gigabytes
  let rss1000 = 0;
  const baseline = memoryStats().handles;
  // One thread: the loop measures memory, and on a busy machine OpenMP's barrier waits dominate tiny ops.
  const threads = getNumThreads();
  setNumThreads(1);
  for (let i = 1; i <= 10000; i++) {
    // Explicit dispose on even iterations, tidy on odd ones: both paths must release everything.
    if (i % 2 === 0) {
      const x = rand([64, 1024]);
      const y = x.mul(2);
      const z = y.add(1);
      const s = z.sum();
      s.item();
      for (const t of [x, y, z, s]) t.dispose();
    } else {
      tidy(() => rand([64, 1024]).mul(2).add(1).sum().item());
    }
    if (i === 1000) rss1000 = rss();
  }
  const rss10000 = rss();
  setNumThreads(threads);
  const grown = (rss10000 - rss1000) / MB;
  console.log(
    `RSS after 1,000: ${(rss1000 / MB).toFixed(1)} MB, after 10,000: ${(rss10000 / MB).toFixed(1)} MB`,
  );
  assert.ok(
    grown < 10, // measured noise ±7 MB; leaking the loop's tensors would add 2.3 GB
    `RSS grew by ${grown.toFixed(1)} MB over 9,000 iterations of ${sizeBytes / 1024} KiB tensors`,
  );
  assert.equal(memoryStats().handles, baseline);
});

test('tidy frees intermediates, keeps returned tensors (also nested in arrays/objects) for the outer scope', () => {
  const before = memoryStats().handles;
  let inner: Tensor | undefined;
  const out = tidy(() => {
    const a = ones([4]);
    inner = a.mul(3);
    const kept = tidy(() => {
      const t = a.add(1);
      t.mul(2);
      return { t, list: [a.sub(1)], n: 5 };
    });
    assert.equal(kept.t.isDisposed, false);
    return [kept.t, kept.list[0]];
  });
  assert.equal(inner!.isDisposed, true);
  assert.deepEqual(out[0].toArray(), [2, 2, 2, 2]);
  assert.deepEqual(out[1].toArray(), [0, 0, 0, 0]);
  assert.equal(memoryStats().handles, before + 2);
  dispose(out);
  assert.equal(memoryStats().handles, before);
});

test('tidy disposes on throw, refuses async functions, and respects keep()', () => {
  const before = memoryStats().handles;
  let leaked: Tensor | undefined;
  assert.throws(
    () =>
      tidy(() => {
        leaked = zeros([3]);
        throw new Error('inside');
      }),
    /inside/,
  );
  assert.equal(leaked!.isDisposed, true);
  assert.throws(() => tidy(async () => zeros([1])), /tidy: the function returned a Promise/);
  let kept: Tensor | undefined;
  const one = tidy(() => {
    kept = zeros([2]).keep();
    ones([2]);
    return 1;
  });
  assert.equal(one, 1);
  assert.equal(kept!.isDisposed, false);
  assert.equal(memoryStats().handles, before + 1);
  kept!.dispose();
  assert.equal(memoryStats().handles, before);
});

test('native memory is reported and the finalizer frees forgotten tensors', () => {
  gc();
  const before = memoryStats();
  const big = zeros([1024, 1024]);
  assert.ok(memoryStats().bytes - before.bytes >= 4 * MB);
  big.dispose();
  assert.equal(memoryStats().bytes, before.bytes);
  // The peak remembers the 4 MiB tensor until it is reset; after a reset it is the current size.
  const afterBig = memoryStats({ resetPeak: true });
  assert.ok(afterBig.peakBytes - before.bytes >= 4 * MB, `peak ${afterBig.peakBytes} vs ${before.bytes}`);
  assert.equal(memoryStats().peakBytes, memoryStats().bytes);
  const scale = tensor([1]);
  (() => {
    for (let i = 0; i < 100; i++) ones([256, 256]).mul(scale);
  })();
  assert.ok(memoryStats().handles >= before.handles + 100);
  gc();
  // Finalizers run after the collection, on the next turns of the event loop.
  return new Promise<void>((resolve) =>
    setTimeout(() => {
      gc();
      setTimeout(() => {
        assert.ok(
          memoryStats().handles <= before.handles + 1,
          `${memoryStats().handles} handles vs ${before.handles}`,
        );
        resolve();
      }, 50);
    }, 50),
  );
});

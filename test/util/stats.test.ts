/** Percentiles by selection equal those of the sorted values (numpy-linear), ties and NaN included. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { percentile, percentilesOf, samplePercentiles } from '../../src/util/stats.ts';

/** A deterministic pseudo-random sequence (a linear congruential generator). */
function sequence(n: number, seed: number, levels: number): number[] {
  let x = seed;
  return Array.from({ length: n }, () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return Math.floor((x / 2 ** 31) * levels) / 7;
  });
}

test('percentilesOf: the sorted values’ percentiles, for many sizes, ties, float32 and NaN', () => {
  const qs = [0, 0.5, 1, 25, 50, 73.3, 99.5, 100];
  for (const n of [1, 2, 3, 10, 101, 5000])
    for (const levels of [3, 1000]) {
      const values = sequence(n, n + levels, levels);
      const sorted = Float64Array.from(values).sort();
      assert.deepEqual(
        percentilesOf(values, qs),
        qs.map((q) => percentile(sorted, q)),
        `n ${n}, ${levels} levels`,
      );
      // Float32 input is ordered as float32 values, as a Float32Array sort orders it.
      const f32 = Float32Array.from(values);
      const sorted32 = Float32Array.from(f32).sort();
      assert.deepEqual(
        percentilesOf(f32, qs),
        qs.map((q) => percentile(sorted32, q)),
      );
    }
  // NaN sorts last: percentiles reaching it are NaN, the others are not disturbed.
  const withNaN = [5, NaN, 1, 3, NaN, 2];
  const sorted = Float64Array.from(withNaN).sort();
  assert.deepEqual(
    percentilesOf(withNaN, [0, 40, 60, 100]),
    [0, 40, 60, 100].map((q) => percentile(sorted, q)),
  );
  assert.ok(Number.isNaN(percentilesOf(withNaN, [100])[0]));
  assert.deepEqual(percentilesOf([], [50]), [NaN]);
  // Every 3rd of 10 values (stride floor(10/3) = 3): 0, 3, 6, 9.
  assert.deepEqual(samplePercentiles([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [0, 50, 100], 3), [0, 4.5, 9]);
});

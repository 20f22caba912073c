/**
 * Summary statistics of a list of values. Percentiles use linear interpolation between order
 * statistics (numpy's default): the q-th percentile of sorted x₀..x_{n−1} is at position (n − 1)·q/100.
 */

/** q-th percentile (0–100) of values sorted ascending, numpy-linear; NaN when empty. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const position = ((n - 1) * q) / 100;
  const lo = Math.floor(position);
  const hi = Math.min(lo + 1, n - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (position - lo);
}

export interface Summary {
  count: number;
  mean: number;
  /** Sample standard deviation (ddof = 1); NaN for fewer than two values. */
  sd: number;
  median: number;
  p25: number;
  p75: number;
  max: number;
}

export function summarize(values: readonly number[]): Summary {
  const sorted = Float64Array.from(values).sort();
  const count = sorted.length;
  const { mean, std } = meanStd(sorted);
  return {
    count,
    mean,
    sd: count > 1 ? std * Math.sqrt(count / (count - 1)) : NaN,
    median: percentile(sorted, 50),
    p25: percentile(sorted, 25),
    p75: percentile(sorted, 75),
    max: count ? sorted[count - 1] : NaN,
  };
}

/** Mean and population standard deviation (two passes, numerically stable). */
export function meanStd(values: Float64Array): { mean: number; std: number } {
  const n = values.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += values[i];
  const mean = sum / n;
  let squares = 0;
  for (let i = 0; i < n; i++) squares += (values[i] - mean) * (values[i] - mean);
  return { mean, std: Math.sqrt(squares / n) };
}

/** Reference tensors from the shared fixtures and comparisons with them; a check per thread count. */
import assert from 'node:assert/strict';
import { readSafetensors } from '../../src/engine/checkpoint/index.ts';
import { Tensor, getNumThreads, setNumThreads } from '../../src/engine/index.ts';

/** Every tensor of a safetensors file, as engine tensors (kept out of tidy scopes). */
export function loadTensors(path: string): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, raw] of readSafetensors(path).tensors) {
    out.set(name, Tensor.fromBytes(raw.data, raw.dtype, raw.shape).keep());
  }
  return out;
}

export function get(map: Map<string, Tensor>, name: string): Tensor {
  const t = map.get(name);
  assert.ok(t, `fixture tensor ${name} missing`);
  return t;
}

/**
 * The fixtures' suggested bound: max|a − b| ≤ rel · max|ref| (+ atol). Returns the observed error
 * relative to max|ref| so tests can report it.
 */
export function assertClose(actual: Tensor, expected: Tensor, name: string, rel = 1e-4, atol = 0): number {
  assert.deepEqual([...actual.shape], [...expected.shape], `${name}: shape`);
  const a = actual.toTypedArray() as Float32Array;
  const b = expected.toTypedArray() as Float32Array;
  let scale = 0;
  let err = 0;
  for (let i = 0; i < b.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]));
    err = Math.max(err, Math.abs(a[i] - b[i]));
  }
  const bound = rel * scale + atol;
  assert.ok(
    err <= bound,
    `${name}: max abs error ${err.toExponential(3)} > ${bound.toExponential(3)} (max|ref| ${scale.toExponential(3)})`,
  );
  return scale > 0 ? err / scale : err;
}

export function assertBitExact(actual: Tensor, expected: Tensor, name: string): void {
  assert.deepEqual([...actual.shape], [...expected.shape], `${name}: shape`);
  const a = actual.toBytes();
  const b = expected.toBytes();
  let diffs = 0;
  for (let i = 0; i < b.length; i++) if (a[i] !== b[i]) diffs++;
  assert.equal(diffs, 0, `${name}: ${diffs} bytes differ`);
}

/** Runs `body` once with each thread count, restoring the engine's count afterwards. */
export function withEachThreadCount(counts: readonly number[], body: (count: number) => void): void {
  const threads = getNumThreads();
  try {
    for (const count of counts) {
      setNumThreads(count);
      body(count);
    }
  } finally {
    setNumThreads(threads);
  }
}

/** Engine-specific option checks on top of src/util/is.ts, with the same message shape. */
import { integer, invalid } from '../util/is.ts';

/** An integer or a list of `n` integers (PyTorch's `int | tuple` arguments), as a list of `n`. */
export function ntuple(name: string, v: unknown, n: number, min = 0): number[] {
  if (Number.isInteger(v) && (v as number) >= min) return new Array<number>(n).fill(v as number);
  if (Array.isArray(v) && v.length === n && v.every((x) => Number.isInteger(x) && x >= min)) return [...v];
  throw invalid(name, `an integer >= ${min} or ${n} of them`, v);
}

/** A list of integers (shapes, dims); `min` bounds every entry. */
export function intList(name: string, v: unknown, min?: number): number[] {
  if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x) && (min === undefined || x >= min))) {
    throw invalid(name, min === undefined ? 'a list of integers' : `a list of integers >= ${min}`, v);
  }
  return v as number[];
}

/** A shape: non-negative integers. */
export function shapeOf(name: string, v: unknown): number[] {
  return intList(name, v, 0);
}

/** One dim or a list of dims, as a list (undefined stays undefined: "all dims"). */
export function dimsOf(name: string, v: unknown): number[] | null {
  if (v === undefined || v === null) return null;
  if (Number.isInteger(v)) return [v as number];
  return intList(name, v);
}

export function dimOf(name: string, v: unknown): number {
  return integer(name, v);
}

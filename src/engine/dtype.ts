/** Element types, their native codes (mirroring kTypes in native/common.cc) and typed-array views. */
import { oneOf } from '../util/is.ts';

export type DType =
  'float32' | 'float16' | 'bfloat16' | 'float64' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

/** Index = native code. */
export const DTYPES: readonly DType[] = [
  'float32',
  'float16',
  'bfloat16',
  'float64',
  'int64',
  'int32',
  'int16',
  'int8',
  'uint8',
  'bool',
];

const CODES = new Map<DType, number>(DTYPES.map((d, i) => [d, i]));

export function dtypeCode(name: string, d: unknown): number {
  const code = CODES.get(d as DType);
  return code ?? CODES.get(oneOf(name, d, DTYPES))!;
}

export function isFloating(d: DType): boolean {
  return d === 'float32' || d === 'float64' || d === 'float16' || d === 'bfloat16';
}

export type TypedArray =
  Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

type ArrayClass = new (buffer: ArrayBuffer) => TypedArray;

/** The typed array of each dtype JS can represent (float16/bfloat16 have none in Node 20). */
const ARRAYS: [DType, ArrayClass][] = [
  ['float32', Float32Array],
  ['float64', Float64Array],
  ['int64', BigInt64Array],
  ['int32', Int32Array],
  ['int16', Int16Array],
  ['int8', Int8Array],
  ['uint8', Uint8Array],
];

/** The dtype a typed array holds (Uint8Array → uint8; bool tensors come from `{ dtype: 'bool' }`). */
export function dtypeOfArray(a: ArrayBufferView): DType | undefined {
  return ARRAYS.find(([, C]) => a instanceof C)?.[0];
}

/** A typed array over `buffer` (bool as Uint8Array), or undefined for float16/bfloat16. */
export function typedArrayOver(buffer: ArrayBuffer, dtype: DType): TypedArray | undefined {
  const C = ARRAYS.find(([d]) => d === (dtype === 'bool' ? 'uint8' : dtype))?.[1];
  return C === undefined ? undefined : new C(buffer);
}

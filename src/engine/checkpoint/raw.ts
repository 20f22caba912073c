/**
 * Engine-independent tensor records: what the checkpoint readers produce and the writers take. The
 * tensor engine wraps these; keeping them plain lets file formats be read and tested without it.
 */
import { endianness } from 'node:os';
import type { DType } from '../dtype.ts';

export type { DType };

/** A tensor as raw little-endian bytes, contiguous and row-major (last axis fastest). */
export interface RawTensor {
  dtype: DType;
  shape: number[];
  data: Uint8Array;
}

export const DTYPE_SIZE: Readonly<Record<DType, number>> = {
  float64: 8,
  float32: 4,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

// Every reader hands out file bytes as native typed arrays; a big-endian host would need swaps.
if (endianness() !== 'LE') throw new Error('diffreg checkpoints need a little-endian host');

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

export type TypedArrayOf =
  | Float64Array
  | Float32Array
  | Uint16Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

/** The backing bytes as a buffer a typed array of `size`-byte elements may view (copied if misaligned). */
function aligned(data: Uint8Array, size: number): { buffer: ArrayBufferLike; offset: number } {
  if (data.byteOffset % size === 0) return { buffer: data.buffer, offset: data.byteOffset };
  return { buffer: data.slice().buffer, offset: 0 };
}

/**
 * The elements as the matching typed array. float16 and bfloat16 come back as their raw Uint16
 * bits, bool as 0/1 bytes. The result shares memory with `raw.data` unless the bytes were misaligned.
 */
export function toTypedArray(raw: RawTensor): TypedArrayOf {
  const size = DTYPE_SIZE[raw.dtype];
  const n = raw.data.byteLength / size;
  const { buffer, offset } = aligned(raw.data, size);
  switch (raw.dtype) {
    case 'float64':
      return new Float64Array(buffer, offset, n);
    case 'float32':
      return new Float32Array(buffer, offset, n);
    case 'float16':
    case 'bfloat16':
      return new Uint16Array(buffer, offset, n);
    case 'int64':
      return new BigInt64Array(buffer, offset, n);
    case 'int32':
      return new Int32Array(buffer, offset, n);
    case 'int16':
      return new Int16Array(buffer, offset, n);
    case 'int8':
      return new Int8Array(buffer, offset, n);
    case 'uint8':
    case 'bool':
      return new Uint8Array(buffer, offset, n);
  }
}

let halfTable: Float32Array | undefined;

/** All 65536 float16 values, built once: decoding then costs one lookup per element. */
function float16Table(): Float32Array {
  if (halfTable) return halfTable;
  halfTable = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) halfTable[h] = sign * frac * 2 ** -24;
    else if (exp === 31) halfTable[h] = frac ? NaN : sign * Infinity;
    else halfTable[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return halfTable;
}

/** The elements as float32 (float64 and large integers are rounded). Shares memory for float32 input. */
export function toFloat32(raw: RawTensor): Float32Array {
  const src = toTypedArray(raw);
  switch (raw.dtype) {
    case 'float32':
      return src as Float32Array;
    case 'float16': {
      const table = float16Table();
      const bits = src as Uint16Array;
      const out = new Float32Array(bits.length);
      for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]];
      return out;
    }
    case 'bfloat16': {
      // bfloat16 is the top half of a float32.
      const bits = src as Uint16Array;
      const out = new Uint32Array(bits.length);
      for (let i = 0; i < bits.length; i++) out[i] = bits[i] << 16;
      return new Float32Array(out.buffer);
    }
    case 'int64': {
      const big = src as BigInt64Array;
      const out = new Float32Array(big.length);
      for (let i = 0; i < big.length; i++) out[i] = Number(big[i]);
      return out;
    }
    default:
      return Float32Array.from(src as Exclude<TypedArrayOf, BigInt64Array>);
  }
}

export function isRawTensor(v: unknown): v is RawTensor {
  if (typeof v !== 'object' || v === null) return false;
  const t = v as Partial<RawTensor>;
  return (
    typeof t.dtype === 'string' &&
    t.dtype in DTYPE_SIZE &&
    Array.isArray(t.shape) &&
    t.data instanceof Uint8Array
  );
}

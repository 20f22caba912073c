/** Shared input checks of the readers: existence, gzip, non-finite voxel values. */
import { readFileSync, statSync } from 'node:fs';
import { endianness } from 'node:os';
import { constants, gunzipSync, unzipSync } from 'node:zlib';
import { kMaxLength } from 'node:buffer';
import { fail } from '../util/errors.ts';
import type { VoxelArray } from '../geometry/volume.ts';

export const HOST_LITTLE = endianness() === 'LE';

/** Reads a whole file, with one-line errors for a missing path or a directory. */
export function readInputFile(path: string): Buffer {
  let size: number;
  try {
    const stat = statSync(path);
    if (stat.isDirectory()) fail(path, 'is a directory, expected a file');
    size = stat.size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') fail(path, 'file not found');
    throw e;
  }
  if (size === 0) fail(path, 'file is empty');
  return readFileSync(path);
}

export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * The first `want` bytes of gzip data (all of it when shorter), or the bytes themselves when they are
 * not gzip. Only a prefix of the stream is inflated, doubling until it yields enough, so that a header
 * can be read before the whole file is decompressed (deflate expands at most ~1032×, which bounds the
 * memory of each step).
 */
export function gunzipHead(path: string, bytes: Buffer, want: number): Buffer {
  if (!isGzip(bytes)) return bytes;
  for (let take = 4096; ; take *= 2) {
    let head: Buffer;
    try {
      head = gunzipSync(bytes.subarray(0, take), { finishFlush: constants.Z_SYNC_FLUSH });
    } catch (e) {
      fail(path, `corrupt gzip data (${(e as Error).message})`);
    }
    if (head.length >= want || take >= bytes.length) return head;
  }
}

/**
 * Decompresses zlib or gzip data into at most `limit` bytes, the size a header describes: a corrupt or
 * forged stream cannot allocate more. Fewer bytes than `limit` are returned as they are (the caller
 * names what is missing).
 */
export function inflateBounded(path: string, bytes: Uint8Array, limit: number): Buffer {
  try {
    return unzipSync(bytes, { maxOutputLength: Math.max(1, Math.min(limit, kMaxLength)) });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE')
      fail(path, `compressed data decompress to more than the ${limit} bytes the header describes`);
    fail(path, `corrupt or truncated compressed data (${(e as Error).message})`);
  }
}

/** gzip data (detected by its magic bytes, whatever the extension says) decompressed by inflateBounded. */
export function gunzipBounded(path: string, bytes: Buffer, limit: number): Buffer {
  return isGzip(bytes) ? inflateBounded(path, bytes, limit) : bytes;
}

/** Rejects NaN/±Inf voxel values unless allowed (the library's `allowNonFinite`): they poison every similarity metric silently. */
export function checkFinite(path: string, data: VoxelArray, allowNonFinite = false): void {
  if (allowNonFinite || !(data instanceof Float32Array || data instanceof Float64Array)) return;
  let bad = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v - v !== 0) bad++; // NaN and ±Inf are the values for which v − v is not 0
  }
  if (bad > 0) {
    fail(path, `${bad} non-finite voxel value${bad === 1 ? '' : 's'} (NaN or Inf voxels are not accepted)`);
  }
}

/** Swaps the byte order of every element of `size` bytes in place. */
export function swapBytes(bytes: Uint8Array, size: number): void {
  if (size === 1) return;
  for (let i = 0; i < bytes.length; i += size) {
    for (let a = i, b = i + size - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
  }
}

/** A header field holding `count` numbers (whitespace- or comma-separated), checked by `ok`. */
export function headerNumbers(
  path: string,
  field: string,
  text: string,
  count: number,
  ok: (v: number) => boolean,
  what: string,
): number[] {
  const values = text
    .trim()
    .split(/[\s,]+/)
    .map(Number);
  if (values.length !== count || !values.every(ok))
    fail(path, `${field} ${JSON.stringify(text.trim().slice(0, 80))}: expected ${count} ${what}`);
  return values;
}

export const positiveInteger = (v: number) => Number.isSafeInteger(v) && v > 0;

/**
 * Checks that `payload` holds the `expected` voxel bytes a header describes, decompressing it (zlib or
 * gzip, bounded by `expected`) when `compressed`: ITK fills what is missing with zeros.
 */
export function checkPayload(path: string, payload: Uint8Array, expected: number, compressed: boolean): void {
  const have = compressed ? inflateBounded(path, payload, expected).length : payload.length;
  if (have < expected) {
    const what = compressed ? 'the compressed data give' : 'the file has';
    fail(path, `truncated: voxel data need ${expected} bytes, ${what} ${have}`);
  }
}

/** True when the columns of an n×n matrix are (nearly) linearly dependent, relative to their lengths. */
export function isSingular(m: readonly number[], n: number): boolean {
  const a = Array.from({ length: n }, (_, r) => m.slice(r * n, r * n + n));
  const norms = a[0].map((_, c) => Math.hypot(...a.map((row) => row[c])));
  if (norms.some((v) => !(v > 0))) return true;
  let det = 1;
  for (let c = 0; c < n; c++) {
    let pivot = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r][c]) > Math.abs(a[pivot][c])) pivot = r;
    if (a[pivot][c] === 0) return true;
    [a[c], a[pivot]] = [a[pivot], a[c]];
    det *= a[c][c];
    for (let r = c + 1; r < n; r++) {
      const f = a[r][c] / a[c][c];
      for (let k = c; k < n; k++) a[r][k] -= f * a[c][k];
    }
  }
  return Math.abs(det) <= 1e-6 * norms.reduce((p, v) => p * v, 1);
}

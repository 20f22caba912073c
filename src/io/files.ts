/** Shared input checks of the readers: existence, gzip, non-finite voxel values. */
import { readFileSync, statSync } from 'node:fs';
import { endianness } from 'node:os';
import { gunzipSync } from 'node:zlib';
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

/** Decompresses gzip data (detected by its magic bytes, whatever the extension says). */
export function gunzipIfNeeded(path: string, bytes: Buffer): Buffer {
  if (!isGzip(bytes)) return bytes;
  try {
    return gunzipSync(bytes);
  } catch (e) {
    fail(path, `corrupt or truncated gzip data (${(e as Error).message})`);
  }
}

/** Rejects NaN/±Inf voxel values unless allowed: they poison every similarity metric silently. */
export function checkFinite(path: string, data: VoxelArray, allowNonFinite = false): void {
  if (allowNonFinite || !(data instanceof Float32Array || data instanceof Float64Array)) return;
  let bad = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v - v !== 0) bad++; // NaN and ±Inf are the values for which v − v is not 0
  }
  if (bad > 0) {
    fail(
      path,
      `${bad} non-finite voxel value${bad === 1 ? '' : 's'} (NaN or Inf); pass allowNonFinite to accept`,
    );
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

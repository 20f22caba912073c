/**
 * Minimal zip reader for torch.save archives: the central directory (with zip64 for archives past
 * 4 GiB), then one entry at a time with ranged reads. Stored and deflated entries; CRC-checked.
 */
import { crc32, inflateRawSync } from 'node:zlib';
import { fail } from '../../util/errors.ts';
import { readRange, type OpenFile } from './files.ts';

export interface ZipEntry {
  name: string;
  method: number;
  flags: number;
  crc: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_END = 0x06054b50;
const SIG_END64 = 0x06064b50;
const SIG_LOCATOR64 = 0x07064b50;
const EXTRA_ZIP64 = 0x0001;
const END_SIZE = 22;
const LOCATOR64_SIZE = 20;
const CENTRAL_SIZE = 46;
const LOCAL_SIZE = 30;
const U32_MAX = 0xffffffff;

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function u64(subject: string, d: DataView, at: number): number {
  const v = d.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(subject, `zip field value ${v} is too large`);
  return Number(v);
}

/** Locates the central directory through the end record (and its zip64 form when present). */
function findDirectory(file: OpenFile): { offset: number; size: number; count: number } {
  const { path } = file;
  // The end record sits in the last 22 bytes plus a comment of up to 65535 bytes.
  const tailStart = Math.max(0, file.size - END_SIZE - 0xffff);
  const tail = readRange(file, tailStart, file.size - tailStart, 'zip end record');
  const d = view(tail);
  let end = -1;
  for (let i = tail.byteLength - END_SIZE; i >= 0; i--) {
    if (d.getUint32(i, true) === SIG_END && i + END_SIZE + d.getUint16(i + 20, true) <= tail.byteLength) {
      end = i;
      break;
    }
  }
  if (end < 0) fail(path, 'truncated or damaged zip archive (no end-of-central-directory record)');
  const loc = end - LOCATOR64_SIZE;
  if (loc >= 0 && d.getUint32(loc, true) === SIG_LOCATOR64) {
    const at = u64(path, d, loc + 8);
    const rec = view(readRange(file, at, 56, 'zip64 end record'));
    if (rec.getUint32(0, true) !== SIG_END64) fail(path, 'damaged zip archive (bad zip64 end record)');
    return { count: u64(path, rec, 32), size: u64(path, rec, 40), offset: u64(path, rec, 48) };
  }
  return {
    count: d.getUint16(end + 10, true),
    size: d.getUint32(end + 12, true),
    offset: d.getUint32(end + 16, true),
  };
}

/** Sizes and offset saturated at 0xffffffff are given in the zip64 extra field, in this order. */
function applyZip64(subject: string, e: ZipEntry, extra: DataView): void {
  for (let at = 0; at + 4 <= extra.byteLength;) {
    const id = extra.getUint16(at, true);
    const len = extra.getUint16(at + 2, true);
    if (id === EXTRA_ZIP64) {
      const field = new DataView(
        extra.buffer,
        extra.byteOffset + at + 4,
        Math.min(len, extra.byteLength - at - 4),
      );
      let p = 0;
      const next = (): number => {
        if (p + 8 > field.byteLength)
          fail(subject, `damaged zip archive (short zip64 field for '${e.name}')`);
        p += 8;
        return u64(subject, field, p - 8);
      };
      if (e.size === U32_MAX) e.size = next();
      if (e.compressedSize === U32_MAX) e.compressedSize = next();
      if (e.localOffset === U32_MAX) e.localOffset = next();
      return;
    }
    at += 4 + len;
  }
}

/** Every entry of the archive's central directory, in directory order. */
export function readZipDirectory(file: OpenFile): ZipEntry[] {
  const { path } = file;
  const dir = findDirectory(file);
  const bytes = readRange(file, dir.offset, dir.size, 'zip central directory');
  const d = view(bytes);
  const names = new TextDecoder();
  const entries: ZipEntry[] = [];
  let at = 0;
  for (let i = 0; i < dir.count; i++) {
    if (at + CENTRAL_SIZE > bytes.byteLength || d.getUint32(at, true) !== SIG_CENTRAL) {
      fail(path, `damaged zip archive (central directory entry ${i} is invalid)`);
    }
    const nameLen = d.getUint16(at + 28, true);
    const extraLen = d.getUint16(at + 30, true);
    const commentLen = d.getUint16(at + 32, true);
    const nameAt = at + CENTRAL_SIZE;
    if (nameAt + nameLen + extraLen > bytes.byteLength)
      fail(path, `damaged zip archive (central directory entry ${i} is cut)`);
    const e: ZipEntry = {
      name: names.decode(bytes.subarray(nameAt, nameAt + nameLen)),
      flags: d.getUint16(at + 8, true),
      method: d.getUint16(at + 10, true),
      crc: d.getUint32(at + 16, true),
      compressedSize: d.getUint32(at + 20, true),
      size: d.getUint32(at + 24, true),
      localOffset: d.getUint32(at + 42, true),
    };
    applyZip64(path, e, new DataView(bytes.buffer, bytes.byteOffset + nameAt + nameLen, extraLen));
    entries.push(e);
    at = nameAt + nameLen + extraLen + commentLen;
  }
  return entries;
}

/** The entry's uncompressed bytes, in a fresh array for stored entries. */
export function readZipEntry(file: OpenFile, e: ZipEntry): Uint8Array {
  const { path } = file;
  const what = `zip entry '${e.name}'`;
  if (e.flags & 1) fail(path, `${what} is encrypted`);
  if (e.method !== 0 && e.method !== 8) fail(path, `${what} uses unsupported compression method ${e.method}`);
  const local = view(readRange(file, e.localOffset, LOCAL_SIZE, what));
  if (local.getUint32(0, true) !== SIG_LOCAL)
    fail(path, `damaged zip archive (no local header for '${e.name}')`);
  // The local extra field may differ from the central one (torch pads it to align the data).
  const start = e.localOffset + LOCAL_SIZE + local.getUint16(26, true) + local.getUint16(28, true);
  const stored = readRange(file, start, e.compressedSize, what);
  let data = stored;
  if (e.method === 8) {
    try {
      const out = inflateRawSync(stored, { maxOutputLength: Math.max(e.size, 1) });
      data = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    } catch (err) {
      fail(path, `${what} has corrupt compressed data (${(err as Error).message})`);
    }
  }
  if (data.byteLength !== e.size)
    fail(path, `${what} holds ${data.byteLength} bytes, the directory says ${e.size}`);
  if (crc32(data) >>> 0 !== e.crc) fail(path, `${what} is corrupt (CRC mismatch)`);
  return data;
}

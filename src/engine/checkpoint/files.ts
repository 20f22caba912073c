/**
 * File access for checkpoint readers and writers: ranged reads (model files are hundreds of MB, so
 * only the needed bytes are read, each once) and an atomic write that streams its chunks.
 */
import { closeSync, fstatSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { DiffregError, fail } from '../../util/errors.ts';

/** An open file; `path` names it in every error. */
export interface OpenFile {
  path: string;
  fd: number;
  size: number;
}

function reason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'file not found';
  if (code === 'EISDIR') return 'is a directory, not a file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  return `cannot read (${(e as Error).message})`;
}

export function openFile(path: string): OpenFile {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    fail(path, reason(e));
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) fail(path, 'is not a regular file');
    return { path, fd, size: stat.size };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** Runs `use` on the opened file and always closes it. */
export function withFile<T>(path: string, use: (file: OpenFile) => T): T {
  const file = openFile(path);
  try {
    return use(file);
  } finally {
    closeSync(file.fd);
  }
}

// readSync takes at most 2 GiB per call.
const READ_CHUNK = 1 << 30;

/** `length` bytes from `offset` into a fresh (8-byte aligned) array; `what` names the part in errors. */
export function readRange(file: OpenFile, offset: number, length: number, what: string): Uint8Array {
  if (offset < 0 || length < 0 || offset + length > file.size) {
    fail(
      file.path,
      `${what} lies outside the file (bytes ${offset}..${offset + length} of ${file.size}); truncated?`,
    );
  }
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    let n: number;
    try {
      n = readSync(file.fd, out, done, Math.min(READ_CHUNK, length - done), offset + done);
    } catch (e) {
      fail(file.path, reason(e));
    }
    if (n === 0) fail(file.path, `unexpected end of file while reading ${what}`);
    done += n;
  }
  return out;
}

/**
 * Writes the chunks one after another to a temporary name beside `path`, then renames it, so a
 * failed or interrupted write never leaves a partial file and no concatenated copy is built.
 */
export function writeChunksAtomic(path: string, chunks: Iterable<Uint8Array>): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w');
    for (const chunk of chunks) {
      let done = 0;
      while (done < chunk.byteLength) {
        done += writeSync(fd, chunk, done, Math.min(READ_CHUNK, chunk.byteLength - done));
      }
    }
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    if (e instanceof DiffregError) throw e;
    fail(path, `cannot write (${(e as Error).message})`);
  }
}

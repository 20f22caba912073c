/**
 * safetensors: an 8-byte little-endian header length N, an N-byte JSON header (name → dtype, shape,
 * data_offsets relative to the end of the header, plus an optional `__metadata__` string map), then
 * the tensor bytes back to back. Reading from a path reads the header, then only the requested ranges.
 */
import { fail } from '../../util/errors.ts';
import { DTYPE_SIZE, numel, type DType, type RawTensor } from './raw.ts';
import { readRange, withFile, writeChunksAtomic, type OpenFile } from './files.ts';

const FROM_CODE: Readonly<Record<string, DType>> = {
  F64: 'float64',
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
};
const TO_CODE = Object.fromEntries(Object.entries(FROM_CODE).map(([code, dtype]) => [dtype, code])) as Record<
  DType,
  string
>;

// The reference implementation's limit; a larger value means a corrupt or foreign file.
const MAX_HEADER = 100_000_000;
const METADATA = '__metadata__';

export interface SafetensorsEntry {
  name: string;
  dtype: DType;
  shape: number[];
  /** Byte range relative to the first byte after the header. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** In file (offset) order. */
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
  /** Absolute offset of the first tensor byte. */
  dataStart: number;
}

export interface SafetensorsContent {
  /** In file (offset) order. */
  tensors: Map<string, RawTensor>;
  metadata: Record<string, string>;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

/** Header length from the first 8 bytes, checked against the file size. */
function headerLength(subject: string, first8: Uint8Array, total: number): number {
  if (total < 8)
    fail(subject, `not a safetensors file (${total} bytes, shorter than the 8-byte header length)`);
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n < 2n || n > BigInt(MAX_HEADER))
    fail(subject, `not a safetensors file (header length ${n} is not sane)`);
  if (8 + Number(n) > total)
    fail(subject, `header length ${n} runs past the end of the file (${total} bytes); truncated?`);
  return Number(n);
}

function parseEntry(subject: string, name: string, v: unknown): SafetensorsEntry {
  const where = `tensor '${name}'`;
  if (!isRecord(v)) fail(subject, `${where}: header entry is not an object`);
  const dtype = typeof v.dtype === 'string' ? FROM_CODE[v.dtype] : undefined;
  if (!dtype) fail(subject, `${where}: unsupported dtype ${JSON.stringify(v.dtype)}`);
  if (!Array.isArray(v.shape) || !v.shape.every(isCount))
    fail(subject, `${where}: shape must be a list of non-negative integers`);
  const offsets = v.data_offsets;
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) {
    fail(subject, `${where}: data_offsets must be [begin, end] with 0 <= begin <= end`);
  }
  const shape = v.shape as number[];
  const [begin, end] = offsets as number[];
  const bytes = numel(shape) * DTYPE_SIZE[dtype];
  if (end - begin !== bytes) {
    fail(
      subject,
      `${where}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes, shape [${shape}] ${dtype} needs ${bytes}`,
    );
  }
  return { name, dtype, shape, begin, end };
}

/** Parses and validates the header: known dtypes, sizes matching shapes, ranges tiling the data exactly. */
function parseHeader(
  subject: string,
  json: Uint8Array,
  dataStart: number,
  dataLength: number,
): SafetensorsHeader {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json));
  } catch (e) {
    fail(subject, `invalid safetensors header (${(e as Error).message})`);
  }
  if (!isRecord(doc)) fail(subject, 'invalid safetensors header (not a JSON object)');
  const metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const [name, v] of Object.entries(doc)) {
    if (name !== METADATA) {
      entries.push(parseEntry(subject, name, v));
      continue;
    }
    if (!isRecord(v) || !Object.values(v).every((s) => typeof s === 'string')) {
      fail(subject, `${METADATA} must map strings to strings`);
    }
    Object.assign(metadata, v);
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const e of entries) {
    if (e.end > dataLength) {
      fail(
        subject,
        `tensor '${e.name}': data_offsets [${e.begin}, ${e.end}] run past the data (${dataLength} bytes); truncated?`,
      );
    }
    if (e.begin < at)
      fail(subject, `tensor '${e.name}': data_offsets [${e.begin}, ${e.end}] overlap the previous tensor`);
    if (e.begin > at) fail(subject, `tensor '${e.name}': ${e.begin - at} unused bytes before its data`);
    at = e.end;
  }
  if (at !== dataLength) fail(subject, `${dataLength - at} bytes after the last tensor`);
  return { entries, metadata, dataStart };
}

function readHeaderOf(file: OpenFile): SafetensorsHeader {
  const n = headerLength(file.path, readRange(file, 0, Math.min(8, file.size), 'header length'), file.size);
  return parseHeader(file.path, readRange(file, 8, n, 'header'), 8 + n, file.size - 8 - n);
}

/** Names, dtypes, shapes and metadata without reading any tensor data. */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  return withFile(path, readHeaderOf);
}

function select(subject: string, header: SafetensorsHeader, names?: Iterable<string>): SafetensorsEntry[] {
  if (!names) return header.entries;
  const byName = new Map(header.entries.map((e) => [e.name, e]));
  const wanted = new Set(names);
  for (const name of wanted) if (!byName.has(name)) fail(subject, `no tensor '${name}'`);
  return header.entries.filter((e) => wanted.has(e.name));
}

/** Reads the file's tensors (only `names`, when given), each with its own ranged read. */
export function readSafetensors(path: string, opts: { names?: Iterable<string> } = {}): SafetensorsContent {
  return withFile(path, (file) => {
    const header = readHeaderOf(file);
    const tensors = new Map<string, RawTensor>();
    for (const e of select(path, header, opts.names)) {
      const data = readRange(file, header.dataStart + e.begin, e.end - e.begin, `tensor '${e.name}'`);
      tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data });
    }
    return { tensors, metadata: header.metadata };
  });
}

/** Parses safetensors bytes held in memory; tensor data are views into `bytes`. */
export function parseSafetensors(input: Uint8Array, subject = '<buffer>'): SafetensorsContent {
  // A plain view, so that a Buffer input does not hand out Buffer (with its own slice semantics).
  const bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  const n = headerLength(subject, bytes, bytes.byteLength);
  const header = parseHeader(subject, bytes.subarray(8, 8 + n), 8 + n, bytes.byteLength - 8 - n);
  const tensors = new Map<string, RawTensor>();
  for (const e of header.entries) {
    const data = bytes.subarray(header.dataStart + e.begin, header.dataStart + e.end);
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data });
  }
  return { tensors, metadata: header.metadata };
}

/** The file as chunks: length + header, then each tensor's bytes in the given order. */
function chunks(
  subject: string,
  tensors: Iterable<readonly [string, RawTensor]>,
  metadata: Record<string, string>,
): Uint8Array[] {
  const parts: string[] = [];
  const data: Uint8Array[] = [];
  const seen = new Set<string>();
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== 'string') fail(subject, `metadata '${key}' must be a string, got ${typeof value}`);
  }
  if (Object.keys(metadata).length) parts.push(`"${METADATA}":${JSON.stringify(metadata)}`);
  let at = 0;
  for (const [name, t] of tensors) {
    if (name === METADATA || seen.has(name)) fail(subject, `tensor name '${name}' is reserved or repeated`);
    seen.add(name);
    const code = TO_CODE[t.dtype];
    if (!code) fail(subject, `tensor '${name}': unknown dtype ${JSON.stringify(t.dtype)}`);
    if (!t.shape.every(isCount))
      fail(subject, `tensor '${name}': shape [${t.shape}] is not a list of non-negative integers`);
    const bytes = numel(t.shape) * DTYPE_SIZE[t.dtype];
    if (t.data.byteLength !== bytes) {
      fail(
        subject,
        `tensor '${name}': ${t.data.byteLength} data bytes, shape [${t.shape}] ${t.dtype} needs ${bytes}`,
      );
    }
    parts.push(
      `${JSON.stringify(name)}:{"dtype":"${code}","shape":${JSON.stringify(t.shape)},"data_offsets":[${at},${at + bytes}]}`,
    );
    data.push(t.data);
    at += bytes;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  // Space padding to a multiple of 8 keeps every tensor as aligned as its offset allows.
  const n = Math.ceil(json.byteLength / 8) * 8;
  const head = new Uint8Array(8 + n).fill(0x20, 8 + json.byteLength);
  new DataView(head.buffer).setBigUint64(0, BigInt(n), true);
  head.set(json, 8);
  return [head, ...data];
}

/** Serialises to one buffer (for small files; use writeSafetensors for model-sized ones). */
export function serializeSafetensors(
  tensors: Iterable<readonly [string, RawTensor]>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const parts = chunks('<buffer>', tensors, metadata);
  const out = new Uint8Array(parts.reduce((s, p) => s + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** Writes atomically, streaming each tensor's bytes in order (no concatenated copy is built). */
export function writeSafetensors(
  path: string,
  tensors: Iterable<readonly [string, RawTensor]>,
  metadata: Record<string, string> = {},
): void {
  writeChunksAtomic(path, chunks(path, tensors, metadata));
}

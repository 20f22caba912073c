/**
 * MetaImage writer (`.mha` with the data inline, or `.mhd` header plus a `.raw` data file), and the
 * header checks done before ITK reads a file (itk.ts). MetaImage is LPS like the Volume, so geometry is written as is.
 *
 * `TransformMatrix` lists the direction matrix column by column (the direction of axis 0 first), as
 * ITK's MetaImageIO writes and reads it. Multi-component Volumes are written with
 * `ElementNumberOfChannels` and interleaved components (MetaImage's layout), still LPS vectors.
 */
import { existsSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { deflateSync } from 'node:zlib';
import type { Volume, VoxelArray } from '../geometry/volume.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { fail } from '../util/errors.ts';
import { checkPayload, headerNumbers, isSingular, positiveInteger, readInputFile } from './files.ts';

export interface MetaImageWriteOptions {
  /** zlib-compress the voxel data (`CompressedData = True`); default true. */
  compress?: boolean;
}

const ELEMENT_TYPES: [new (n: number) => VoxelArray, string][] = [
  [Uint8Array, 'MET_UCHAR'],
  [Int8Array, 'MET_CHAR'],
  [Int16Array, 'MET_SHORT'],
  [Uint16Array, 'MET_USHORT'],
  [Int32Array, 'MET_INT'],
  [Uint32Array, 'MET_UINT'],
  [Float32Array, 'MET_FLOAT'],
  [Float64Array, 'MET_DOUBLE'],
];

function elementType(data: VoxelArray): string {
  const found = ELEMENT_TYPES.find(([Type]) => data instanceof Type);
  if (!found) throw new Error('metaimage: unknown voxel array type');
  return found[1];
}

/** Voxel bytes in MetaImage order: components interleaved (component fastest). */
function interleavedBytes(volume: Volume): Uint8Array {
  const { data, components } = volume;
  let values = data;
  if (components > 1) {
    const n = volume.size;
    values = new (data.constructor as new (n: number) => VoxelArray)(data.length);
    for (let c = 0; c < components; c++) {
      for (let v = 0, dst = c; v < n; v++, dst += components) values[dst] = data[c * n + v];
    }
  }
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

/** Writes `.mha` (data inline) or `.mhd` (+ `.raw`/`.zraw` next to it), atomically. */
export function writeMetaImage(path: string, volume: Volume, options: MetaImageWriteOptions = {}): void {
  const compress = options.compress ?? true;
  const raw = interleavedBytes(volume);
  const payload = compress ? deflateSync(raw) : raw;
  const d = volume.direction;
  const detached = /\.mhd$/i.test(path);
  const dataPath = path.replace(/\.mhd$/i, compress ? '.zraw' : '.raw');
  const lines = [
    'ObjectType = Image',
    'NDims = 3',
    'BinaryData = True',
    'BinaryDataByteOrderMSB = False',
    `CompressedData = ${compress ? 'True' : 'False'}`,
    ...(compress ? [`CompressedDataSize = ${payload.length}`] : []),
    `TransformMatrix = ${[d[0], d[3], d[6], d[1], d[4], d[7], d[2], d[5], d[8]].join(' ')}`,
    `Offset = ${volume.origin.join(' ')}`,
    'CenterOfRotation = 0 0 0',
    `ElementSpacing = ${volume.spacing.join(' ')}`,
    `DimSize = ${volume.dims.join(' ')}`,
    ...(volume.components > 1 ? [`ElementNumberOfChannels = ${volume.components}`] : []),
    `ElementType = ${elementType(volume.data)}`,
    `ElementDataFile = ${detached ? basename(dataPath) : 'LOCAL'}`,
  ];
  const header = Buffer.from(lines.join('\n') + '\n', 'latin1');
  if (detached) {
    writeFileAtomic(dataPath, payload);
    writeFileAtomic(path, header);
  } else {
    writeFileAtomic(path, Buffer.concat([header, payload]));
  }
}

/** Bytes per element of the MetaImage element types ITK reads (`MET_LONG` is 4 bytes in MetaIO). */
const ELEMENT_SIZES: Record<string, number> = {
  MET_CHAR: 1,
  MET_UCHAR: 1,
  MET_SHORT: 2,
  MET_USHORT: 2,
  MET_INT: 4,
  MET_UINT: 4,
  MET_LONG: 4,
  MET_ULONG: 4,
  MET_LONG_LONG: 8,
  MET_ULONG_LONG: 8,
  MET_FLOAT: 4,
  MET_DOUBLE: 8,
};

/** The first header field present among synonyms (MetaIO accepts e.g. Offset, Position and Origin). */
function metaField(fields: Map<string, string>, ...names: string[]): [string, string] | undefined {
  for (const name of names) {
    const value = fields.get(name.toLowerCase());
    if (value !== undefined) return [name, value];
  }
  return undefined;
}

/**
 * Checks a MetaImage file before ITK reads it, with messages naming the field: ITK reports most of
 * these as a bare failure, fills truncated or corrupt compressed data with zeros, and accepts zero
 * spacing or a singular direction matrix. Checked: NDims, DimSize, ElementType, channels, spacing
 * (finite, > 0), offset (finite), direction (finite, non-singular), the data file's presence and that
 * it holds the voxel bytes (decompressed when compressed). Slice-file lists (`LIST`, patterns) and
 * ASCII data are left to ITK.
 */
export function checkMetaImage(path: string): void {
  const bytes = readInputFile(path);
  const fields = new Map<string, string>();
  let dataStart = -1;
  for (let at = 0; at < bytes.length && dataStart < 0;) {
    let end = bytes.indexOf(0x0a, at);
    if (end < 0) end = bytes.length;
    const line = bytes.toString('latin1', at, end).trim();
    at = end + 1;
    const eq = line.indexOf('=');
    if (!line) continue;
    if (eq < 0) fail(path, `not a MetaImage header line: ${JSON.stringify(line.slice(0, 60))}`);
    const key = line.slice(0, eq).trim().toLowerCase();
    fields.set(key, line.slice(eq + 1).trim());
    if (key === 'elementdatafile') dataStart = Math.min(at, bytes.length);
  }
  if (dataStart < 0) fail(path, 'not a MetaImage file (no ElementDataFile line)');
  const get = (name: string) => fields.get(name.toLowerCase());
  const ndims = Number(get('NDims'));
  if (!Number.isInteger(ndims) || ndims < 1 || ndims > 4)
    fail(path, `NDims ${JSON.stringify(get('NDims') ?? '')}: expected 1 to 4`);
  const dims = headerNumbers(
    path,
    'DimSize',
    get('DimSize') ?? '',
    ndims,
    positiveInteger,
    'positive integers',
  );
  const type = (get('ElementType') ?? '').toUpperCase().replace(/_ARRAY$/, '');
  const elementSize = ELEMENT_SIZES[type];
  if (!elementSize) {
    fail(
      path,
      `unknown ElementType ${JSON.stringify(get('ElementType') ?? '')} (expected one of ${Object.keys(ELEMENT_SIZES).join(', ')})`,
    );
  }
  const channelText = get('ElementNumberOfChannels') ?? '1';
  const [channels] = headerNumbers(
    path,
    'ElementNumberOfChannels',
    channelText,
    1,
    positiveInteger,
    'positive integer',
  );
  const spacing = metaField(fields, 'ElementSpacing');
  if (spacing) headerNumbers(path, ...spacing, ndims, (v) => Number.isFinite(v) && v > 0, 'positive numbers');
  const offset = metaField(fields, 'Offset', 'Position', 'Origin');
  if (offset) headerNumbers(path, ...offset, ndims, Number.isFinite, 'finite numbers');
  const matrix = metaField(fields, 'TransformMatrix', 'Rotation', 'Orientation');
  if (matrix) {
    const m = headerNumbers(path, ...matrix, ndims * ndims, Number.isFinite, 'finite numbers');
    if (isSingular(m, ndims))
      fail(path, `${matrix[0]} ${JSON.stringify(matrix[1])}: the direction matrix is singular`);
  }

  const dataFile = get('ElementDataFile') ?? '';
  if (/^list\b/i.test(dataFile) || dataFile.includes('%')) return;
  if ((get('BinaryData') ?? 'True').toLowerCase() === 'false') return;
  const expected = dims.reduce((a, b) => a * b, 1) * channels * elementSize;
  const compressed = (get('CompressedData') ?? 'False').toLowerCase() === 'true';
  let payload: Uint8Array;
  if (dataFile.toUpperCase() === 'LOCAL') payload = bytes.subarray(dataStart);
  else {
    const dataPath = resolve(dirname(path), dataFile);
    if (!existsSync(dataPath)) fail(path, `data file ${dataFile} (ElementDataFile) not found`);
    payload = readInputFile(dataPath);
    const skip = Number(get('HeaderSize') ?? 0);
    if (skip === -1 && !compressed) payload = payload.subarray(Math.max(0, payload.length - expected));
    else if (skip > 0) payload = payload.subarray(skip);
  }
  const size = Number(get('CompressedDataSize'));
  if (compressed && Number.isSafeInteger(size) && size > 0) payload = payload.subarray(0, size);
  checkPayload(path, payload, expected, compressed);
}

/**
 * NRRD header checks done before ITK reads a file (itk.ts), with messages naming the field: ITK reports
 * a bad header as a bare failure, and a header claiming more voxels than the file holds would make it
 * allocate them first. Checked: dimension, sizes, type, encoding, the data file's presence and that it
 * holds the voxel bytes (raw: by size; gzip: decompressed, bounded by the header's claim). Geometry is
 * checked on what ITK returns (itk.ts), as for every ITK format.
 */
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fail } from '../util/errors.ts';
import { checkPayload, headerNumbers, positiveInteger, readInputFile } from './files.ts';

/** Bytes per value of each NRRD type name (NRRD0005 specification, "type"). */
const TYPE_SIZES: [number, string[]][] = [
  [1, ['signed char', 'int8', 'int8_t', 'uchar', 'unsigned char', 'uint8', 'uint8_t']],
  [2, ['short', 'short int', 'signed short', 'signed short int', 'int16', 'int16_t']],
  [2, ['ushort', 'unsigned short', 'unsigned short int', 'uint16', 'uint16_t']],
  [4, ['int', 'signed int', 'int32', 'int32_t', 'uint', 'unsigned int', 'uint32', 'uint32_t', 'float']],
  [8, ['longlong', 'long long', 'long long int', 'signed long long', 'signed long long int', 'int64']],
  [8, ['int64_t', 'ulonglong', 'unsigned long long', 'unsigned long long int', 'uint64', 'uint64_t']],
  [8, ['double']],
];
const TYPE_SIZE = new Map(TYPE_SIZES.flatMap(([size, names]) => names.map((n) => [n, size] as const)));

const ENCODINGS = ['raw', 'txt', 'text', 'ascii', 'hex', 'gz', 'gzip', 'bz2', 'bzip2'];

export function checkNrrd(path: string): void {
  const bytes = readInputFile(path);
  if (bytes.toString('latin1', 0, 4) !== 'NRRD') fail(path, 'not a NRRD file (no "NRRD" magic)');
  const fields = new Map<string, string>();
  let at = bytes.indexOf(0x0a) + 1;
  while (at > 0 && at < bytes.length) {
    let end = bytes.indexOf(0x0a, at);
    if (end < 0) end = bytes.length;
    const line = bytes.toString('latin1', at, end).replace(/\r$/, '');
    at = end + 1;
    if (line === '') break; // the blank line ending the header
    const colon = line.indexOf(': ');
    if (!line.startsWith('#') && colon > 0)
      fields.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 2));
  }
  const get = (name: string) => fields.get(name) ?? '';
  const [rank] = headerNumbers(path, 'dimension', get('dimension'), 1, positiveInteger, 'positive integer');
  const sizes = headerNumbers(path, 'sizes', get('sizes'), rank, positiveInteger, 'positive integers');
  const size = TYPE_SIZE.get(get('type').trim().toLowerCase());
  if (!size) fail(path, `unsupported type ${JSON.stringify(get('type'))}`);
  const encoding = get('encoding').trim().toLowerCase();
  if (!ENCODINGS.includes(encoding))
    fail(
      path,
      `unknown encoding ${JSON.stringify(get('encoding'))} (expected one of ${ENCODINGS.join(', ')})`,
    );

  const dataFile = (fields.get('data file') ?? fields.get('datafile') ?? '').trim();
  if (/^list\b/i.test(dataFile) || /\s/.test(dataFile)) return; // slice lists and patterns: left to ITK
  if (!['raw', 'gz', 'gzip'].includes(encoding)) return;
  let payload: Uint8Array = bytes.subarray(Math.min(at, bytes.length));
  if (dataFile) {
    const dataPath = resolve(dirname(path), dataFile);
    if (!existsSync(dataPath)) fail(path, `data file ${dataFile} not found`);
    payload = readInputFile(dataPath);
  }
  const expected = sizes.reduce((a, b) => a * b, 1) * size;
  const skip = Number(fields.get('byte skip') ?? 0);
  if (encoding === 'raw' && skip === -1) return checkPayload(path, payload, expected, false);
  if (encoding === 'raw' && skip > 0) payload = payload.subarray(skip);
  checkPayload(path, payload, expected + (encoding === 'raw' ? 0 : Math.max(0, skip)), encoding !== 'raw');
}

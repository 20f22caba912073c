/**
 * MetaImage writer (`.mha` with the data inline, or `.mhd` header plus a `.raw` data file). Reading goes
 * through ITK (itk.ts). MetaImage is LPS like the Volume, so geometry is written as is.
 *
 * `TransformMatrix` lists the direction matrix column by column (the direction of axis 0 first), as
 * ITK's MetaImageIO writes and reads it. Multi-component Volumes are written with
 * `ElementNumberOfChannels` and interleaved components (MetaImage's layout), still LPS vectors.
 */
import { basename } from 'node:path';
import { deflateSync } from 'node:zlib';
import type { Volume, VoxelArray } from '../geometry/volume.ts';
import { writeFileAtomic } from '../util/atomic.ts';

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

/**
 * MetaImage (`.mha`, `.mhd`+raw, zlib-compressed or not), NRRD (`.nrrd`, `.nhdr`) and DICOM (one file or
 * a series directory) through ITK compiled to WebAssembly (@itk-wasm/image-io, @itk-wasm/dicom).
 *
 * ITK images are LPS already, so no axis flip is needed. itk-wasm hands back `direction` row-major
 * (element [r·d + c] = row r, column c; columns are the axis directions — checked against NRRD
 * `space directions` in the tests), the same layout as Volume. Pixel components come interleaved
 * (component fastest) and are de-interleaved into Volume's planar layout.
 *
 * ITK reports most bad files as a bare failure, zero-fills truncated compressed MetaImage data and
 * accepts degenerate geometry; so MetaImage and NRRD headers and DICOM files are checked first by our
 * own parsers (metaimage.ts, nrrd.ts, dicom.ts) and the geometry ITK returns is checked for every format.
 */
import { closeSync, existsSync, openSync, readSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Volume, type Mat3, type Vec3, type VoxelArray } from '../geometry/volume.ts';
import { fail } from '../util/errors.ts';
import { integer } from '../util/is.ts';
import { checkSliceSpacing, readDicomSlice } from './dicom.ts';
import { checkFinite, isSingular } from './files.ts';
import { checkMetaImage } from './metaimage.ts';
import { checkNrrd } from './nrrd.ts';

export type ItkFormat = 'metaimage' | 'nrrd' | 'dicom';
const FORMAT_NAMES: Record<ItkFormat, string> = { metaimage: 'MetaImage', nrrd: 'NRRD', dicom: 'DICOM' };

export interface ItkReadOptions {
  /** Accept NaN/Inf voxel values (rejected by default). */
  allowNonFinite?: boolean;
  /** Time point of a 4D image (required when the 4th size is > 1). */
  frame?: number;
}

/** The fields of an itk-wasm Image this module uses. */
interface ItkImage {
  imageType: { dimension: number; componentType: string; pixelType: string; components: number };
  origin: ArrayLike<number>;
  spacing: ArrayLike<number>;
  direction: ArrayLike<number>;
  size: ArrayLike<number>;
  data: ArrayLike<number> | ArrayLike<bigint> | null;
}

/**
 * Runs an itk-wasm call while collecting what it prints. On failure itk-wasm throws a bare number and
 * dumps ITK's message to the console; the message is turned into the error text instead. On success
 * whatever was printed (ITK warnings) is passed on to stderr unchanged.
 */
async function captureItk<T>(subject: string, what: string, call: () => Promise<T>): Promise<T> {
  const printed: string[] = [];
  const saved = { log: console.log, error: console.error, warn: console.warn };
  const collect = (...args: unknown[]) => void printed.push(args.map(String).join(' '));
  console.log = console.error = console.warn = collect;
  try {
    const result = await call();
    Object.assign(console, saved);
    for (const line of printed) console.error(line);
    return result;
  } catch (e) {
    Object.assign(console, saved);
    const lines = [...printed, e instanceof Error ? e.message : '']
      .flatMap((t) => t.split('\n'))
      .map((l) => l.trim());
    const reason = lines.find(
      (l) =>
        l && !/^(Exception while running pipeline|stdout:|stderr:\s*$|Build module|exception:|\d+$)/.test(l),
    );
    fail(
      subject,
      `cannot read ${what} (${(reason ?? 'unknown ITK error').replace(/^stderr:\s*/, '').slice(0, 200)})`,
    );
  }
}

async function readWithItk(path: string, format: ItkFormat): Promise<ItkImage> {
  if (format === 'metaimage') checkMetaImage(path);
  else if (format === 'nrrd') checkNrrd(path);
  else if (isDicomFile(path)) readDicomSlice(path);
  const io = await import('@itk-wasm/image-io');
  const reader =
    format === 'metaimage'
      ? io.metaReadImageNode
      : format === 'nrrd'
        ? io.nrrdReadImageNode
        : io.gdcmReadImageNode;
  // itk-wasm mounts the file's folder into its own file system assuming an absolute path: a relative
  // one ('img.mha', 'series/x.dcm') is looked for in the wrong folder.
  const result = await captureItk(path, FORMAT_NAMES[format], () => reader(resolve(path)));
  if (!result.couldRead || !result.image) fail(path, `not a readable ${FORMAT_NAMES[format]} file`);
  return result.image as ItkImage;
}

/** True when the file carries the "DICM" marker after the 128-byte preamble (Part 10 files). */
function isDicomFile(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const marker = Buffer.alloc(4);
    return readSync(fd, marker, 0, 4, 128) === 4 && marker.toString('latin1') === 'DICM';
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads the DICOM series in a directory (non-recursive; files without the Part 10 "DICM" marker are
 * skipped). Slices are sorted by ITK/GDCM along the slice normal. A directory holding more than one
 * series is rejected (GDCM would silently read one of them).
 */
async function readDicomSeries(dir: string): Promise<ItkImage> {
  const files = readdirSync(dir)
    .filter((name) => !name.startsWith('.'))
    .map((name) => join(resolve(dir), name))
    .filter((p) => statSync(p).isFile() && isDicomFile(p));
  if (files.length === 0)
    fail(dir, 'no DICOM files in this directory (none has the "DICM" marker at byte 128)');
  const slices = files.map(readDicomSlice);
  const { readImageDicomFileSeriesNode } = await import('@itk-wasm/dicom');
  const { outputImage, sortedFilenames } = await captureItk(dir, 'DICOM series', () =>
    readImageDicomFileSeriesNode({ inputImages: files }),
  );
  // GDCM silently keeps one series when there are several: refuse instead of dropping slices.
  const used = Array.isArray(sortedFilenames) ? sortedFilenames.length : files.length;
  if (used !== files.length) {
    fail(
      dir,
      `holds ${files.length} DICOM files but one series uses only ${used}; keep one series per directory`,
    );
  }
  checkSliceSpacing(dir, slices);
  return outputImage as ItkImage;
}

/** The header fields each format keeps its geometry in, for messages about what ITK returned. */
const GEOMETRY_FIELDS: Record<ItkFormat, Record<'spacing' | 'origin' | 'direction', string>> = {
  metaimage: { spacing: 'ElementSpacing', origin: 'Offset', direction: 'TransformMatrix' },
  nrrd: { spacing: 'space directions', origin: 'space origin', direction: 'space directions' },
  dicom: {
    spacing: 'PixelSpacing / slice positions',
    origin: 'ImagePositionPatient',
    direction: 'ImageOrientationPatient',
  },
};

function toVolume(path: string, format: ItkFormat, image: ItkImage, options: ItkReadOptions): Volume {
  const { dimension, componentType, pixelType, components } = image.imageType;
  const data = image.data;
  if (!data) fail(path, 'image has no pixel data');
  if (/64$/.test(componentType) && !/float/.test(componentType)) {
    fail(path, `unsupported voxel type ${componentType} (64-bit integers)`);
  }
  if (['RGB', 'RGBA', 'Complex'].includes(pixelType)) fail(path, `unsupported ${pixelType} pixels`);
  if (dimension < 2 || dimension > 4) fail(path, `unsupported ${dimension}D image (expected 2D, 3D or 4D)`);
  const at = (a: ArrayLike<number>, i: number, fallback: number) => (i < dimension ? a[i] : fallback);
  const dims: Vec3 = [0, 1, 2].map((i) => at(image.size, i, 1)) as Vec3;
  const frames = at(image.size, 3, 1);
  let frame = 0;
  if (frames > 1) {
    if (options.frame === undefined)
      fail(
        path,
        `4D image with ${frames} time frames; choose one (0..${frames - 1}) or save one time point as a 3D image`,
      );
    frame = integer('frame', options.frame, { min: 0, max: frames - 1 });
  }
  const direction = [1, 0, 0, 0, 1, 0, 0, 0, 1] as Mat3;
  for (let r = 0; r < Math.min(dimension, 3); r++) {
    for (let c = 0; c < Math.min(dimension, 3); c++)
      direction[r * 3 + c] = image.direction[r * dimension + c];
  }
  const values = data as VoxelArray;
  const n = dims[0] * dims[1] * dims[2];
  let planar: VoxelArray;
  if (components === 1) {
    planar = frames > 1 ? values.slice(frame * n, (frame + 1) * n) : values;
  } else {
    planar = new (values.constructor as new (length: number) => VoxelArray)(n * components);
    const base = frame * n * components;
    for (let c = 0; c < components; c++) {
      const offset = c * n;
      for (let v = 0, src = base + c; v < n; v++, src += components) planar[offset + v] = values[src];
    }
  }
  const spacing = [0, 1, 2].map((i) => at(image.spacing, i, 1)) as Vec3;
  const origin = [0, 1, 2].map((i) => at(image.origin, i, 0)) as Vec3;
  const names = GEOMETRY_FIELDS[format];
  if (!spacing.every((s) => Number.isFinite(s) && s > 0))
    fail(path, `${names.spacing}: voxel spacing ${spacing.join(' ')} is not positive and finite`);
  if (!origin.every(Number.isFinite)) fail(path, `${names.origin}: origin ${origin.join(' ')} is not finite`);
  if (!direction.every(Number.isFinite) || isSingular(direction, 3))
    fail(path, `${names.direction}: direction matrix ${direction.join(' ')} is not finite and non-singular`);
  checkFinite(path, planar, options.allowNonFinite);
  return new Volume({ data: planar, dims, components, spacing, origin, direction });
}

/** Reads a MetaImage, NRRD or DICOM file, or a DICOM series directory, as an LPS Volume. */
export async function readItkImage(
  path: string,
  format: ItkFormat,
  options: ItkReadOptions = {},
): Promise<Volume> {
  if (!existsSync(path)) fail(path, 'file not found');
  const isDirectory = statSync(path).isDirectory();
  if (isDirectory && format !== 'dicom')
    fail(path, `is a directory, expected a ${FORMAT_NAMES[format]} file`);
  const image = isDirectory ? await readDicomSeries(path) : await readWithItk(path, format);
  return toVolume(path, format, image, options);
}

/**
 * NIfTI-1 and NIfTI-2 reader and writer (`.nii`, `.nii.gz`, and `.hdr`/`.img` pairs for reading).
 *
 * Written by hand rather than through ITK so that the geometry decisions on messy real headers are ours
 * and documented here (ITK's NIfTI reader changed behaviour across versions and prints warnings instead).
 *
 * World coordinates: NIfTI is RAS+; the Volume is LPS. At this boundary the first two rows of the
 * affine (direction rows and origin x, y) are negated, in both directions.
 *
 * Which transform is used (reading), in this order:
 *  1. sform, when sform_code > 0 and the matrix is finite and non-singular ("Method 3" of nifti1.h).
 *     Spacing = column norms, direction = normalised columns, origin = 4th column. If a column norm
 *     disagrees with pixdim[1..3] by more than 1e-4 (relative), the sform was written without the
 *     voxel size (ACDC files carry diag(-1,-1,1) with pixdim 1.5625/1.5625/10): spacing then comes from
 *     pixdim and only the normalised direction from the sform.
 *  2. qform, when qform_code > 0 ("Method 2"): rotation from the quaternion (b, c, d; a derived),
 *     qfac = pixdim[0] (−1 flips the third axis; 0 is read as 1), spacing = |pixdim[1..3]|, origin = qoffset.
 *     An unusable sform (non-finite or singular) falls back to the qform when there is one.
 *  3. otherwise "Method 1" (ANALYZE 7.5 style): RAS = diag(pixdim)·index, origin 0. This is the
 *     standard's formula and ITK's; nibabel instead centres the volume and flips x for such files.
 * Geometry that cannot place the image is refused, naming the field: a non-finite or singular sform
 * without a qform, a non-finite quaternion or qoffset, a voxel size (pixdim) of an axis the image has
 * that is 0 or not finite (nifti1_io reads it as 1 mm: a silently wrong grid).
 * nifti1.h leaves the choice between sform and qform to the reader when both are set; sform first is
 * nibabel's order (`get_best_affine`) and it is the transform that tools write with full generality.
 *
 * Data: uint8/int8/int16/uint16/int32/uint32/float32/float64 are kept in their stored type. When
 * scl_slope is finite, non-zero and (slope, inter) ≠ (1, 0), values are scaled to float32 (float64 when
 * stored as float64). Big-endian files are byte-swapped. dim[5] > 1 (vector images, intent 1007)
 * become multi-component Volumes (planar, which is also the file's layout). A 4D image (dim[4] > 1) is
 * rejected unless `frame` picks one time point: silently taking frame 0 of a cine series would
 * hide a mistake.
 */
import { existsSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { Volume, type Mat3, type Vec3, type VoxelArray } from '../geometry/volume.ts';
import { fail } from '../util/errors.ts';
import { integer, invalid } from '../util/is.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import {
  HOST_LITTLE,
  checkFinite,
  gunzipBounded,
  gunzipHead,
  isSingular,
  readInputFile,
  swapBytes,
} from './files.ts';

export interface NiftiReadOptions {
  /** Accept NaN/Inf voxel values (rejected by default). */
  allowNonFinite?: boolean;
  /** Time point to read from a 4D image (required when dim[4] > 1). */
  frame?: number;
}

export interface NiftiWriteOptions {
  /** Header version: 1 (default, float32 geometry) or 2 (float64 geometry, 64-bit dims). */
  version?: 1 | 2;
  /** gzip level 1–9 for `.nii.gz` (default 6). */
  compressionLevel?: number;
}

type ArrayConstructor =
  | Uint8ArrayConstructor
  | Int8ArrayConstructor
  | Int16ArrayConstructor
  | Uint16ArrayConstructor
  | Int32ArrayConstructor
  | Uint32ArrayConstructor
  | Float32ArrayConstructor
  | Float64ArrayConstructor;

const DATATYPES = new Map<number, ArrayConstructor>([
  [2, Uint8Array],
  [4, Int16Array],
  [8, Int32Array],
  [16, Float32Array],
  [64, Float64Array],
  [256, Int8Array],
  [512, Uint16Array],
  [768, Uint32Array],
]);

const UNSUPPORTED_DATATYPES: Record<number, string> = {
  1: 'binary (1 bit)',
  32: 'complex64',
  128: 'RGB24',
  1024: 'int64',
  1280: 'uint64',
  1536: 'float128',
  1792: 'complex128',
  2048: 'complex256',
  2304: 'RGBA32',
};

const INTENT_DISPVECT = 1006;
const INTENT_VECTOR = 1007;

/** Byte offset and stored type of one header field (arrays: offset of element 0). */
type Field = readonly [offset: number, type: 'u8' | 'i16' | 'i32' | 'i64' | 'f32' | 'f64'];

interface Layout {
  size: number;
  magic: readonly [offset: number, text: string];
  descrip: number;
  dim: Field;
  intentCode: Field;
  datatype: Field;
  bitpix: Field;
  pixdim: Field;
  voxOffset: Field;
  sclSlope: Field;
  sclInter: Field;
  xyztUnits: Field;
  qformCode: Field;
  sformCode: Field;
  quatern: Field;
  qoffset: Field;
  srow: Field;
}

/** Field positions of nifti1.h and nifti2.h: the same fields, other offsets and widths. */
const LAYOUTS: Record<1 | 2, Layout> = {
  1: {
    size: 348,
    magic: [344, 'n+1\0'],
    descrip: 148,
    dim: [40, 'i16'],
    intentCode: [68, 'i16'],
    datatype: [70, 'i16'],
    bitpix: [72, 'i16'],
    pixdim: [76, 'f32'],
    voxOffset: [108, 'f32'],
    sclSlope: [112, 'f32'],
    sclInter: [116, 'f32'],
    xyztUnits: [123, 'u8'],
    qformCode: [252, 'i16'],
    sformCode: [254, 'i16'],
    quatern: [256, 'f32'],
    qoffset: [268, 'f32'],
    srow: [280, 'f32'],
  },
  2: {
    size: 540,
    magic: [4, 'n+2\0\r\n\x1a\n'],
    descrip: 240,
    dim: [16, 'i64'],
    intentCode: [504, 'i32'],
    datatype: [12, 'i16'],
    bitpix: [14, 'i16'],
    pixdim: [104, 'f64'],
    voxOffset: [168, 'i64'],
    sclSlope: [176, 'f64'],
    sclInter: [184, 'f64'],
    xyztUnits: [500, 'i32'],
    qformCode: [344, 'i32'],
    sformCode: [348, 'i32'],
    quatern: [352, 'f64'],
    qoffset: [376, 'f64'],
    srow: [400, 'f64'],
  },
};

const WIDTH = { u8: 1, i16: 2, i32: 4, i64: 8, f32: 4, f64: 8 } as const;

/** Typed access to header fields in one byte order. */
class HeaderView {
  private readonly view: DataView;
  constructor(
    bytes: Uint8Array,
    private readonly little: boolean,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get([offset, type]: Field, index = 0): number {
    const at = offset + index * WIDTH[type];
    const v = this.view;
    if (type === 'u8') return v.getUint8(at);
    if (type === 'i16') return v.getInt16(at, this.little);
    if (type === 'i32') return v.getInt32(at, this.little);
    if (type === 'i64') return Number(v.getBigInt64(at, this.little));
    return type === 'f32' ? v.getFloat32(at, this.little) : v.getFloat64(at, this.little);
  }
  getAll(field: Field, count: number): number[] {
    return Array.from({ length: count }, (_, i) => this.get(field, i));
  }
  set([offset, type]: Field, values: number | readonly number[]): void {
    [values].flat().forEach((value, index) => {
      const at = offset + index * WIDTH[type];
      const v = this.view;
      if (type === 'u8') v.setUint8(at, value);
      else if (type === 'i16') v.setInt16(at, value, this.little);
      else if (type === 'i32') v.setInt32(at, value, this.little);
      else if (type === 'i64') v.setBigInt64(at, BigInt(value), this.little);
      else if (type === 'f32') v.setFloat32(at, value, this.little);
      else v.setFloat64(at, value, this.little);
    });
  }
}

interface NiftiHeader {
  version: 1 | 2;
  little: boolean;
  dim: number[];
  pixdim: number[];
  datatype: number;
  voxOffset: number;
  sclSlope: number;
  sclInter: number;
  qformCode: number;
  sformCode: number;
  quatern: Vec3;
  qoffset: Vec3;
  srow: number[];
  intentCode: number;
}

function parseHeader(path: string, bytes: Uint8Array, pair: boolean): NiftiHeader {
  if (bytes.length < 348) fail(path, `not a NIfTI file (only ${bytes.length} bytes, a header needs 348)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = view.getInt32(0, true);
  const be = view.getInt32(0, false);
  const version = le === 348 || be === 348 ? 1 : le === 540 || be === 540 ? 2 : 0;
  if (version === 0) fail(path, `not a NIfTI file (sizeof_hdr is ${le}, expected 348 or 540)`);
  if (version === 2 && bytes.length < 540)
    fail(path, `truncated NIfTI-2 header (${bytes.length} of 540 bytes)`);
  const little = le === 348 || le === 540;
  const layout = LAYOUTS[version];
  const header = new HeaderView(bytes, little);
  const magic = String.fromCharCode(...bytes.subarray(layout.magic[0], layout.magic[0] + 3));
  // "n+1"/"n+2" single file, "ni1"/"ni2" header of a pair. NIfTI-1 without magic is ANALYZE 7.5,
  // whose bytes at the transform and scaling offsets mean other things: those are ignored. ANALYZE
  // exists only as .hdr/.img pairs; a single file without the magic is a damaged NIfTI file, and
  // reading it as ANALYZE would silently drop its geometry.
  const nifti = magic === `n+${version}` || magic === `ni${version}`;
  if (!nifti && (version === 2 || !pair)) {
    const expected = version === 2 ? '"n+2" or "ni2"' : '"n+1" (or a .hdr/.img pair)';
    fail(path, `bad NIfTI-${version} magic ${JSON.stringify(magic)} (expected ${expected})`);
  }
  const field = (f: Field) => (nifti ? header.get(f) : 0);
  return {
    version,
    little,
    dim: header.getAll(layout.dim, 8),
    pixdim: header.getAll(layout.pixdim, 8),
    datatype: header.get(layout.datatype),
    voxOffset: header.get(layout.voxOffset),
    sclSlope: field(layout.sclSlope),
    sclInter: field(layout.sclInter),
    qformCode: field(layout.qformCode),
    sformCode: field(layout.sformCode),
    quatern: header.getAll(layout.quatern, 3) as Vec3,
    qoffset: header.getAll(layout.qoffset, 3) as Vec3,
    srow: header.getAll(layout.srow, 12),
    intentCode: field(layout.intentCode),
  };
}

interface Geometry {
  spacing: Vec3;
  origin: Vec3;
  direction: Mat3;
}

const det3 = (m: Mat3) =>
  m[0] * (m[4] * m[8] - m[5] * m[7]) -
  m[1] * (m[3] * m[8] - m[5] * m[6]) +
  m[2] * (m[3] * m[7] - m[4] * m[6]);

/** RAS geometry (direction columns in RAS) → LPS by negating the x and y rows. */
function toLps(direction: Mat3, origin: Vec3, spacing: Vec3): Geometry {
  // `+ 0` turns −0 into 0 so that geometry compares equal to hand-written values.
  const d = direction.map((v, i) => (i < 6 ? -v : v) + 0) as Mat3;
  return { spacing, origin: [-origin[0] + 0, -origin[1] + 0, origin[2] + 0], direction: d };
}

/** Fails naming the first non-finite value of a header field (`names` label its elements). */
function requireFinite(path: string, values: readonly number[], names: readonly string[]): void {
  const bad = values.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) fail(path, `${names[bad]} is not finite (${values[bad]})`);
}

const SROW_NAMES = ['x', 'y', 'z'].flatMap((r) => [0, 1, 2, 3].map((c) => `srow_${r}[${c}]`));

/** The sform geometry, or the reason it cannot be used (non-finite or singular matrix). */
function sformGeometry(h: NiftiHeader, spacingOf: (axis: number) => number | undefined): Geometry | string {
  const s = h.srow;
  const bad = s.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) return `${SROW_NAMES[bad]} is not finite (${s[bad]})`;
  const m: Mat3 = [s[0], s[1], s[2], s[4], s[5], s[6], s[8], s[9], s[10]];
  if (isSingular(m, 3)) return 'the sform matrix (srow_x/y/z) is singular';
  const norms = [0, 1, 2].map((c) => Math.hypot(m[c], m[3 + c], m[6 + c]));
  const spacing = [0, 0, 0] as Vec3;
  const direction = [...m] as Mat3;
  for (let c = 0; c < 3; c++) {
    const norm = norms[c];
    for (let r = 0; r < 3; r++) direction[r * 3 + c] = m[r * 3 + c] / norm;
    const p = spacingOf(c);
    spacing[c] = p !== undefined && Math.abs(norm - p) > 1e-4 * Math.max(norm, p) ? p : norm;
  }
  return toLps(direction, [s[3], s[7], s[11]], spacing);
}

function qformGeometry(path: string, h: NiftiHeader, spacing: Vec3): Geometry {
  requireFinite(path, h.quatern, ['quatern_b', 'quatern_c', 'quatern_d']);
  requireFinite(path, h.qoffset, ['qoffset_x', 'qoffset_y', 'qoffset_z']);
  let [b, c, d] = h.quatern;
  let a = 1 - (b * b + c * c + d * d);
  if (a < 1e-7) {
    // (b, c, d) is a unit vector already: a 180° rotation. Renormalise as nifti1_io does.
    const n = 1 / Math.sqrt(b * b + c * c + d * d);
    b *= n;
    c *= n;
    d *= n;
    a = 0;
  } else {
    a = Math.sqrt(a);
  }
  const qfac = h.pixdim[0] < 0 ? -1 : 1;
  const r: Mat3 = [
    a * a + b * b - c * c - d * d, 2 * (b * c - a * d), qfac * 2 * (b * d + a * c),
    2 * (b * c + a * d), a * a + c * c - b * b - d * d, qfac * 2 * (c * d - a * b),
    2 * (b * d - a * c), 2 * (c * d + a * b), qfac * (a * a + d * d - c * c - b * b),
  ]; // prettier-ignore
  return toLps(r, h.qoffset, spacing);
}

/**
 * The voxel size of axis 0..2 from pixdim[1..3] (sign ignored). Axes the image has must have a finite,
 * non-zero size; axes beyond its rank (a 2-D image's third) are 1 mm when unset. With `lenient` an
 * unusable value gives undefined instead of an error (the sform carries the size then).
 */
function pixdimSpacing(path: string, h: NiftiHeader, axis: number, lenient = false): number | undefined {
  const p = Math.abs(h.pixdim[axis + 1]);
  if (Number.isFinite(p) && p > 0) return p;
  if (lenient) return undefined;
  if (axis + 1 > h.dim[0]) return 1;
  fail(path, `pixdim[${axis + 1}] (voxel size) is ${h.pixdim[axis + 1]}, expected a positive number`);
}

function niftiGeometry(path: string, h: NiftiHeader): Geometry {
  if (h.sformCode > 0) {
    const g = sformGeometry(h, (axis) => pixdimSpacing(path, h, axis, true));
    if (typeof g !== 'string') return g;
    // nifti1.h lets the qform stand in for an unusable sform; without one there is no geometry.
    if (h.qformCode <= 0) fail(path, `${g} and there is no qform`);
  }
  const spacing = [0, 1, 2].map((axis) => pixdimSpacing(path, h, axis)) as Vec3;
  if (h.qformCode > 0) return qformGeometry(path, h, spacing);
  return toLps([1, 0, 0, 0, 1, 0, 0, 0, 1], [0, 0, 0], spacing);
}

function dimensions(path: string, h: NiftiHeader): { dims: Vec3; frames: number; components: number } {
  const rank = h.dim[0];
  if (!Number.isInteger(rank) || rank < 1 || rank > 7) fail(path, `invalid dim[0] = ${rank} (expected 1..7)`);
  const size = (i: number) => (i <= rank ? h.dim[i] : 1);
  for (let i = 1; i <= rank; i++) {
    if (!Number.isSafeInteger(h.dim[i]) || h.dim[i] < 1) fail(path, `invalid dim[${i}] = ${h.dim[i]}`);
  }
  if (size(6) > 1 || size(7) > 1) fail(path, `${rank}D images with dim[6] or dim[7] > 1 are not supported`);
  return { dims: [size(1), size(2), size(3)], frames: size(4), components: size(5) };
}

/** What a header says about its voxel data: where it starts, how many bytes, in which type. */
interface DataLayout {
  h: NiftiHeader;
  Type: ArrayConstructor;
  dims: Vec3;
  frames: number;
  components: number;
  start: number;
  needed: number;
}

/** Parses and checks a header (`pair`: it is the `.hdr` of a `.hdr`/`.img` pair). */
function dataLayout(path: string, header: Uint8Array, pair: boolean): DataLayout {
  const h = parseHeader(path, header, pair);
  const Type = DATATYPES.get(h.datatype);
  if (!Type) {
    const name = UNSUPPORTED_DATATYPES[h.datatype] ?? `code ${h.datatype}`;
    fail(
      path,
      `unsupported NIfTI datatype ${name} (supported: uint8, int8, int16, uint16, int32, uint32, float32, float64)`,
    );
  }
  const { dims, frames, components } = dimensions(path, h);
  const start = h.voxOffset;
  const headerBytes = pair ? 0 : LAYOUTS[h.version].size; // a single file's data cannot start inside its header
  if (!Number.isSafeInteger(start) || start < headerBytes) fail(path, `invalid vox_offset ${start}`);
  const needed = dims[0] * dims[1] * dims[2] * frames * components * Type.BYTES_PER_ELEMENT;
  return { h, Type, dims, frames, components, start, needed };
}

/** Decodes the voxel bytes `data` (the whole file for single-file `.nii`) described by `layout`. */
function decode(path: string, layout: DataLayout, data: Uint8Array, options: NiftiReadOptions): Volume {
  const { h, Type, dims, frames, components, start, needed } = layout;
  let frame = 0;
  if (frames > 1) {
    if (options.frame === undefined) {
      fail(
        path,
        `4D image with ${frames} time frames; choose one (0..${frames - 1}) or save one time point as a 3D image`,
      );
    }
    frame = integer('frame', options.frame, { min: 0, max: frames - 1 });
  }
  if (data.length < start + needed) {
    fail(
      path,
      `truncated: voxel data needs ${needed} bytes from offset ${start}, file has ${Math.max(0, data.length - start)}`,
    );
  }
  const geometry = niftiGeometry(path, h);
  const n = dims[0] * dims[1] * dims[2];
  const size = Type.BYTES_PER_ELEMENT;
  // Component c of the selected frame is the contiguous block (frame + frames·c) of n voxels.
  const out = new Uint8Array(n * components * size);
  for (let c = 0; c < components; c++) {
    const from = start + (frame + frames * c) * n * size;
    out.set(data.subarray(from, from + n * size), c * n * size);
  }
  if (h.little !== HOST_LITTLE) swapBytes(out, size);
  let values: VoxelArray = new Type(out.buffer);

  const slope = h.sclSlope;
  if (Number.isFinite(slope) && slope !== 0 && !(slope === 1 && h.sclInter === 0)) {
    const inter = Number.isFinite(h.sclInter) ? h.sclInter : 0;
    const scaled =
      values instanceof Float64Array ? new Float64Array(values.length) : new Float32Array(values.length);
    for (let i = 0; i < values.length; i++) scaled[i] = values[i] * slope + inter;
    values = scaled;
  }
  if (h.intentCode === INTENT_DISPVECT && components === 3) values = rasToLpsVectors(values, n);
  checkFinite(path, values, options.allowNonFinite);
  return new Volume({ data: values, dims, components, ...geometry });
}

/** Negates the x and y components of a planar 3-vector field (RAS ↔ LPS). */
function rasToLpsVectors(values: VoxelArray, n: number): VoxelArray {
  const signed =
    values instanceof Uint8Array || values instanceof Uint16Array || values instanceof Uint32Array
      ? Float32Array.from(values)
      : values;
  for (let i = 0; i < 2 * n; i++) signed[i] = -signed[i];
  return signed;
}

/** The data file of a `.hdr` header (`.img` or `.img.gz` next to it). */
function pairedImage(path: string): string {
  const base = path.replace(/\.hdr$/i, '');
  for (const ext of ['.img', '.img.gz']) if (existsSync(base + ext)) return base + ext;
  fail(path, `header without its data file (${base}.img not found)`);
}

/**
 * Reads a NIfTI-1/2 file (`.nii`, `.nii.gz`) or an ANALYZE/NIfTI pair (`.hdr` with `.img`). gzip data
 * is decompressed header first, then at most the bytes that header describes.
 */
export function readNifti(path: string, options: NiftiReadOptions = {}): Volume {
  const pair = /\.(hdr|img|img\.gz)$/i.test(path);
  const headerPath = !pair || /\.hdr$/i.test(path) ? path : path.replace(/\.img(\.gz)?$/i, '.hdr');
  const imagePath = pair && /\.hdr$/i.test(path) ? pairedImage(path) : path;
  const headerFile = readInputFile(headerPath);
  const layout = dataLayout(imagePath, gunzipHead(headerPath, headerFile, LAYOUTS[2].size), pair);
  const imageFile = pair ? readInputFile(imagePath) : headerFile;
  const data = gunzipBounded(imagePath, imageFile, layout.start + layout.needed);
  return decode(imagePath, layout, data, options);
}

function datatypeOf(data: VoxelArray): number {
  for (const [code, Type] of DATATYPES) if (data instanceof Type) return code;
  throw new Error('nifti: unknown voxel array type');
}

/**
 * Unit quaternion (b, c, d) of a proper rotation, with a ≥ 0 as NIfTI requires (Shepperd's method:
 * take the largest of the four diagonal combinations for accuracy).
 */
function rotationToQuaternion(r: Mat3): Vec3 {
  const [r11, r12, r13, r21, r22, r23, r31, r32, r33] = r;
  const trace = r11 + r22 + r33;
  let q: [number, number, number, number];
  if (trace >= Math.max(r11, r22, r33)) {
    const a = 0.5 * Math.sqrt(Math.max(0, 1 + trace));
    q = [a, (r32 - r23) / (4 * a), (r13 - r31) / (4 * a), (r21 - r12) / (4 * a)];
  } else if (r11 >= r22 && r11 >= r33) {
    const b = 0.5 * Math.sqrt(Math.max(0, 1 + r11 - r22 - r33));
    q = [(r32 - r23) / (4 * b), b, (r12 + r21) / (4 * b), (r13 + r31) / (4 * b)];
  } else if (r22 >= r33) {
    const c = 0.5 * Math.sqrt(Math.max(0, 1 - r11 + r22 - r33));
    q = [(r13 - r31) / (4 * c), (r12 + r21) / (4 * c), c, (r23 + r32) / (4 * c)];
  } else {
    const d = 0.5 * Math.sqrt(Math.max(0, 1 - r11 - r22 + r33));
    q = [(r21 - r12) / (4 * d), (r13 + r31) / (4 * d), (r23 + r32) / (4 * d), d];
  }
  const sign = q[0] < 0 ? -1 : 1;
  return [sign * q[1], sign * q[2], sign * q[3]];
}

/**
 * Encodes a Volume as NIfTI bytes (uncompressed). sform and qform are both written with code 1
 * (scanner) from the Volume's geometry: the sform is direction·diag(spacing) and origin converted to
 * RAS (exact up to the header's float precision); the qform carries the same rotation as a quaternion
 * with qfac = −1 when the direction is a reflection. xyzt_units = mm.
 *
 * Multi-component Volumes (displacement fields) are written ITK-style: dim = [5, nx, ny, nz, 1, c],
 * intent_code 1007 (NIFTI_INTENT_VECTOR), planar components as in memory. The vector components are
 * LPS, NOT converted to RAS: ITK's NiftiImageIO reads and writes intent-1007 vectors without
 * reorientation, so this is what ANTs, SimpleITK and elastix produce and expect. Since ITK 5.4
 * (PR #3884) only intent 1006 (DISPVECT) files are taken as RAS vectors; this reader follows that
 * rule too (1006 → negate x and y on reading; 1007 → keep).
 */
export function encodeNifti(volume: Volume, options: NiftiWriteOptions = {}, subject = 'volume'): Buffer {
  const version = options.version ?? 1;
  if (version !== 1 && version !== 2) throw invalid('version', '1 or 2', version);
  const { dims, spacing, origin, components } = volume;
  if (version === 1 && Math.max(...dims, components) > 32767) {
    fail(
      subject,
      `size ${Math.max(...dims, components)} exceeds NIfTI-1's limit of 32767; write NIfTI-2 (version 2)`,
    );
  }
  const layout = LAYOUTS[version];
  const voxOffset = layout.size + 4; // 4 zero bytes: "no extensions"
  const dataBytes = volume.data.byteLength;
  const out = Buffer.alloc(voxOffset + dataBytes);
  const header = new HeaderView(out, true);

  const rasDirection = volume.direction.map((v, i) => (i < 6 ? -v : v) + 0) as Mat3; // + 0: no −0 in the file
  const rasOrigin: Vec3 = [-origin[0] + 0, -origin[1] + 0, origin[2]];
  const qfac = det3(rasDirection) < 0 ? -1 : 1;
  const rotation = rasDirection.map((v, i) => (i % 3 === 2 ? v * qfac : v)) as Mat3;
  const srow: number[] = [];
  for (let r = 0; r < 3; r++) {
    srow.push(...[0, 1, 2].map((c) => rasDirection[r * 3 + c] * spacing[c]), rasOrigin[r]);
  }
  out.writeInt32LE(layout.size, 0);
  out.write(layout.magic[1], layout.magic[0], 'latin1');
  out.write('diffreg', layout.descrip, 'latin1');
  if (version === 1) out[38] = 0x72; // regular = 'r', expected by ANALYZE-era readers
  header.set(layout.dim, components > 1 ? [5, ...dims, 1, components, 1, 1] : [3, ...dims, 1, 1, 1, 1]);
  header.set(layout.intentCode, components > 1 ? INTENT_VECTOR : 0);
  header.set(layout.datatype, datatypeOf(volume.data));
  header.set(layout.bitpix, volume.data.BYTES_PER_ELEMENT * 8);
  header.set(layout.pixdim, [qfac, ...spacing, 1, 1, 1, 1]);
  header.set(layout.voxOffset, voxOffset);
  header.set(layout.sclSlope, 1);
  header.set(layout.xyztUnits, 2); // NIFTI_UNITS_MM
  header.set(layout.qformCode, 1);
  header.set(layout.sformCode, 1);
  header.set(layout.quatern, rotationToQuaternion(rotation));
  header.set(layout.qoffset, rasOrigin);
  header.set(layout.srow, srow);
  const data = new Uint8Array(volume.data.buffer, volume.data.byteOffset, dataBytes);
  out.set(data, voxOffset);
  if (!HOST_LITTLE) swapBytes(out.subarray(voxOffset), volume.data.BYTES_PER_ELEMENT);
  return out;
}

/** Writes a Volume as NIfTI (gzip when the path ends in `.gz`), atomically. */
export function writeNifti(path: string, volume: Volume, options: NiftiWriteOptions = {}): void {
  const bytes = encodeNifti(volume, options, path);
  if (!/\.gz$/i.test(path)) return writeFileAtomic(path, bytes);
  const level =
    options.compressionLevel === undefined
      ? 6
      : integer('compressionLevel', options.compressionLevel, { min: 1, max: 9 });
  writeFileAtomic(path, gzipSync(bytes, { level }));
}

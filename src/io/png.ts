/**
 * PNG images as 2-D volumes (dims [width, height, 1]: column x along voxel axis 0, row y along axis 1,
 * 1 mm pixels, identity direction, origin 0), for the 2-D methods (LDM-Morph).
 *
 * Read: 8- and 16-bit grey, grey + alpha, RGB and RGBA, every filter type; colour becomes its luma
 * (ITU-R BT.601: 0.299 R + 0.587 G + 0.114 B, as most image libraries convert to grey) and alpha is
 * dropped (medical PNGs are opaque; compositing onto a background would invent intensities).
 * Interlaced (Adam7), palette and 1/2/4-bit images are refused with one line. Chunk CRCs are checked,
 * and the image data are inflated no further than the header's size.
 * Write: one slice of values 0–255 as 8-bit grey (util/png.ts's encoder).
 */
import { crc32 } from 'node:zlib';
import { Volume } from '../geometry/volume.ts';
import { fail } from '../util/errors.ts';
import { encodePng } from '../util/png.ts';
import { inflateBounded, readInputFile } from './files.ts';
import { writeFileAtomic } from '../util/atomic.ts';

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Samples per pixel of each colour type this reader takes (0 grey, 2 RGB, 4 grey + alpha, 6 RGBA). */
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 4: 2, 6: 4 };

const COLOUR_NAMES: Record<number, string> = { 3: 'palette (indexed colour)' };

interface Header {
  width: number;
  height: number;
  bitDepth: number;
  colourType: number;
}

/** The chunks of a PNG file in order, CRC-checked. */
function chunks(path: string, bytes: Buffer): { type: string; data: Buffer }[] {
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b))
    fail(path, 'not a PNG file (bad signature)');
  const out: { type: string; data: Buffer }[] = [];
  let at = 8;
  while (at < bytes.length) {
    if (at + 12 > bytes.length) fail(path, `truncated PNG chunk at byte ${at}`);
    const length = bytes.readUInt32BE(at);
    const type = bytes.toString('latin1', at + 4, at + 8);
    if (at + 12 + length > bytes.length) fail(path, `PNG chunk ${type} is truncated`);
    const crc = bytes.readUInt32BE(at + 8 + length);
    if (crc32(bytes.subarray(at + 4, at + 8 + length)) >>> 0 !== crc)
      fail(path, `PNG chunk ${type} is corrupt (CRC mismatch)`);
    out.push({ type, data: bytes.subarray(at + 8, at + 8 + length) });
    at += 12 + length;
    if (type === 'IEND') break;
  }
  return out;
}

function header(path: string, data: Buffer | undefined): Header {
  if (!data || data.length !== 13) fail(path, 'PNG without a valid IHDR chunk');
  const h = {
    width: data.readUInt32BE(0),
    height: data.readUInt32BE(4),
    bitDepth: data[8],
    colourType: data[9],
  };
  if (h.width === 0 || h.height === 0) fail(path, `PNG of ${h.width}x${h.height} pixels`);
  if (data[10] !== 0 || data[11] !== 0) fail(path, 'unknown PNG compression or filter method');
  if (data[12] !== 0) fail(path, 'interlaced (Adam7) PNG is not supported; save it without interlacing');
  if (!(h.colourType in CHANNELS))
    fail(
      path,
      `PNG colour type ${COLOUR_NAMES[h.colourType] ?? h.colourType} is not supported (grey, grey + alpha, RGB or RGBA)`,
    );
  if (h.bitDepth !== 8 && h.bitDepth !== 16)
    fail(path, `PNG bit depth ${h.bitDepth} is not supported (8 or 16)`);
  return h;
}

/** The Paeth predictor of the PNG specification: whichever of left, up, upper-left is nearest to left + up − upper-left. */
function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Undoes the per-row filters in place; returns the rows without their filter bytes. */
function unfilter(path: string, raw: Buffer, h: Header): Uint8Array {
  const bpp = (CHANNELS[h.colourType] * h.bitDepth) / 8;
  const stride = h.width * bpp;
  const out = new Uint8Array(stride * h.height);
  for (let y = 0; y < h.height; y++) {
    const filter = raw[y * (stride + 1)];
    const row = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const at = y * stride;
    for (let x = 0; x < stride; x++) {
      const left = x >= bpp ? out[at + x - bpp] : 0;
      const up = y > 0 ? out[at - stride + x] : 0;
      const upLeft = y > 0 && x >= bpp ? out[at - stride + x - bpp] : 0;
      let predicted: number;
      if (filter === 0) predicted = 0;
      else if (filter === 1) predicted = left;
      else if (filter === 2) predicted = up;
      else if (filter === 3) predicted = (left + up) >> 1;
      else if (filter === 4) predicted = paeth(left, up, upLeft);
      else fail(path, `row ${y} has unknown PNG filter type ${filter}`);
      out[at + x] = (row[x] + predicted) & 0xff;
    }
  }
  return out;
}

/** Pixel values (grey or luma) of the unfiltered rows, row by row. */
function pixels(samples: Uint8Array, h: Header): Uint8Array | Uint16Array | Float32Array {
  const channels = CHANNELS[h.colourType];
  const n = h.width * h.height;
  const sample =
    h.bitDepth === 8 ? (i: number) => samples[i] : (i: number) => (samples[2 * i] << 8) | samples[2 * i + 1];
  if (channels <= 2) {
    const grey = h.bitDepth === 8 ? new Uint8Array(n) : new Uint16Array(n);
    for (let p = 0; p < n; p++) grey[p] = sample(p * channels);
    return grey;
  }
  const luma = new Float32Array(n);
  for (let p = 0; p < n; p++) {
    const s = p * channels;
    luma[p] = 0.299 * sample(s) + 0.587 * sample(s + 1) + 0.114 * sample(s + 2);
  }
  return luma;
}

/** Reads a PNG file as a one-slice volume (see the module comment). */
export function readPng(path: string): Volume {
  const all = chunks(path, readInputFile(path));
  const h = header(path, all[0]?.type === 'IHDR' ? all[0].data : undefined);
  if (all.at(-1)?.type !== 'IEND') fail(path, 'PNG without an IEND chunk (truncated file)');
  const stride = (h.width * CHANNELS[h.colourType] * h.bitDepth) / 8;
  const expected = (stride + 1) * h.height;
  const compressed = Buffer.concat(all.filter((c) => c.type === 'IDAT').map((c) => c.data));
  if (compressed.length === 0) fail(path, 'PNG without image data (no IDAT chunk)');
  const raw = inflateBounded(path, compressed, expected);
  if (raw.length < expected)
    fail(path, `PNG image data hold ${raw.length} bytes, the header needs ${expected}`);
  return new Volume({ data: pixels(unfilter(path, raw, h), h), dims: [h.width, h.height, 1] });
}

/** Why `volume` cannot be written as an 8-bit grey PNG, or undefined when it can. */
export function pngUnwritable(volume: Volume): string | undefined {
  if (volume.dims[2] !== 1 || volume.components !== 1)
    return `a PNG holds one 2-D grey image, not ${volume.dims.join('x')} voxels of ${volume.components} component(s)`;
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of volume.data) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  if (lo < -0.5 || hi >= 255.5)
    return `values ${lo}–${hi} do not fit an 8-bit PNG (0–255); use .nii or .nii.gz`;
  return undefined;
}

/** Writes a one-slice volume of values 0–255 as an 8-bit grey PNG (rounded), atomically. */
export function writePng(path: string, volume: Volume): void {
  const problem = pngUnwritable(volume);
  if (problem) fail(path, problem);
  const [width, height] = volume.dims;
  writeFileAtomic(
    path,
    encodePng(
      width,
      height,
      Uint8Array.from(volume.data, (v) => Math.round(v)),
      1,
    ),
  );
}

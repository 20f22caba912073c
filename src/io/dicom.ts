/**
 * The few DICOM attributes the series checks need, read from Part 10 files by a minimal parser, before
 * GDCM (itk.ts) reads the pixels. GDCM accepts a series with a missing slice or uneven slice positions
 * (the volume gets an averaged spacing, so slices land millimetres from where they were acquired) and
 * files whose pixel data are cut short; ITK's series reader only warns. Both are refused here.
 *
 * Transfer syntaxes: explicit VR little endian (and the compressed ones, whose data set is encoded
 * the same way), implicit VR little endian and explicit VR big endian. Deflated data sets are not
 * parsed (no checks). Sequences are skipped, defined length or not; parsing stops at Pixel Data.
 */
import { fail } from '../util/errors.ts';
import { readInputFile } from './files.ts';

export interface DicomSlice {
  path: string;
  /** ImagePositionPatient (0020,0032) and ImageOrientationPatient (0020,0037), when present. */
  position?: number[];
  orientation?: number[];
}

const UNDEFINED = 0xffffffff;
/** VRs with a 2-byte reserved field and a 4-byte length in explicit VR. */
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

class Reader {
  at = 0;
  constructor(
    private readonly path: string,
    readonly bytes: Buffer,
    private little: boolean,
    private explicit: boolean,
  ) {}

  /** Switches to the data set's transfer syntax (after the file meta group). */
  setSyntax(little: boolean, explicit: boolean) {
    [this.little, this.explicit] = [little, explicit];
  }

  private need(n: number) {
    if (this.at + n > this.bytes.length)
      fail(this.path, `truncated DICOM file (ends inside an element at byte ${this.at})`);
  }
  u16(): number {
    this.need(2);
    const v = this.little ? this.bytes.readUInt16LE(this.at) : this.bytes.readUInt16BE(this.at);
    this.at += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.little ? this.bytes.readUInt32LE(this.at) : this.bytes.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }

  /** The next element's tag, VR (explicit syntaxes) and value length; the reader is then at the value. */
  element(): { tag: number; vr: string; length: number } {
    const tag = ((this.u16() << 16) | this.u16()) >>> 0;
    if (tag >>> 16 === 0xfffe) return { tag, vr: '', length: this.u32() }; // item and delimiters
    if (!this.explicit) return { tag, vr: '', length: this.u32() };
    this.need(2);
    const vr = this.bytes.toString('latin1', this.at, this.at + 2);
    this.at += 2;
    if (!LONG_VRS.has(vr)) return { tag, vr, length: this.u16() };
    this.at += 2;
    return { tag, vr, length: this.u32() };
  }

  text(length: number): string {
    this.need(length);
    const s = this.bytes.toString('latin1', this.at, this.at + length).replace(/[\0 ]+$/, '');
    this.at += length;
    return s;
  }

  skip(length: number) {
    if (length === UNDEFINED) return this.skipUndefined();
    this.need(length);
    this.at += length;
  }

  /** Skips an undefined-length sequence or item up to and including its delimiter. */
  private skipUndefined() {
    for (;;) {
      const { tag, length } = this.element();
      if (tag === 0xfffee0dd || tag === 0xfffee00d) return; // sequence / item delimitation
      this.skip(length);
    }
  }
}

const SYNTAXES: Record<string, [little: boolean, explicit: boolean]> = {
  '1.2.840.10008.1.2': [true, false],
  '1.2.840.10008.1.2.2': [false, true],
};

/**
 * Reads position and orientation of one Part 10 file and checks that its pixel data are complete
 * (Rows × Columns × Samples × Frames × BitsAllocated/8 bytes, for native, uncompressed pixel data).
 */
export function readDicomSlice(path: string): DicomSlice {
  const bytes = readInputFile(path);
  const reader = new Reader(path, bytes, true, true);
  reader.at = 132;
  const numbers = (text: string) => text.split('\\').map(Number);
  const slice: DicomSlice = { path };
  const ints = new Map<number, number>();
  let syntax = '';
  let inMeta = true;
  while (reader.at < bytes.length) {
    if (inMeta && (reader.at + 2 > bytes.length || bytes.readUInt16LE(reader.at) !== 0x0002)) {
      inMeta = false;
      if (syntax === '1.2.840.10008.1.2.1.99') return slice; // deflated data set
      reader.setSyntax(...(SYNTAXES[syntax] ?? [true, true]));
    }
    const { tag, vr, length } = reader.element();
    if (tag === 0x00020010) syntax = reader.text(length);
    else if (tag === 0x00200032) slice.position = numbers(reader.text(length));
    else if (tag === 0x00200037) slice.orientation = numbers(reader.text(length));
    else if (tag === 0x00280008) ints.set(tag, Number(reader.text(length)) || 1);
    else if (
      (tag === 0x00280002 || tag === 0x00280010 || tag === 0x00280011 || tag === 0x00280100) &&
      length === 2
    )
      ints.set(tag, reader.u16());
    else if (tag === 0x7fe00010) {
      if (length === UNDEFINED || vr === 'SQ') return slice; // encapsulated (compressed) pixel data
      const [samples, rows, columns, bits, frames] = [
        0x00280002, 0x00280010, 0x00280011, 0x00280100, 0x00280008,
      ].map((t) => ints.get(t) ?? 1);
      const expected = Math.ceil((rows * columns * samples * frames * bits) / 8);
      const present = Math.min(length, bytes.length - reader.at);
      if (present < expected)
        fail(
          path,
          `truncated pixel data: ${present} of the ${expected} bytes Rows × Columns × BitsAllocated need`,
        );
      return slice;
    } else reader.skip(length);
  }
  return slice;
}

/**
 * Refuses a series whose slices are not evenly spaced along the slice normal (row × column direction
 * of ImageOrientationPatient): every gap between neighbouring positions must be within
 * max(1e-3 × the median gap, 0.02 mm) of the median gap (0.02 mm covers positions printed with two
 * decimals: each gap and the median are then off by up to 0.01 mm). A missing slice shows as a double
 * gap. Series without positions are left to GDCM.
 */
export function checkSliceSpacing(dir: string, slices: DicomSlice[]): void {
  const first = slices[0]?.orientation;
  if (slices.length < 2 || first?.length !== 6 || slices.some((s) => s.position?.length !== 3)) return;
  const [r, c] = [first.slice(0, 3), first.slice(3)];
  const normal = [r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]];
  if (![...normal, ...first].every(Number.isFinite)) return;
  const along = slices
    .map((s) => ({ path: s.path, d: s.position!.reduce((sum, v, i) => sum + v * normal[i], 0) }))
    .sort((a, b) => a.d - b.d);
  const gaps = along.slice(1).map((s, i) => s.d - along[i].d);
  const median = [...gaps].sort((a, b) => a - b)[Math.floor(gaps.length / 2)];
  const tolerance = Math.max(1e-3 * median, 0.02);
  const bad = gaps.findIndex((g) => Math.abs(g - median) > tolerance || g <= tolerance);
  if (bad < 0) return;
  const name = (i: number) => along[i].path.split('/').pop();
  fail(
    dir,
    `slice positions are not evenly spaced: ${+gaps[bad].toFixed(4)} mm between ${name(bad)} and ${name(bad + 1)}, ` +
      `${+median.toFixed(4)} mm between the other slices (a missing or duplicate slice?)`,
  );
}

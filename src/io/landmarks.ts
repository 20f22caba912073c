/**
 * Landmark (point set) files. In memory, landmarks are always points in **LPS world millimetres**
 * (the Volume convention), with optional labels; each format is converted at the boundary:
 *
 * | format      | extension              | file content                                              | needs reference |
 * |-------------|------------------------|-----------------------------------------------------------|-----------------|
 * | `dirlab`    | `.txt` (by content)    | `x y z` voxel indices, 1-based (x column, y row, z slice) | yes             |
 * | `popi`      | `.pts`                 | `#X Y Z` then `X Y Z` in mm (ITK physical space = LPS)     | no              |
 * | `elastix`   | `.txt` (by content)    | `point` (LPS mm) or `index` (0-based voxels), count, rows  | for `index`     |
 * | `csv`       | `.csv`                 | header `x,y,z` (optional `label`), LPS mm; RAS on request  | no              |
 * | `learn2reg` | explicit only          | `x,y,z` 0-based voxel indices of the NIfTI array, no header | yes            |
 * | `slicer`    | `.mrk.json`, `.json`   | 3D Slicer markups JSON (schema v1.0.3), Fiducial, LPS/RAS  | no              |
 *
 * A `.txt` file is read as elastix when its first word is `point` or `index`, else as DIR-Lab; it is
 * written as elastix (`point`) unless `format: 'dirlab'` is given. `format` overrides detection.
 * "reference" is the image grid the voxel indices refer to: a Volume, or `dirLabGrid('case1')`.
 * When a reference is given, every point must lie inside it (within half a voxel of the outer voxel
 * centres) unless the library option `allowOutside` is set.
 */
import { readFileSync, statSync } from 'node:fs';
import { Grid, type GridInit, type Vec3 } from '../geometry/volume.ts';
import { fail } from '../util/errors.ts';
import { bool, invalid, oneOf } from '../util/is.ts';
import { writeFileAtomic } from '../util/atomic.ts';

export const LANDMARK_FORMATS = ['dirlab', 'popi', 'elastix', 'csv', 'learn2reg', 'slicer'] as const;
export type LandmarkFormat = (typeof LANDMARK_FORMATS)[number];

/** Points in LPS world mm with optional labels. */
export class Landmarks {
  /** Interleaved x, y, z: point p is points[3p], points[3p + 1], points[3p + 2]. */
  readonly points: Float64Array;
  readonly labels: readonly string[] | undefined;

  constructor(points: Float64Array | readonly Vec3[], labels?: readonly string[]) {
    const flat = points instanceof Float64Array ? points : Float64Array.from(points.flat());
    if (flat.length % 3 !== 0)
      throw new Error(`landmarks: ${flat.length} coordinates is not a multiple of 3`);
    if (!flat.every(Number.isFinite)) throw new Error('landmarks: coordinates must be finite');
    if (labels && labels.length !== flat.length / 3) {
      throw new Error(`landmarks: ${labels.length} labels for ${flat.length / 3} points`);
    }
    this.points = flat;
    this.labels = labels ? [...labels] : undefined;
  }

  get count(): number {
    return this.points.length / 3;
  }

  point(i: number): Vec3 {
    return [this.points[3 * i], this.points[3 * i + 1], this.points[3 * i + 2]];
  }
}

export interface ReadLandmarksOptions {
  format?: LandmarkFormat;
  /** Image grid of voxel-index formats; also checks that all points lie inside it. */
  reference?: GridInit;
  /** World frame of `csv` files: 'LPS' (default) or 'RAS' (x and y negated). */
  coordinateSystem?: 'LPS' | 'RAS';
  /** Accept points outside the reference grid. */
  allowOutside?: boolean;
}

export type WriteLandmarksOptions = ReadLandmarksOptions;

const SLICER_SCHEMA =
  'https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/markups-schema-v1.0.3.json#';

/** Format from the file name; `.txt` needs its content (`firstWord`) to choose elastix or DIR-Lab. */
function detectFormat(path: string, firstWord: string | undefined): LandmarkFormat {
  const lower = path.toLowerCase();
  if (lower.endsWith('.pts')) return 'popi';
  if (lower.endsWith('.json')) return 'slicer';
  if (lower.endsWith('.csv')) return 'csv';
  if (lower.endsWith('.txt')) {
    if (firstWord === undefined) return 'elastix';
    return /^(point|index)$/i.test(firstWord) ? 'elastix' : 'dirlab';
  }
  fail(
    path,
    `cannot tell the landmark format from the extension; give it (--points-format on the command line): one of ${LANDMARK_FORMATS.join(', ')}`,
  );
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

interface Row {
  line: number;
  fields: string[];
}

/** Non-blank lines split into fields (CRLF and surrounding blanks tolerated). */
function rowsOf(text: string, split: (line: string) => string[]): Row[] {
  const rows: Row[] = [];
  text.split(/\r?\n|\r/).forEach((raw, i) => {
    const line = raw.trim();
    if (line) rows.push({ line: i + 1, fields: split(line) });
  });
  return rows;
}

const whitespace = (line: string) => line.split(/\s+/);

/** Splits one CSV line; double quotes protect commas, `""` is a quote. */
function csvFields(line: string): string[] {
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') field += line[++i];
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      fields.push(field.trim());
      field = '';
    } else field += ch;
  }
  fields.push(field.trim());
  return fields;
}

function numberAt(path: string, row: Row, field: string): number {
  if (!NUMBER.test(field)) fail(path, `line ${row.line}: ${JSON.stringify(field)} is not a number`);
  const value = Number(field);
  if (!Number.isFinite(value)) fail(path, `line ${row.line}: ${field} is out of range`);
  return value;
}

/** Three numbers from a row of exactly three fields. */
function xyz(path: string, row: Row, what: string): Vec3 {
  if (row.fields.length !== 3) {
    fail(path, `line ${row.line}: expected 3 values (${what}), found ${row.fields.length}`);
  }
  return row.fields.map((f) => numberAt(path, row, f)) as Vec3;
}

/** Parsed file content before conversion to world coordinates. */
interface Parsed {
  coords: Vec3[];
  /** Line number of each point in the file (text formats). */
  lines?: number[];
  labels?: string[];
  /** What the coordinates are: LPS/RAS mm, or 0-/1-based voxel indices of the reference. */
  kind: 'lps' | 'ras' | 'index0' | 'index1';
}

function parseRows(path: string, rows: Row[], kind: Parsed['kind'], what: string): Parsed {
  return { coords: rows.map((r) => xyz(path, r, what)), lines: rows.map((r) => r.line), kind };
}

function parseElastix(path: string, rows: Row[]): Parsed {
  const mode = rows[0].fields[0].toLowerCase();
  if (rows[0].fields.length !== 1 || (mode !== 'point' && mode !== 'index')) {
    fail(path, `line ${rows[0].line}: expected "point" or "index" as the first line of an elastix point set`);
  }
  const countRow = rows[1];
  if (!countRow || countRow.fields.length !== 1 || !/^\d+$/.test(countRow.fields[0])) {
    fail(path, `line ${countRow?.line ?? rows[0].line + 1}: expected the number of points`);
  }
  const count = Number(countRow.fields[0]);
  const points = rows.slice(2);
  if (points.length !== count) fail(path, `header says ${count} points, found ${points.length}`);
  return parseRows(path, points, mode === 'point' ? 'lps' : 'index0', 'x y z');
}

function parseCsv(path: string, rows: Row[], system: 'LPS' | 'RAS'): Parsed {
  const header = rows[0].fields.map((f) => f.toLowerCase());
  const column = (name: string) => header.indexOf(name);
  const [cx, cy, cz, cl] = ['x', 'y', 'z', 'label'].map(column);
  if (cx < 0 || cy < 0 || cz < 0) {
    fail(
      path,
      `line ${rows[0].line}: expected a header with columns x,y,z (Learn2Reg voxel keypoints have none: give the format learn2reg, --points-format learn2reg on the command line)`,
    );
  }
  const parsed: Parsed = { coords: [], lines: [], kind: system === 'LPS' ? 'lps' : 'ras' };
  const labels: string[] = [];
  for (const row of rows.slice(1)) {
    if (row.fields.length !== header.length) {
      fail(
        path,
        `line ${row.line}: expected ${header.length} values (${header.join(',')}), found ${row.fields.length}`,
      );
    }
    parsed.coords.push([cx, cy, cz].map((c) => numberAt(path, row, row.fields[c])) as Vec3);
    parsed.lines?.push(row.line);
    if (cl >= 0) labels.push(row.fields[cl]);
  }
  if (cl >= 0) parsed.labels = labels;
  return parsed;
}

interface SlicerMarkup {
  type?: unknown;
  coordinateSystem?: unknown;
  coordinateUnits?: unknown;
  controlPoints?: unknown;
}

function parseSlicer(path: string, text: string): Parsed {
  let json: { markups?: SlicerMarkup[] };
  try {
    json = JSON.parse(text);
  } catch (e) {
    // V8 quotes the text around the error, line breaks included: keep the message on one line.
    fail(path, `invalid JSON (${(e as Error).message.replace(/\s+/g, ' ')})`);
  }
  const markup = Array.isArray(json?.markups) ? json.markups.find((m) => m?.type === 'Fiducial') : undefined;
  if (!markup) fail(path, 'no Fiducial markup in this Slicer markups file');
  const system = markup.coordinateSystem ?? 'LPS';
  if (system !== 'LPS' && system !== 'RAS')
    fail(path, `unsupported coordinateSystem ${JSON.stringify(system)}`);
  const units = Array.isArray(markup.coordinateUnits)
    ? markup.coordinateUnits[0]
    : (markup.coordinateUnits ?? 'mm');
  if (units !== 'mm' && units !== 'um') fail(path, `unsupported coordinateUnits ${JSON.stringify(units)}`);
  const scale = units === 'um' ? 1e-3 : 1;
  const points = markup.controlPoints ?? [];
  if (!Array.isArray(points)) fail(path, 'controlPoints of the Fiducial markup is not a list');
  const parsed: Parsed = { coords: [], kind: system === 'LPS' ? 'lps' : 'ras' };
  const labels: string[] = [];
  points.forEach((p: { label?: unknown; position?: unknown; positionStatus?: unknown } | null, i) => {
    const pos = p?.position;
    if (p?.positionStatus === 'undefined')
      fail(path, `control point ${i} has no position (positionStatus "undefined")`);
    if (
      !Array.isArray(pos) ||
      pos.length !== 3 ||
      !pos.every((v) => typeof v === 'number' && Number.isFinite(v))
    ) {
      fail(path, `control point ${i}: position must be 3 finite numbers`);
    }
    parsed.coords.push(pos.map((v: number) => v * scale) as Vec3);
    labels.push(typeof p?.label === 'string' ? p.label : '');
  });
  if (labels.some((l) => l !== '')) parsed.labels = labels;
  return parsed;
}

function requireReference(path: string, format: LandmarkFormat, reference: GridInit | undefined): Grid {
  if (!reference) {
    fail(
      path,
      `${format} landmarks are voxel indices; pass reference (the image or its grid, e.g. dirLabGrid('case1'))`,
    );
  }
  return Grid.of(reference);
}

function checkOptions(options: ReadLandmarksOptions) {
  const format = options.format === undefined ? undefined : oneOf('format', options.format, LANDMARK_FORMATS);
  const system = oneOf('coordinateSystem', options.coordinateSystem ?? 'LPS', ['LPS', 'RAS'] as const);
  const allowOutside =
    options.allowOutside === undefined ? false : bool('allowOutside', options.allowOutside);
  const reference = options.reference;
  if (reference !== undefined && !Array.isArray(reference?.dims))
    throw invalid('reference', 'a Volume or a grid', reference);
  return { format, system, allowOutside, reference };
}

/** Names the first point outside the reference grid, if any. */
function checkInside(path: string, reference: GridInit, landmarks: Landmarks, lines?: number[]) {
  const grid = Grid.of(reference);
  for (let p = 0; p < landmarks.count; p++) {
    const index = grid.worldToVoxel(landmarks.point(p));
    if (!grid.containsIndex(index)) {
      const where = lines ? ` (line ${lines[p]})` : '';
      const shown = index.map((v) => +v.toFixed(2)).join(', ');
      fail(
        path,
        `point ${p}${where} lies outside the ${reference.dims.join('x')} image (voxel ${shown}); points must lie inside the image`,
      );
    }
  }
}

/** Reads a landmark file as LPS world points (see the module comment for formats and options). */
export function readLandmarks(path: string, options: ReadLandmarksOptions = {}): Landmarks {
  const { format: requested, system, allowOutside, reference } = checkOptions(options);
  let text: string;
  try {
    if (statSync(path).isDirectory()) fail(path, 'is a directory, expected a landmark file');
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') fail(path, 'file not found');
    throw e;
  }
  if (!text.trim()) fail(path, 'no landmarks (empty file)');
  const firstWord = text.trim().split(/\s+/, 1)[0];
  const format = requested ?? detectFormat(path, firstWord);

  let parsed: Parsed;
  if (format === 'slicer') {
    parsed = parseSlicer(path, text);
  } else {
    const rows = rowsOf(text, format === 'csv' || format === 'learn2reg' ? csvFields : whitespace);
    if (format === 'dirlab') parsed = parseRows(path, rows, 'index1', 'x y z');
    else if (format === 'popi')
      parsed = parseRows(
        path,
        rows.filter((r) => !r.fields[0].startsWith('#')),
        'lps',
        'X Y Z',
      );
    else if (format === 'elastix') parsed = parseElastix(path, rows);
    else if (format === 'csv') parsed = parseCsv(path, rows, system);
    else parsed = parseRows(path, rows, 'index0', 'x,y,z');
  }
  if (parsed.coords.length === 0) fail(path, 'no landmarks in this file');

  let toWorld: (c: Vec3) => Vec3;
  if (parsed.kind === 'lps') toWorld = (c) => c;
  else if (parsed.kind === 'ras') toWorld = (c) => [-c[0], -c[1], c[2]];
  else {
    const grid = requireReference(path, format, reference);
    const shift = parsed.kind === 'index1' ? 1 : 0;
    toWorld = (c) => grid.voxelToWorld([c[0] - shift, c[1] - shift, c[2] - shift]);
  }
  const world = parsed.coords.map(toWorld);
  // Finite file values can still overflow on conversion (1e308 voxels × 2 mm).
  const overflow = world.findIndex((p) => !p.every(Number.isFinite));
  if (overflow >= 0) {
    const where = parsed.lines ? `line ${parsed.lines[overflow]}` : `point ${overflow}`;
    fail(path, `${where}: coordinates out of range`);
  }
  const landmarks = new Landmarks(world, parsed.labels);
  if (reference && !allowOutside) checkInside(path, reference, landmarks, parsed.lines);
  return landmarks;
}

/** Voxel indices printed with 6 decimals at most (integers stay integers). */
const indexText = (v: number) => String(Number(v.toFixed(6)) + 0);

function slicerJson(landmarks: Landmarks): string {
  const controlPoints = Array.from({ length: landmarks.count }, (_, i) => ({
    id: String(i + 1),
    label: landmarks.labels?.[i] ?? `F-${i + 1}`,
    description: '',
    associatedNodeID: '',
    position: landmarks.point(i),
    orientation: [-1, 0, 0, 0, -1, 0, 0, 0, 1],
    selected: true,
    locked: false,
    visibility: true,
    positionStatus: 'defined',
  }));
  const markup = {
    type: 'Fiducial',
    coordinateSystem: 'LPS',
    coordinateUnits: 'mm',
    locked: false,
    fixedNumberOfControlPoints: false,
    labelFormat: '%N-%d',
    lastUsedControlPointNumber: landmarks.count,
    controlPoints,
    measurements: [],
  };
  return JSON.stringify({ '@schema': SLICER_SCHEMA, markups: [markup] }, null, 2) + '\n';
}

function csvLabel(label: string): string {
  return /[",\n\r]/.test(label) ? `"${label.replace(/"/g, '""')}"` : label;
}

/** Writes landmarks (LPS world mm) in the format chosen by `format` or the extension, atomically. */
export function writeLandmarks(
  path: string,
  landmarks: Landmarks,
  options: WriteLandmarksOptions = {},
): void {
  const { format: requested, system, allowOutside, reference } = checkOptions(options);
  const format = requested ?? detectFormat(path, undefined);
  if (reference && !allowOutside) checkInside(path, reference, landmarks);
  const n = landmarks.count;
  const world = Array.from({ length: n }, (_, i) => landmarks.point(i));
  const indices = (shift: number) => {
    const grid = requireReference(path, format, reference);
    return world.map((p) => grid.worldToVoxel(p).map((v) => indexText(v + shift)));
  };
  const lines = (rows: (string | number)[][], separator: string) => rows.map((r) => r.join(separator));

  let text: string;
  if (format === 'slicer') text = slicerJson(landmarks);
  else if (format === 'dirlab') text = lines(indices(1), '\t').join('\n') + '\n';
  else if (format === 'learn2reg') text = lines(indices(0), ',').join('\n') + '\n';
  else if (format === 'popi') text = ['#X Y Z', ...lines(world, '\t')].join('\n') + '\n';
  else if (format === 'elastix') text = ['point', String(n), ...lines(world, ' ')].join('\n') + '\n';
  else {
    const flip = system === 'RAS' ? -1 : 1;
    const rows = world.map((p) => [flip * p[0] + 0, flip * p[1] + 0, p[2]] as (string | number)[]);
    const labels = landmarks.labels;
    const header = labels ? 'label,x,y,z' : 'x,y,z';
    text =
      [header, ...lines(labels ? rows.map((r, i) => [csvLabel(labels[i]), ...r]) : rows, ',')].join('\n') +
      '\n';
  }
  writeFileAtomic(path, text);
}

/**
 * The matches CSV of `diffreg match` (fixed_*, moving_*, confidence) and of `diffreg demo` (fixed_*,
 * matched_*, true_*, confidence), as point rows for the viewer. Lines starting with # are comments; an
 * empty moving cell is a point the search found no match for.
 */
import type { Vec3 } from '../geometry/volume.ts';
import { readInputFile } from '../io/files.ts';
import { fail } from '../util/errors.ts';
import type { PointRow } from './scene.ts';

const AXES = ['x', 'y', 'z'];

export function readMatches(path: string): PointRow[] {
  const text = readInputFile(path).toString('utf8');
  const lines = text
    .split(/\r?\n/)
    .map((line, i) => ({ line: i + 1, cells: line.split(',').map((c) => c.trim()) }))
    .filter(({ cells }) => cells.join('') !== '' && !cells[0].startsWith('#'));
  if (lines.length === 0) fail(path, 'no header line (expected fixed_x,fixed_y,fixed_z,…)');
  const [header, ...rows] = lines;
  const column = (name: string) => header.cells.indexOf(name);
  const triple = (prefix: string) => {
    const at = AXES.map((a) => column(`${prefix}_${a}`));
    return at.every((c) => c >= 0) ? at : undefined;
  };
  const fixedAt = triple('fixed');
  if (!fixedAt) fail(path, `line ${header.line}: no fixed_x,fixed_y,fixed_z columns`);
  const movingAt = triple('moving') ?? triple('matched');
  if (!movingAt) fail(path, `line ${header.line}: no moving_x,… (or matched_x,…) columns`);
  const truthAt = triple('true');
  const confidenceAt = column('confidence');
  if (rows.length === 0) fail(path, 'no matches (a header without rows)');
  return rows.map(({ line, cells }) => {
    if (cells.length !== header.cells.length)
      fail(path, `line ${line}: ${cells.length} values, the header has ${header.cells.length}`);
    const value = (c: number, name: string, optional: boolean) => {
      if (cells[c] === '' && optional) return undefined;
      const v = Number(cells[c]);
      if (cells[c] === '' || !Number.isFinite(v)) fail(path, `line ${line}: ${name} is not a number`);
      return v;
    };
    const point = (at: number[], optional: boolean): Vec3 | undefined => {
      const v = at.map((c) => value(c, header.cells[c], optional));
      return v.every((x) => x !== undefined) ? (v as Vec3) : undefined;
    };
    return {
      fixed: point(fixedAt, false)!,
      moving: point(movingAt, true),
      truth: truthAt && point(truthAt, true),
      confidence: confidenceAt >= 0 ? value(confidenceAt, 'confidence', true) : undefined,
    };
  });
}

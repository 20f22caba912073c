/** Reading inputs and writing outputs for the CLI commands, with one-line errors and atomic files. */
import { existsSync, readFileSync } from 'node:fs';
import { readVolume } from '../../io/index.ts';
import { checkField } from '../../geometry/field.ts';
import type { Volume } from '../../geometry/volume.ts';
import { checkVolumeAxes, type InitialTransform } from '../../methods/meddift/index.ts';
import { fail } from '../../util/errors.ts';
import { setNumThreads } from '../../engine/index.ts';
import { optionalInteger } from '../args.ts';

/** Fewest voxels along either in-plane axis of a slice a 2-D method registers. */
const MIN_SLICE_VOXELS = 8;

/**
 * An image for `match` or `register`, checked with the method's own rule before any model is loaded.
 * The 3-D networks and registrations would stretch a 2-D image or a single slice to a volume and give
 * answers without meaning, so they refuse it. A method that `accepts2d` registers slices along the
 * third axis: it takes 2-D images and stacks alike, slices of at least MIN_SLICE_VOXELS² voxels.
 */
export async function readImage(path: string, role: string, accepts2d = false): Promise<Volume> {
  if (!existsSync(path)) fail(path, `${role} image not found`);
  const volume = await readVolume(path);
  if (!accepts2d) checkVolumeAxes(volume, path);
  else if (volume.dims[0] < MIN_SLICE_VOXELS || volume.dims[1] < MIN_SLICE_VOXELS)
    fail(
      path,
      `${volume.dims.join('x')} voxels: slices along the third axis of at least ${MIN_SLICE_VOXELS}x${MIN_SLICE_VOXELS} voxels are needed`,
    );
  return volume;
}

/** `--initial`: a 4×4 world (LPS) matrix in a text file, or a displacement-field image. */
export async function readInitialTransform(path: string): Promise<InitialTransform> {
  if (!existsSync(path)) fail(path, 'initial transform not found');
  if (/\.(txt|tfm|mat)$/i.test(path)) {
    const numbers = readFileSync(path, 'utf8')
      .split(/[\s,]+/)
      .filter((s) => s !== '')
      .map(Number);
    if (numbers.length !== 16 && numbers.length !== 12)
      fail(path, `expected a 4x4 or 3x4 matrix (16 or 12 numbers), got ${numbers.length}`);
    if (numbers.some((n) => !Number.isFinite(n))) fail(path, 'the matrix holds a value that is not a number');
    return { kind: 'affine', matrix: numbers.length === 12 ? [...numbers, 0, 0, 0, 1] : numbers };
  }
  const field = await readVolume(path);
  if (field.components !== 3)
    fail(path, `expected a displacement field (3 components), got ${field.components}`);
  return {
    kind: 'field',
    field: checkField(
      field.data instanceof Float32Array ? field : field.withData(Float32Array.from(field.data), 3),
      path,
    ),
  };
}

export function applyThreads(values: Record<string, unknown>): void {
  const threads = optionalInteger(values, 'threads');
  if (threads !== undefined) setNumThreads(threads);
}

export function printJson(value: unknown): void {
  process.stdout.write(
    `${JSON.stringify(value, (_, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`,
  );
}

/**
 * Affine and B-spline registration by elastix (Klein et al. 2010, Shamonin et al. 2014), either
 * through @itk-wasm/elastix (WebAssembly, runs in Node everywhere) or through the native `elastix` and
 * `transformix` commands when installed (Debian package `elastix`), as a cross-check and speed
 * reference.
 *
 * Parameter maps: elastix's own defaults (`defaultParameterMap` of @itk-wasm/elastix, i.e.
 * ParameterObject.GetDefaultParameterMap): Mattes mutual information, adaptive stochastic gradient
 * descent, 256 iterations per level, 2048 random samples, smoothing pyramids with `resolutions`
 * levels. 'bspline' runs the default affine map first and the default B-spline map on top of it
 * (the usual elastix chain; the B-spline map adds a bending-energy penalty of weight 1 and refines
 * the grid from about 4× to 1× `gridSpacing` mm). Quick mode: 2 levels of 64 iterations.
 * elastix's random sampler has a fixed default seed, so runs are repeatable per engine.
 *
 * The result is returned as a displacement field on the fixed grid in diffreg's convention (LPS mm,
 * fixed p → moving p + u(p)), which is elastix's own convention (ITK physical space = LPS, transforms
 * map fixed to moving points). Native: transformix `-def all`. WebAssembly (no deformation-field
 * output there): transformix resamples three "coordinate images" whose voxel values are the world
 * x, y, z of their voxel centres with linear interpolation; linear interpolation reproduces a linear
 * function exactly, so each output voxel holds the coordinate of T(p) (to float32 rounding), and
 * u(p) = T(p) − p.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Volume, type DisplacementField } from '../../geometry/index.ts';
import { readVolume, writeVolume } from '../../io/index.ts';
import { fail } from '../../util/errors.ts';
import { integer, number, oneOf } from '../../util/is.ts';
import { measured } from '../../util/measure.ts';
import type { MethodEntry, RegistrationCase, RegistrationMethod, RegisterOptions } from '../method.ts';

const run = promisify(execFile);

/** An elastix parameter map: every value is a list of strings, as in @itk-wasm/elastix. */
export type ParameterMap = Record<string, string[]>;

export interface ElastixOptions {
  /** 'affine' alone, or 'bspline' = affine followed by B-spline (default 'bspline'). */
  transform?: 'affine' | 'bspline';
  /** Final B-spline control-point spacing in mm (default 8). */
  gridSpacing?: number;
  /** Pyramid levels (default 3). */
  resolutions?: number;
  /** Iterations per level (default elastix's 256). */
  iterations?: number;
  /** 'wasm' (@itk-wasm/elastix, default) or 'native' (elastix/transformix commands). */
  engine?: 'wasm' | 'native';
  /** Threads of the native commands (default: elastix's choice, all cores). */
  threads?: number;
}

interface Settings {
  transform: 'affine' | 'bspline';
  gridSpacing: number;
  resolutions: number;
  iterations: number;
  engine: 'wasm' | 'native';
  threads?: number;
}

function settings(options: ElastixOptions): Settings {
  return {
    transform: oneOf('transform', options.transform ?? 'bspline', ['affine', 'bspline'] as const),
    gridSpacing: number('gridSpacing', options.gridSpacing ?? 8, { min: 0, exclusiveMin: true }),
    resolutions: integer('resolutions', options.resolutions ?? 3, { min: 1, max: 8 }),
    iterations: integer('iterations', options.iterations ?? 256, { min: 1 }),
    engine: oneOf('engine', options.engine ?? 'wasm', ['wasm', 'native'] as const),
    threads: options.threads === undefined ? undefined : integer('threads', options.threads, { min: 1 }),
  };
}

/**
 * Runs an itk-wasm call with console output collected: elastix prints its log there. On failure
 * the last meaningful line becomes a one-line DiffregError; on success the log is dropped.
 */
async function quietly<T>(what: string, call: () => Promise<T>): Promise<T> {
  const printed: string[] = [];
  const saved = { log: console.log, error: console.error, warn: console.warn, info: console.info };
  const collect = (...args: unknown[]) => void printed.push(args.map(String).join(' '));
  console.log = console.error = console.warn = console.info = collect;
  try {
    return await call();
  } catch (e) {
    const lines = [...printed, e instanceof Error ? e.message : String(e)]
      .flatMap((t) => t.split('\n'))
      .map((l) => l.trim())
      .filter((l) => l && !/^\d+$/.test(l));
    fail(
      what,
      `failed (${(lines.find((l) => /error|exception/i.test(l)) ?? lines.at(-1) ?? 'unknown').slice(0, 200)})`,
    );
  } finally {
    Object.assign(console, saved);
  }
}

/** The parameter maps of one run, from elastix's defaults (see the module comment). */
export async function elastixParameterMaps(
  options: ElastixOptions = {},
  quick = false,
): Promise<ParameterMap[]> {
  const s = settings(options);
  const { defaultParameterMapNode } = await import('@itk-wasm/elastix');
  const levels = quick ? Math.min(2, s.resolutions) : s.resolutions;
  const iterations = String(quick ? Math.min(64, s.iterations) : s.iterations);
  const names = s.transform === 'bspline' ? ['affine', 'bspline'] : ['affine'];
  const maps: ParameterMap[] = [];
  for (const name of names) {
    const { parameterMap } = await quietly('elastix parameter map', () =>
      defaultParameterMapNode(name, { numberOfResolutions: levels, finalGridSpacing: s.gridSpacing }),
    );
    maps.push({
      ...(parameterMap as ParameterMap),
      MaximumNumberOfIterations: [iterations],
      WriteResultImage: ['false'],
      ResultImageFormat: ['mha'],
    });
  }
  return maps;
}

/** The fields of an itk-wasm Image used here. */
interface ItkImage {
  imageType: { dimension: number; componentType: string; pixelType: string; components: number };
  name: string;
  origin: number[];
  spacing: number[];
  direction: Float64Array;
  size: number[];
  metadata: Map<string, unknown>;
  data: Float32Array;
}

/** A scalar Volume as a float32 itk-wasm image (direction row-major, as itk-wasm stores it). */
function toItkImage(volume: Volume, name: string): ItkImage {
  if (volume.components !== 1) fail(name, `expected a scalar image, got ${volume.components} components`);
  return {
    imageType: { dimension: 3, componentType: 'float32', pixelType: 'Scalar', components: 1 },
    name,
    origin: [...volume.origin],
    spacing: [...volume.spacing],
    direction: Float64Array.from(volume.direction),
    size: [...volume.dims],
    metadata: new Map(),
    data: volume.data instanceof Float32Array ? volume.data : Float32Array.from(volume.data),
  };
}

/**
 * A 2×2×2 image whose values are the world coordinate `axis` of its voxel centres, spanning a box
 * around both images four times their largest extent: every T(p) of a sane registration lies inside.
 */
function coordinateImage(fixed: Volume, moving: Volume, axis: number): ItkImage {
  const corners = [fixed, moving].flatMap((v) =>
    [0, 1, 2, 3, 4, 5, 6, 7].map((c) =>
      v.voxelToWorld([c & 1 ? v.dims[0] - 1 : 0, c & 2 ? v.dims[1] - 1 : 0, c & 4 ? v.dims[2] - 1 : 0]),
    ),
  );
  const lo = [0, 1, 2].map((a) => Math.min(...corners.map((p) => p[a])));
  const hi = [0, 1, 2].map((a) => Math.max(...corners.map((p) => p[a])));
  const reach = 4 * Math.max(...hi.map((h, a) => h - lo[a]));
  const origin = lo.map((l) => l - reach);
  const spacing = hi.map((h, a) => h - lo[a] + 2 * reach);
  const data = new Float32Array(8);
  for (let c = 0; c < 8; c++) data[c] = origin[axis] + ((c >> axis) & 1) * spacing[axis];
  return {
    imageType: { dimension: 3, componentType: 'float32', pixelType: 'Scalar', components: 1 },
    name: `coordinate ${axis}`,
    origin,
    spacing,
    direction: Float64Array.of(1, 0, 0, 0, 1, 0, 0, 0, 1),
    size: [2, 2, 2],
    metadata: new Map(),
    data,
  };
}

async function registerWasm(item: RegistrationCase, maps: ParameterMap[]): Promise<DisplacementField> {
  const { elastixNode, transformixNode } = await import('@itk-wasm/elastix');
  const { fixed, moving } = item;
  const result = await quietly(`elastix (${item.id})`, () =>
    elastixNode(maps, {
      fixed: toItkImage(fixed, 'fixed') as never,
      moving: toItkImage(moving, 'moving') as never,
    }),
  );
  const linear = (result.transformParameterObject as ParameterMap[]).map((m) => ({
    ...m,
    ResampleInterpolator: ['FinalLinearInterpolator'],
    FinalBSplineInterpolationOrder: ['1'],
    DefaultPixelValue: ['NaN'],
    ResultImagePixelType: ['float'],
  }));
  const n = fixed.size;
  const out = new Float32Array(3 * n);
  for (let axis = 0; axis < 3; axis++) {
    const { result: mapped } = await quietly(`transformix (${item.id})`, () =>
      transformixNode(coordinateImage(fixed, moving, axis) as never, linear),
    );
    const coordinate = mapped.data as Float32Array;
    if (coordinate.length !== n)
      fail(`transformix (${item.id})`, `returned ${coordinate.length} voxels, expected ${n}`);
    const m = fixed.indexToWorld;
    const [nx, ny, nz] = fixed.dims;
    let t = 0;
    for (let k = 0; k < nz; k++) {
      for (let j = 0; j < ny; j++) {
        for (let i = 0; i < nx; i++, t++) {
          const p = m[4 * axis] * i + m[4 * axis + 1] * j + m[4 * axis + 2] * k + m[4 * axis + 3];
          out[axis * n + t] = coordinate[t] - p;
        }
      }
    }
  }
  if (!out.every(Number.isFinite))
    fail(`elastix (${item.id})`, 'the transform maps some voxels outside the coordinate box');
  return fixed.withData(out, 3);
}

/** A parameter map in elastix's text format: numbers bare, other values quoted. */
export function parameterFileText(map: ParameterMap): string {
  const value = (v: string) => (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(v) ? v : `"${v}"`);
  return (
    Object.entries(map)
      .map(([key, values]) => `(${key} ${values.map(value).join(' ')})`)
      .join('\n') + '\n'
  );
}

/** The version line of the native elastix command, or undefined when it is not installed. */
export async function nativeElastixVersion(): Promise<string | undefined> {
  try {
    const { stdout } = await run('elastix', ['--version']);
    return stdout.trim();
  } catch {
    return undefined;
  }
}

const GNU_TIME = '/usr/bin/time';

/**
 * Runs a command; with GNU time present, also returns the command's peak RSS in MB (the children's
 * memory is not part of this process's RSS).
 */
async function runMeasured(command: string, args: string[], dir: string): Promise<number> {
  const report = join(dir, `${command}.maxrss`);
  const timed = existsSync(GNU_TIME);
  const options = { maxBuffer: 64 * 2 ** 20 };
  if (!timed) {
    await run(command, args, options);
    return 0;
  }
  await run(GNU_TIME, ['-f', '%M', '-o', report, command, ...args], options);
  return Number(readFileSync(report, 'utf8').trim().split('\n').at(-1)) / 1024;
}

/** Native elastix + transformix; `childPeakMb` is the larger peak RSS of the two commands. */
async function registerNative(
  item: RegistrationCase,
  maps: ParameterMap[],
  threads?: number,
): Promise<{ field: DisplacementField; childPeakMb: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'diffreg-elastix-'));
  try {
    const asFloat = (v: Volume) =>
      v.data instanceof Float32Array ? v : v.withData(Float32Array.from(v.data));
    await writeVolume(join(dir, 'fixed.mha'), asFloat(item.fixed), { compress: false });
    await writeVolume(join(dir, 'moving.mha'), asFloat(item.moving), { compress: false });
    const args = ['-f', join(dir, 'fixed.mha'), '-m', join(dir, 'moving.mha'), '-out', dir];
    maps.forEach((map, n) => {
      writeFileSync(join(dir, `parameters.${n}.txt`), parameterFileText(map));
      args.push('-p', join(dir, `parameters.${n}.txt`));
    });
    if (threads) args.push('-threads', String(threads));
    const last = join(dir, `TransformParameters.${maps.length - 1}.txt`);
    let childPeakMb = 0;
    try {
      childPeakMb = await runMeasured('elastix', args, dir);
      const transformixPeak = await runMeasured(
        'transformix',
        ['-def', 'all', '-tp', last, '-out', dir],
        dir,
      );
      childPeakMb = Math.max(childPeakMb, transformixPeak);
    } catch (e) {
      const log = (() => {
        try {
          return readFileSync(join(dir, 'elastix.log'), 'utf8');
        } catch {
          return (e as Error).message;
        }
      })();
      const reason =
        log.split('\n').find((l) => /error|exception/i.test(l)) ?? (e as Error).message.split('\n')[0];
      fail(`native elastix (${item.id})`, `failed (${reason.trim().slice(0, 200)})`);
    }
    const field = await readVolume(join(dir, 'deformationField.mha'));
    if (field.components !== 3 || !field.sameGrid(item.fixed)) {
      fail(`native transformix (${item.id})`, 'deformation field is not a 3-vector image on the fixed grid');
    }
    return { field: field.withData(Float32Array.from(field.data), 3), childPeakMb };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** An elastix registration method for the harness (see the module comment for the parameter maps). */
export function elastixMethod(options: ElastixOptions = {}): RegistrationMethod {
  const s = settings(options);
  const name = `elastix-${s.engine === 'native' ? 'native-' : ''}${s.transform}`;
  const chain = s.transform === 'bspline' ? `affine + B-spline (final grid ${s.gridSpacing} mm)` : 'affine';
  return {
    name,
    description: `elastix ${chain}, default maps (Mattes MI, ASGD), ${s.resolutions} levels × ${s.iterations} iterations, ${s.engine === 'native' ? 'native command' : '@itk-wasm/elastix'}`,
    async register(item: RegistrationCase, registerOptions: RegisterOptions = {}) {
      const maps = await elastixParameterMaps(options, registerOptions.quick ?? false);
      if (s.engine === 'wasm') {
        const { value, seconds, peakRssMb } = await measured(() => registerWasm(item, maps));
        return { field: value, seconds, peakRssMb };
      }
      // the commands run beside this process: count both peaks (an upper bound of the joint peak)
      const { value, seconds, peakRssMb } = await measured(() => registerNative(item, maps, s.threads));
      return { field: value.field, seconds, peakRssMb: peakRssMb + value.childPeakMb };
    },
  };
}

/**
 * Final B-spline control-point spacing (mm) per benchmark dataset: 10 mm on lung CT (DIR-Lab's
 * published elastix settings), 8 mm elsewhere (brain and heart structures are smaller).
 */
const BSPLINE_GRID_SPACING: Record<string, number> = {
  'lung-synthetic': 10,
  'dirlab-4dct': 10,
  'dirlab-copdgene': 10,
};

/** The B-spline grid for a dataset (8 mm when the dataset has no entry or none is given). */
export function bsplineGridSpacing(dataset: string | undefined): number {
  return (dataset && BSPLINE_GRID_SPACING[dataset]) || 8;
}

/** elastix-affine, elastix-bspline (@itk-wasm/elastix) and their native-command twins. */
export const elastixEntries: MethodEntry[] = (['wasm', 'native'] as const).flatMap((engine) =>
  (['affine', 'bspline'] as const).map((transform): MethodEntry => ({
    name: `elastix-${engine === 'native' ? 'native-' : ''}${transform}`,
    summary: `elastix ${transform === 'bspline' ? 'affine + B-spline' : 'affine'} (${engine === 'native' ? "Debian's elastix command" : '@itk-wasm/elastix'})`,
    dense: true,
    options: [],
    usesModel: false,
    create: ({ dataset }) =>
      elastixMethod({
        transform,
        engine,
        gridSpacing: transform === 'bspline' ? bsplineGridSpacing(dataset) : undefined,
      }),
  })),
);

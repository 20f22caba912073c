/**
 * The viewer's correspondence process. It holds the model and, once the first click asks for it, the
 * MedDIFT descriptors of both images of the opened pair; every later click only matches. Running apart
 * keeps the server answering (status polls, volumes, Ctrl-C) while the descriptors are computed, and
 * its message queue answers concurrent clicks one at a time, each as if alone. A process, not a worker
 * thread: the native addon is loaded once per process (its allocator is process-wide).
 *
 * Measured on the demo's 128×128×96 phantom with the default model, one thread of a loaded 2-core
 * machine: the descriptors 7.5–9 s, once; then a click 0.34 s median round trip with local search
 * (0.15 s of it here) and 0.47 s with global search (0.30 s here).
 */
import { Generator, setNumThreads } from '../engine/index.ts';
import { checkField } from '../geometry/field.ts';
import { Volume, type Vec3, type VolumeInit } from '../geometry/volume.ts';
import {
  descriptorsAt,
  imageFeatures,
  matchFeatures,
  pairFeatures,
  similarityMaps,
  type FeatureGrid,
  type ImageFeatures,
} from '../methods/meddift/index.ts';
import { samplePercentiles } from '../util/stats.ts';
import { modelLoader } from '../cli/model.ts';
import type { FromViewer, ToViewer, VolumeMessage } from './correspond.ts';

/**
 * Largest similarity map sent per click (voxels). A clinical CT has some 30 million voxels: its full
 * map would take seconds to score and 120 MB to send, while the map is only looked at, so larger
 * images get a coarser map over the same extent.
 */
const MAP_VOXELS = 1 << 20;

if (!process.send) throw new Error('correspond-process: run by the viewer (child_process.fork)');

function send(message: ToViewer): void {
  process.send!(message);
}

const volumeOf = (m: VolumeMessage) => new Volume(m as VolumeInit);

function message(volume: Volume<Float32Array>): VolumeMessage {
  const { data, dims, spacing, origin, direction } = volume;
  return { data, dims, spacing, origin, direction };
}

/**
 * The similarity map of one query descriptor over the moving image, as a volume on the moving
 * descriptors' grid (or a coarser one of the same extent: the fused search samples the levels at
 * any grid's voxel centres, align_corners false, so a smaller shape is the same map, less finely).
 */
function similarityVolume(f: ImageFeatures, m: ImageFeatures, point: Vec3): Volume<Float32Array> {
  const full = m.grid.shape;
  const scale = Math.min(1, Math.cbrt(MAP_VOXELS / (full[0] * full[1] * full[2])));
  const shape = full.map((n) => Math.max(1, Math.round(n * scale))) as Vec3;
  const stretch = shape.map((n, a) => full[a] / n) as Vec3;
  const grid: FeatureGrid = { ...m.grid, shape };
  const query = descriptorsAt(f.grid, [f.volume.worldToVoxel(point)]);
  let values: Float32Array;
  try {
    values = similarityMaps(query, grid)[0];
  } finally {
    query.dispose();
  }
  // similarityMaps is C order (last axis fastest); a Volume stores the first axis fastest.
  const [w, h, d] = shape;
  const data = new Float32Array(values.length);
  for (let i = 0, t = 0; i < w; i++)
    for (let j = 0; j < h; j++) for (let k = 0; k < d; k++, t++) data[i + w * (j + h * k)] = values[t];
  return new Volume({
    data,
    dims: shape,
    spacing: m.volume.spacing.map((s, a) => s * stretch[a]) as Vec3,
    origin: m.volume.voxelToWorld(stretch.map((s) => 0.5 * s - 0.5) as Vec3),
    direction: m.volume.direction,
  });
}

/**
 * The display range of a similarity map: from its 99.5th percentile (from a subsample of at most
 * 100,000 voxels) to its largest value, so the peak and its rivals show and the rest of the image
 * stays clear — a model's similarities can crowd near 1 everywhere.
 */
function mapWindow(values: Float32Array): [number, number] {
  let max = -Infinity;
  for (const v of values) if (v > max) max = v;
  const [lo] = samplePercentiles(values, [99.5], 100_000);
  return [lo, max > lo ? max : lo + 1e-6];
}

let pair: ReturnType<typeof open> | undefined;
let descriptors: [ImageFeatures, ImageFeatures] | undefined;

function open(m: Extract<FromViewer, { type: 'open' }>) {
  if (m.threads !== undefined) setNumThreads(m.threads);
  const model = modelLoader(m.model)();
  const fixed = volumeOf(m.fixed);
  const moving = volumeOf(m.moving);
  const field = m.field && checkField(new Volume({ ...(m.field as VolumeInit), components: 3 }));
  return { model, fixed, moving, field, radiusMm: m.radiusMm };
}

function describe(p: NonNullable<typeof pair>): [ImageFeatures, ImageFeatures] {
  const stages = ['fixed image', 'moving image'];
  return pairFeatures(p.fixed, p.moving, (volume, subject, side) => {
    send({ type: 'progress', stage: `descriptors of the ${stages[side]}`, done: side, total: 2 });
    return imageFeatures(p.model, volume, { generator: new Generator(side) }, subject);
  });
}

function match(p: NonNullable<typeof pair>, id: number, point: Vec3): void {
  descriptors ??= describe(p);
  const [f, m] = descriptors;
  send({ type: 'progress', stage: 'ready', done: 2, total: 2 });
  const started = performance.now();
  const local = p.field !== undefined;
  const [found] = matchFeatures(f, m, [point], p.moving, {
    search: local ? 'local' : 'global',
    radiusMm: p.radiusMm,
    initial: local ? { kind: 'field', field: p.field! } : undefined,
  });
  const map = similarityVolume(f, m, point);
  const window = mapWindow(map.data);
  const seconds = (performance.now() - started) / 1000;
  send({
    type: 'match',
    id,
    match: found,
    search: local ? 'local' : 'global',
    seconds,
    map: message(map),
    mapWindow: window,
  });
}

process.on('message', (m: FromViewer) => {
  try {
    if (m.type === 'open') {
      pair = open(m);
      send({ type: 'ready' });
    } else {
      if (!pair) throw new Error('correspond-process: match before open');
      match(pair, m.id, m.point);
    }
  } catch (e) {
    send({ type: 'error', id: m.type === 'match' ? m.id : undefined, message: (e as Error).message });
  }
});
// The viewer gone (closed, or killed without closing us), nothing is left to answer.
process.on('disconnect', () => process.exit(0));

/**
 * A procedurally generated thorax CT phantom (Hounsfield units) with known landmarks: body with a fat
 * layer, two lungs with branching vessel trees, heart, aorta, spine, sternum and ribs, plus noise.
 * Landmarks are vessel branch points inside the lungs, the kind of point that lung-registration
 * benchmarks (DIR-Lab, Learn2Reg) annotate. Deterministic for a given seed.
 *
 * Geometry: LPS world, identity direction; world (0,0,0) is the centre of the volume.
 * Patient frame used below: x toward patient left, y toward posterior, z toward superior (mm).
 */
import { Random } from '../geometry/random.ts';
import { Volume, type Vec3 } from '../geometry/volume.ts';

export interface PhantomOptions {
  dims?: Vec3;
  spacing?: Vec3;
  seed?: number;
  /** Standard deviation of the voxel noise in HU. */
  noiseHU?: number;
  /** Depth of each lung's vessel tree (number of branching generations). */
  vesselGenerations?: number;
}

export interface ThoraxPhantom {
  image: Volume<Int16Array>;
  /** 1 inside the lungs (vessels included), 0 elsewhere. */
  lungMask: Volume<Uint8Array>;
  /** Vessel branch points in LPS world mm, well inside the lungs. */
  landmarks: Vec3[];
}

interface Segment {
  a: Vec3;
  b: Vec3;
  radius: number;
}

const HU = {
  air: -1000,
  lung: -860,
  fat: -100,
  tissue: 40,
  blood: 45,
  contrast: 160,
  vessel: 30,
  bone: 650,
  marrow: 220,
};

export function makeThoraxPhantom(options: PhantomOptions = {}): ThoraxPhantom {
  const dims = options.dims ?? [128, 128, 96];
  const spacing = options.spacing ?? [2.6, 2.6, 3.2];
  const rng = new Random(options.seed ?? 1);
  const noise = options.noiseHU ?? 12;
  const generations = options.vesselGenerations ?? 6;
  const [nx, ny, nz] = dims;
  const origin: Vec3 = [
    (-(nx - 1) * spacing[0]) / 2,
    (-(ny - 1) * spacing[1]) / 2,
    (-(nz - 1) * spacing[2]) / 2,
  ];
  const zTop = ((nz - 1) * spacing[2]) / 2;

  // Shape parameters with a little per-seed variation.
  const jitter = (v: number, rel = 0.05) => v * (1 + rel * (2 * rng.uniform() - 1));
  const body = { a: jitter(150), b: jitter(108) };
  const lungs = [
    { c: [-62, 2, 8] as Vec3, r: [jitter(50), jitter(70), jitter(0.78 * zTop + 40)] as Vec3 },
    { c: [64, 6, 8] as Vec3, r: [jitter(46), jitter(68), jitter(0.76 * zTop + 40)] as Vec3 },
  ];
  const diaphragmApex = -0.55 * zTop;
  const heart = { c: [24, -30, diaphragmApex + 38] as Vec3, r: [52, 44, 48] as Vec3 };

  const insideLung = (x: number, y: number, z: number): boolean => {
    if (z < diaphragmApex + 0.0035 * (x * x + (y + 10) * (y + 10)) - 20) return false;
    for (const l of lungs) {
      const dx = (x - l.c[0]) / l.r[0];
      const dy = (y - l.c[1]) / l.r[1];
      const dz = (z - l.c[2]) / l.r[2];
      if (dx * dx + dy * dy + dz * dz < 1) {
        const hx = (x - heart.c[0]) / heart.r[0];
        const hy = (y - heart.c[1]) / heart.r[1];
        const hz = (z - heart.c[2]) / heart.r[2];
        return hx * hx + hy * hy + hz * hz >= 1.15;
      }
    }
    return false;
  };

  const n = nx * ny * nz;
  const hu = new Float32Array(n);
  const lungMask = new Uint8Array(n);
  for (let k = 0; k < nz; k++) {
    const z = origin[2] + k * spacing[2];
    for (let j = 0; j < ny; j++) {
      const y = origin[1] + j * spacing[1];
      for (let i = 0; i < nx; i++) {
        const x = origin[0] + i * spacing[0];
        const o = i + nx * (j + ny * k);
        const e = (x / body.a) ** 2 + (y / body.b) ** 2;
        let v: number = HU.air;
        if (e < 1) {
          v = e > 0.84 ? HU.fat : HU.tissue;
          if (insideLung(x, y, z)) {
            v = HU.lung;
            lungMask[o] = 1;
          }
          const hx = (x - heart.c[0]) / heart.r[0];
          const hy = (y - heart.c[1]) / heart.r[1];
          const hz = (z - heart.c[2]) / heart.r[2];
          const h = hx * hx + hy * hy + hz * hz;
          if (h < 1) v = h < 0.55 ? HU.blood : HU.tissue + 15;
          // Descending aorta left of the spine, aortic arch above the heart.
          if ((x - 18) ** 2 + (y - 42) ** 2 < 11 ** 2 && z < 0.55 * zTop) v = HU.contrast;
          // Vertebral bodies with discs, and the spinal canal behind them.
          const vertebra = ((z + 1000) % 27) / 27;
          if (x * x + (y - 72) ** 2 < 17 ** 2) {
            v = vertebra < 0.82 ? (x * x + (y - 72) ** 2 < 13 ** 2 ? HU.marrow : HU.bone) : HU.tissue + 40;
          } else if (x * x + (y - 96) ** 2 < 7 ** 2) v = HU.tissue;
          else if (Math.abs(x) < 9 && y > 88 && y < 112 && vertebra < 0.82) v = HU.bone;
          // Sternum.
          if (Math.abs(x) < 13 && Math.abs(y + body.b - 14) < 5 && z > -0.3 * zTop && z < 0.7 * zTop)
            v = HU.bone;
        }
        hu[o] = v;
      }
    }
  }

  const rasterize = (segments: Segment[], value: number, onlyLung: boolean) => {
    for (const s of segments) {
      const lo = [0, 1, 2].map((a) =>
        Math.max(0, Math.floor((Math.min(s.a[a], s.b[a]) - s.radius - 2 - origin[a]) / spacing[a])),
      );
      const hi = [0, 1, 2].map((a) =>
        Math.min(dims[a] - 1, Math.ceil((Math.max(s.a[a], s.b[a]) + s.radius + 2 - origin[a]) / spacing[a])),
      );
      const d = [s.b[0] - s.a[0], s.b[1] - s.a[1], s.b[2] - s.a[2]];
      const len2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2] || 1;
      for (let k = lo[2]; k <= hi[2]; k++) {
        const z = origin[2] + k * spacing[2];
        for (let j = lo[1]; j <= hi[1]; j++) {
          const y = origin[1] + j * spacing[1];
          for (let i = lo[0]; i <= hi[0]; i++) {
            const o = i + nx * (j + ny * k);
            if (onlyLung && !lungMask[o]) continue;
            const x = origin[0] + i * spacing[0];
            const t = Math.max(
              0,
              Math.min(1, ((x - s.a[0]) * d[0] + (y - s.a[1]) * d[1] + (z - s.a[2]) * d[2]) / len2),
            );
            const px = x - s.a[0] - t * d[0];
            const py = y - s.a[1] - t * d[1];
            const pz = z - s.a[2] - t * d[2];
            // Partial-volume profile: full value inside the radius, linear fall-off over one voxel.
            const dist = Math.sqrt(px * px + py * py + pz * pz);
            const w = Math.max(0, Math.min(1, s.radius + 0.5 * spacing[0] - dist) / spacing[0]);
            if (w > 0) hu[o] = Math.max(hu[o], hu[o] + w * (value - hu[o]));
          }
        }
      }
    }
  };

  // Vessel trees: from each hilum, branching outward and downward; branch points become landmarks.
  const vessels: Segment[] = [];
  const branchPoints: Vec3[] = [];
  const grow = (start: Vec3, dir: Vec3, length: number, radius: number, generation: number) => {
    const end: Vec3 = [start[0] + dir[0] * length, start[1] + dir[1] * length, start[2] + dir[2] * length];
    vessels.push({ a: start, b: end, radius });
    if (generation >= generations || !insideLung(...end)) return;
    if (generation >= 1) branchPoints.push(end);
    for (const sign of [-1, 1]) {
      const angle = (0.45 + 0.25 * rng.uniform()) * sign;
      const child = rotate(dir, angle, rng);
      grow(end, child, length * (0.72 + 0.1 * rng.uniform()), Math.max(0.9, radius * 0.72), generation + 1);
    }
  };
  for (const side of [-1, 1]) {
    const hilum: Vec3 = [side * 30, 4, 0.15 * zTop];
    for (const d of [
      [side * 0.8, 0.1, 0.6],
      [side * 0.85, -0.2, -0.5],
      [side * 0.6, 0.5, -0.2],
    ] as Vec3[]) {
      grow(hilum, normalize(d), 26 + 6 * rng.uniform(), 4.2, 0);
    }
  }
  rasterize(vessels, HU.vessel, true);

  // Ribs: arcs following the body wall, sloping down toward the front.
  const ribs: Segment[] = [];
  for (let z0 = -0.5 * zTop; z0 < 0.85 * zTop; z0 += 24) {
    let prev: Vec3 | undefined;
    for (const side of [-1, 1]) {
      prev = undefined;
      for (let t = 0.1; t <= 2.3; t += 0.12) {
        const theta = Math.PI / 2 - side * t; // starts posterior (y > 0), runs around to the front
        const p: Vec3 = [0.9 * body.a * Math.cos(theta), 0.88 * body.b * Math.sin(theta), z0 - 9 * t];
        if (prev) ribs.push({ a: prev, b: p, radius: 4.5 });
        prev = p;
      }
    }
  }
  rasterize(ribs, HU.bone, false);

  const data = new Int16Array(n);
  for (let o = 0; o < n; o++) {
    const v = hu[o] + (hu[o] > -990 ? noise * rng.gaussian() : 0);
    data[o] = Math.max(-1024, Math.min(3071, Math.round(v)));
  }

  const image = new Volume({ data, dims, spacing, origin });
  // Keep only branch points at least 6 mm inside the lung, so matches are well defined.
  const landmarks = branchPoints.filter((p) => {
    for (const d of [
      [6, 0, 0],
      [-6, 0, 0],
      [0, 6, 0],
      [0, -6, 0],
      [0, 0, 6],
      [0, 0, -6],
    ]) {
      if (!insideLung(p[0] + d[0], p[1] + d[1], p[2] + d[2])) return false;
    }
    return true;
  });
  return { image, lungMask: image.withData(lungMask), landmarks };
}

function normalize(v: Vec3): Vec3 {
  const l = Math.hypot(v[0], v[1], v[2]) || 1;
  return [v[0] / l, v[1] / l, v[2] / l];
}

/** Rotates `dir` by `angle` radians about a random axis perpendicular to it. */
function rotate(dir: Vec3, angle: number, rng: Random): Vec3 {
  const r = normalize([rng.gaussian(), rng.gaussian(), rng.gaussian()]);
  const dot = r[0] * dir[0] + r[1] * dir[1] + r[2] * dir[2];
  const axis = normalize([r[0] - dot * dir[0], r[1] - dot * dir[1], r[2] - dot * dir[2]]);
  const c = Math.cos(angle);
  const s = Math.sin(angle);
  const cross: Vec3 = [
    axis[1] * dir[2] - axis[2] * dir[1],
    axis[2] * dir[0] - axis[0] * dir[2],
    axis[0] * dir[1] - axis[1] * dir[0],
  ];
  return normalize([dir[0] * c + cross[0] * s, dir[1] * c + cross[1] * s, dir[2] * c + cross[2] * s]);
}

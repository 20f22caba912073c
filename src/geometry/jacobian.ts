/**
 * Jacobian determinant of a displacement field: det(I + ∇u), the local volume ratio of the
 * transform x → x + u(x). Derivatives are taken in world mm: index-space differences mapped by
 * A⁻¹ (A = direction·diag(spacing)), so the zero field gives exactly 1 for any spacing and direction.
 */
import { checkField, type DisplacementField } from './field.ts';
import type { Volume } from './volume.ts';

/**
 * det(I + ∇u) at every voxel. Central differences inside; one-sided (forward/backward) differences
 * on the first and last voxel of each axis, so every voxel gets a value and a field that is affine
 * in x gives its exact determinant everywhere. An axis of length 1 has zero derivative.
 */
export function jacobianDeterminant(field: DisplacementField): Volume<Float32Array> {
  checkField(field);
  const [nx, ny, nz] = field.dims;
  const n = field.size;
  const u = field.data;
  const out = new Float32Array(n);
  const [a0, a1, a2, a3, a4, a5, a6, a7, a8] = field.worldToIndexMatrix;
  const sj = nx;
  const sk = nx * ny;
  // Per axis: offsets to the next (hi) and previous (lo) voxel, and 1/(their distance in voxels).
  const step = (at: number, len: number, s: number): [number, number, number] => {
    const hi = at < len - 1 ? s : 0;
    const lo = at > 0 ? s : 0;
    return [hi, lo, hi + lo === 0 ? 0 : s / (hi + lo)];
  };
  let t = 0;
  for (let k = 0; k < nz; k++) {
    const [hk, lk, ck] = step(k, nz, sk);
    for (let j = 0; j < ny; j++) {
      const [hj, lj, cj] = step(j, ny, sj);
      for (let i = 0; i < nx; i++, t++) {
        const hi = i < nx - 1 ? 1 : 0;
        const lo = i > 0 ? 1 : 0;
        const ci = hi + lo === 0 ? 0 : 1 / (hi + lo);
        const x = t;
        const y = t + n;
        const z = t + 2 * n;
        // ∂u_c/∂index_a
        const xi = (u[x + hi] - u[x - lo]) * ci;
        const xj = (u[x + hj] - u[x - lj]) * cj;
        const xk = (u[x + hk] - u[x - lk]) * ck;
        const yi = (u[y + hi] - u[y - lo]) * ci;
        const yj = (u[y + hj] - u[y - lj]) * cj;
        const yk = (u[y + hk] - u[y - lk]) * ck;
        const zi = (u[z + hi] - u[z - lo]) * ci;
        const zj = (u[z + hj] - u[z - lj]) * cj;
        const zk = (u[z + hk] - u[z - lk]) * ck;
        // J = I + (∂u/∂index)·A⁻¹
        const j00 = 1 + xi * a0 + xj * a3 + xk * a6;
        const j01 = xi * a1 + xj * a4 + xk * a7;
        const j02 = xi * a2 + xj * a5 + xk * a8;
        const j10 = yi * a0 + yj * a3 + yk * a6;
        const j11 = 1 + yi * a1 + yj * a4 + yk * a7;
        const j12 = yi * a2 + yj * a5 + yk * a8;
        const j20 = zi * a0 + zj * a3 + zk * a6;
        const j21 = zi * a1 + zj * a4 + zk * a7;
        const j22 = 1 + zi * a2 + zj * a5 + zk * a8;
        out[t] =
          j00 * (j11 * j22 - j12 * j21) - j01 * (j10 * j22 - j12 * j20) + j02 * (j10 * j21 - j11 * j20);
      }
    }
  }
  return field.withData(out);
}

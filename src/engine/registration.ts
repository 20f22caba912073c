/**
 * Fused kernels of dense registration on descriptor lattices (native/ops_registration.cc), for
 * ConvexAdam: the SSD cost of every integer displacement in a cube, the coupled argmin over those
 * candidates, and the warped SSD data term with its gradient. Descriptors are (C, w, h, d) float32 on
 * one lattice; displacements (3, w, h, d) in lattice voxels, component a along axis a.
 */
import { integer, invalid, number } from '../util/is.ts';
import { intList } from './check.ts';
import { N } from './native.ts';
import { stack } from './ops.ts';
import { tidy } from './scope.ts';
import { Tensor, arange } from './tensor.ts';

function lattices(fixed: Tensor, moving: Tensor): void {
  if (fixed.ndim !== 4) throw invalid('fixed descriptors', 'a (C, w, h, d) tensor', fixed.toString());
  if (moving.ndim !== 4 || moving.shape.some((n, i) => n !== fixed.shape[i]))
    throw invalid(
      'moving descriptors',
      `a tensor of the fixed shape [${fixed.shape.join(', ')}]`,
      moving.toString(),
    );
}

/**
 * (w, h, d, K), K = (2r + 1)³: Σ_c (moving[c, p + d_k] − fixed[c, p])² for the displacements d_k of the
 * cube [−r, r]³ in C order (moving replicated beyond its border).
 */
export function ssdCostVolume(fixed: Tensor, moving: Tensor, radius: number): Tensor {
  lattices(fixed, moving);
  const r = integer('cost radius', radius, { min: 0, max: 16 });
  return tidy(() => new Tensor(N.ssd_cost_volume(fixed.float().handle, moving.float().handle, r)));
}

/**
 * Per voxel, the displacement d_k of the cost's cube minimising cost_k + theta·‖d_k − smoothed‖² (plain
 * argmin without `smoothed`); the first such k among equal values. Returns (3, w, h, d).
 */
export function coupledArgmin(cost: Tensor, radius: number, smoothed?: Tensor, theta = 0): Tensor {
  const r = integer('cost radius', radius, { min: 0, max: 16 });
  number('coupling theta', theta, { min: 0 });
  return tidy(
    () => new Tensor(N.coupled_argmin(cost.handle, r, smoothed ? smoothed.float().handle : null, theta)),
  );
}

/** Fixed voxels on a sub-lattice of the moving lattice: fixed voxel p is moving voxel offset + stride·p. */
export interface SubLattice {
  offset: readonly number[];
  stride: readonly number[];
}

/**
 * mean((moving(x(p)) − fixed(p))²) over channels and fixed voxels, x(p) = p + u(p) (or offset +
 * stride·p + u(p) on a sub-lattice), moving read trilinearly with border clamping (grid_sample
 * bilinear, border, align_corners false), and its gradient with respect to u (3, fixed's w, h, d).
 */
export function warpedSsd(
  moving: Tensor,
  fixed: Tensor,
  displacement: Tensor,
  sub?: SubLattice,
): { loss: number; gradient: Tensor } {
  if (sub) {
    const offset = intList('sub-lattice offset', sub.offset, 0);
    const stride = intList('sub-lattice stride', sub.stride, 1);
    if (offset.length !== 3 || stride.length !== 3)
      throw invalid('sub-lattice', 'an offset and a stride of 3 integers each', sub);
    if (moving.ndim !== 4 || fixed.ndim !== 4 || moving.shape[0] !== fixed.shape[0])
      throw invalid('descriptors', '(C, w, h, d) tensors with the same channels', `${moving} and ${fixed}`);
  } else lattices(fixed, moving);
  return tidy(() => {
    const [loss, gradient] = N.warped_ssd(
      moving.float().handle,
      fixed.float().handle,
      displacement.handle,
      sub ? [...sub.offset] : null,
      sub ? [...sub.stride] : null,
    );
    return { loss: new Tensor(loss).item(), gradient: new Tensor(gradient) };
  });
}

/**
 * volume (C, w, h, d) read at `positions` (3, w', h', d'), given in voxels of the volume: trilinear, with
 * border clamping (grid_sample bilinear, border, align_corners false). Returns (C, w', h', d').
 */
export function sampleTrilinear(volume: Tensor, positions: Tensor): Tensor {
  if (volume.ndim !== 4) throw invalid('sampled volume', 'a (C, w, h, d) tensor', volume.toString());
  if (positions.ndim !== 4 || positions.shape[0] !== 3)
    throw invalid('sample positions', "a (3, w', h', d') tensor", positions.toString());
  return tidy(() => new Tensor(N.sample_trilinear(volume.float().handle, positions.float().handle)));
}

/**
 * Gradients of a loss L with respect to the volume and the positions of `sampleTrilinear`, given
 * ∂L/∂samples: the interpolation's adjoint, and its spatial derivative (0 where a position was clamped).
 */
export function sampleTrilinearBackward(
  volume: Tensor,
  positions: Tensor,
  gradient: Tensor,
): { volume: Tensor; positions: Tensor } {
  return tidy(() => {
    const [v, p] = N.sample_trilinear_backward(
      volume.float().handle,
      positions.float().handle,
      gradient.float().handle,
    );
    return { volume: new Tensor(v), positions: new Tensor(p) };
  });
}

function checkDisplacement(u: Tensor): void {
  if (u.ndim !== 4 || u.shape[0] !== 3)
    throw invalid('displacement', 'a (3, w, h, d) tensor in voxels', u.toString());
}

/**
 * u + u∘(id + u): one squaring of scaling and squaring (exp(v) = 2ⁿ such steps from v/2ⁿ), u read at
 * p + u(p) as `sampleTrilinear` reads it, in one fused pass.
 */
export function selfCompose(displacement: Tensor): Tensor {
  checkDisplacement(displacement);
  return tidy(() => new Tensor(N.self_compose(displacement.float().handle)));
}

/** ∂L/∂u given ∂L/∂selfCompose(u) = `gradient`: both ways u enters (the sampled field and the positions). */
export function selfComposeBackward(displacement: Tensor, gradient: Tensor): Tensor {
  checkDisplacement(displacement);
  if (!gradient.shape.every((n, a) => n === displacement.shape[a]) || gradient.ndim !== 4)
    throw invalid(
      'displacement gradient',
      `a (${displacement.shape.join(', ')}) tensor`,
      gradient.toString(),
    );
  return tidy(
    () => new Tensor(N.self_compose_backward(displacement.float().handle, gradient.float().handle)),
  );
}

/** The positions p + u(p) of a lattice (w, h, d) displaced by u (3, w, h, d), in voxels. */
export function displacedPositions(displacement: Tensor): Tensor {
  return tidy(() => {
    const shape = displacement.shape.slice(1);
    const axes = shape.map((n, a) => {
      const view = [1, 1, 1];
      view[a] = n;
      return arange(0, n, 1).reshape(view).expand(shape);
    });
    return stack(axes, 0).add(displacement);
  });
}

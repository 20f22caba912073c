/**
 * Registration losses with closed-form gradients, each one fused native kernel (native/ops_losses.cc)
 * without autograd's graph: VoxelMorph's local NCC (gradients with respect to both images) and the
 * folding hinge on det J. models/losses hands the gradients to autograd.
 *
 *   const { loss, gradA, gradB } = localNcc(fixed, warped, [9, 9, 3]);  // (V, W, H, D) each
 *   const { loss, gradient } = foldingHinge(u, 0.1, 8);                  // u (B, 3, w, h, d)
 */
import { intList } from './check.ts';
import { invalid, number } from '../util/is.ts';
import { N, type Handle } from './native.ts';
import { tidy } from './scope.ts';
import { Tensor } from './tensor.ts';

/**
 * −mean over volumes and voxels of cov² / (var_a·var_b + eps) of a and b (V, W, H, D), the moments
 * box means over `window` (odd voxels per axis) clipped to the grid; and its gradients (V, W, H, D).
 */
export function localNcc(
  a: Tensor,
  b: Tensor,
  window: readonly number[],
  eps = 1e-5,
): { loss: number; gradA: Tensor; gradB: Tensor } {
  if (a.ndim !== 4 || b.shape.join() !== a.shape.join())
    throw invalid('local NCC images', 'two (V, W, H, D) tensors of one shape', `${a} and ${b}`);
  const w = intList('local NCC window', window, 1);
  if (w.length !== 3 || w.some((v) => v % 2 === 0))
    throw invalid('local NCC window', 'three odd numbers of voxels', window);
  number('local NCC eps', eps, { min: 0 });
  return tidy(() => {
    const [loss, gradA, gradB] = N.local_ncc(
      a.detach().float().handle,
      b.detach().float().handle,
      w,
      eps,
    ) as [Handle, Handle, Handle];
    const value = new Tensor(loss);
    return { loss: value.item(), gradA: new Tensor(gradA), gradB: new Tensor(gradB) };
  });
}

/**
 * Σ max(0, margin − det J)² over the cells between 2 × 2 × 2 voxels of u (B, 3, w, h, d, in voxels),
 * J = I + ∇u from the cell's edges: at its first voxel (forward differences; `corners` 1) or the mean
 * over its eight corners (the trilinear field's Jacobians there; `corners` 8); and its gradient.
 */
export function foldingHinge(
  u: Tensor,
  margin: number,
  corners: 1 | 8 = 1,
): { loss: number; gradient: Tensor } {
  if (u.ndim !== 5 || u.shape[1] !== 3 || u.shape.slice(2).some((n) => n < 2))
    throw invalid(
      'folding displacement',
      'a (B, 3, w, h, d) tensor with 2 or more voxels per axis',
      u.toString(),
    );
  number('folding margin', margin);
  if (corners !== 1 && corners !== 8) throw invalid('folding corners', '1 or 8', corners);
  return tidy(() => {
    const [loss, gradient] = N.folding_hinge(u.detach().float().handle, margin, corners) as [Handle, Handle];
    return { loss: new Tensor(loss).item(), gradient: new Tensor(gradient) };
  });
}

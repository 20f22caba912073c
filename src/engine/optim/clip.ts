/** Gradient clipping (torch.nn.utils.clip_grad_norm_). */
import { number as num } from '../../util/is.ts';
import { noGrad } from '../autograd.ts';
import { stack } from '../ops.ts';
import { tidy } from '../scope.ts';
import type { Tensor } from '../tensor.ts';

/**
 * Scales the gradients of `params` in place so that their joint p-norm is at most `maxNorm`; returns
 * the norm before clipping. `normType` may be Infinity (largest absolute entry).
 */
export function clipGradNorm(params: Tensor[], maxNorm: number, normType = 2): number {
  const max = num('maxNorm', maxNorm, { min: 0 });
  const p = normType === Infinity ? Infinity : num('normType', normType, { min: 0, exclusiveMin: true });
  return noGrad(() =>
    tidy(() => {
      const grads = params.map((t) => t.grad).filter((g): g is Tensor => g !== null);
      if (grads.length === 0) return 0;
      const norms = grads.map((g) => (p === Infinity ? g.abs().amax() : g.norm(p)));
      const total = (p === Infinity ? stack(norms).amax() : stack(norms).norm(p)).item();
      const coef = max / (total + 1e-6);
      if (coef < 1) for (const g of grads) g.mul_(coef);
      return total;
    }),
  );
}

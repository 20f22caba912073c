/** Grad-mode scopes and functional gradients (torch.no_grad, torch.enable_grad, torch.autograd.grad). */
import { bool } from '../util/is.ts';
import { N } from './native.ts';
import { tidy } from './scope.ts';
import { Tensor, tensor } from './tensor.ts';

function withGrad<T>(on: boolean, fn: () => T): T {
  const before = N.set_grad_enabled(on);
  try {
    return fn();
  } finally {
    N.set_grad_enabled(before);
  }
}

/** Runs `fn` without recording autograd history (synchronous; async ops started inside inherit it). */
export function noGrad<T>(fn: () => T): T {
  return withGrad(false, fn);
}

/** Runs `fn` with autograd recording on, also inside a noGrad scope. */
export function enableGrad<T>(fn: () => T): T {
  return withGrad(true, fn);
}

export function isGradEnabled(): boolean {
  return N.is_grad_enabled();
}

export interface GradOptions {
  gradOutputs?: Tensor[];
  retainGraph?: boolean;
  createGraph?: boolean;
  /** Return null for inputs the outputs do not depend on (otherwise that is an error). */
  allowUnused?: boolean;
}

/** Gradients of `outputs` with respect to `inputs`, without touching `.grad` (torch.autograd.grad). */
export function grad(
  outputs: Tensor | Tensor[],
  inputs: Tensor | Tensor[],
  opts: GradOptions = {},
): (Tensor | null)[] {
  const outs = Array.isArray(outputs) ? outputs : [outputs];
  const ins = Array.isArray(inputs) ? inputs : [inputs];
  const create = bool('createGraph', opts.createGraph ?? false);
  const result = N.autograd_grad(
    outs.map((t) => t.handle),
    ins.map((t) => t.handle),
    opts.gradOutputs ? opts.gradOutputs.map((t) => t.handle) : null,
    bool('retainGraph', opts.retainGraph ?? create),
    create,
    bool('allowUnused', opts.allowUnused ?? false),
  );
  return result.map((h) => (h === null ? null : new Tensor(h)));
}

/**
 * A scalar holding `value` whose gradient with respect to each x of `inputs` is its given g: a loss
 * computed outside autograd (a fused kernel with a closed-form gradient) joined to the graph. Σ x·g
 * carries the gradient and its value is taken out again; inputs needing no gradient are skipped.
 */
export function scalarWithGradient(value: number, inputs: readonly [Tensor, Tensor][]): Tensor {
  return tidy(() => {
    const constant = tensor(value);
    const linear = inputs
      .filter(([x]) => isGradEnabled() && x.requiresGrad)
      .map(([x, g]) => x.mul(g.reshape(...x.shape)).sum());
    if (linear.length === 0) return constant;
    const sum = linear.reduce((s, t) => s.add(t));
    return sum.sub(sum.detach()).add(constant);
  });
}

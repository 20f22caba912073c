/**
 * Optimisers with torch.optim's update formulas (PyTorch 1.13, single-tensor path), applied with
 * in-place tensor ops under no-grad. State dicts use PyTorch's layout and key names
 * ({ state: { <param index>: { step, exp_avg, ... } }, param_groups: [{ lr, betas, weight_decay, ...,
 * params: [indices] }] }) so that a run resumes exactly.
 */
import { DiffregError } from '../../util/errors.ts';
import { bool, invalid, number as num } from '../../util/is.ts';
import { noGrad } from '../autograd.ts';
import { tidy } from '../scope.ts';
import { Tensor, zerosLike } from '../tensor.ts';

export type Hyper = Record<string, number | boolean | number[]>;
export type ParamGroup<H extends Hyper> = H & { params: Tensor[] };
/** Parameters, or groups of parameters with their own hyperparameters (defaults fill the rest). */
export type ParamsInput<H extends Hyper> = Tensor[] | (Partial<H> & { params: Tensor[] })[];
export type StateEntry = Record<string, Tensor | number>;

export interface OptimizerStateDict {
  state: Record<string, StateEntry>;
  param_groups: (Record<string, number | boolean | number[]> & { params: number[] })[];
}

const snake = (k: string): string => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const camel = (k: string): string => k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

export abstract class Optimizer<H extends Hyper & { lr: number }> {
  readonly paramGroups: ParamGroup<H>[];
  protected readonly state = new Map<Tensor, StateEntry>();

  constructor(params: ParamsInput<H>, defaults: H) {
    if (!Array.isArray(params) || params.length === 0) throw invalid('params', 'a non-empty list', params);
    const groups =
      params[0] instanceof Tensor ? [{ params: params as Tensor[] }] : (params as ParamGroup<H>[]);
    const seen = new Set<Tensor>();
    this.paramGroups = groups.map((g, i) => {
      if (!Array.isArray(g.params) || !g.params.every((p) => p instanceof Tensor)) {
        throw invalid(`param group ${i} params`, 'a list of tensors', g.params);
      }
      for (const p of g.params) {
        if (seen.has(p))
          throw new DiffregError(`optimizer: a parameter appears in more than one group (group ${i})`);
        seen.add(p);
      }
      const group = { ...defaults, ...g, params: [...g.params] } as ParamGroup<H>;
      this.validate(group, `param group ${i}`);
      return group;
    });
  }

  /** Checks a group's hyperparameters (messages name the group). */
  protected abstract validate(group: H, where: string): void;

  /** Updates one parameter in place from its gradient (called under no-grad, inside tidy). */
  protected abstract update(p: Tensor, grad: Tensor, group: H, state: StateEntry): void;

  /** One optimisation step over every parameter that has a gradient. */
  step(): void {
    noGrad(() =>
      tidy(() => {
        for (const group of this.paramGroups) {
          for (const p of group.params) {
            const g = p.grad;
            if (g === null) continue;
            let st = this.state.get(p);
            if (st === undefined) {
              st = {};
              this.state.set(p, st);
            }
            this.update(p, g, group, st);
          }
        }
      }),
    );
  }

  /** A state tensor owned by the optimiser (kept out of tidy scopes). */
  protected zeroState(p: Tensor): Tensor {
    return zerosLike(p).keep();
  }

  /** Drops the gradients of every parameter. */
  zeroGrad(): void {
    for (const g of this.paramGroups) for (const p of g.params) p.zeroGrad();
  }

  /** PyTorch-layout state; tensors are the optimiser's own (save them, do not dispose them). */
  stateDict(): OptimizerStateDict {
    const state: Record<string, StateEntry> = {};
    const param_groups: OptimizerStateDict['param_groups'] = [];
    let index = 0;
    for (const group of this.paramGroups) {
      const ids: number[] = [];
      for (const p of group.params) {
        const st = this.state.get(p);
        if (st !== undefined) state[String(index)] = { ...st };
        ids.push(index++);
      }
      const hyper: Record<string, number | boolean | number[]> = {};
      for (const [k, v] of Object.entries(group))
        if (k !== 'params') hyper[snake(k)] = v as number | boolean | number[];
      param_groups.push({ ...hyper, params: ids });
    }
    return { state, param_groups };
  }

  /** Restores hyperparameters and state (tensors are copied, so `sd` may be disposed afterwards). */
  loadStateDict(sd: OptimizerStateDict): void {
    if (sd.param_groups.length !== this.paramGroups.length) {
      throw new DiffregError(
        `optimizer.loadStateDict: ${sd.param_groups.length} param groups in the state, the optimiser has ${this.paramGroups.length}`,
      );
    }
    const byIndex = new Map<string, Tensor>();
    sd.param_groups.forEach((saved, i) => {
      const group = this.paramGroups[i];
      if (saved.params.length !== group.params.length) {
        throw new DiffregError(
          `optimizer.loadStateDict: param group ${i} has ${saved.params.length} parameters in the state, ${group.params.length} here`,
        );
      }
      saved.params.forEach((id, j) => byIndex.set(String(id), group.params[j]));
    });
    for (const [i, saved] of sd.param_groups.entries()) {
      const next = { ...this.paramGroups[i] } as Record<string, unknown>;
      for (const [k, v] of Object.entries(saved)) if (k !== 'params') next[camel(k)] = v;
      this.validate(next as H, `param group ${i}`);
    }
    for (const [i, saved] of sd.param_groups.entries()) {
      const group = this.paramGroups[i] as Record<string, unknown>;
      for (const [k, v] of Object.entries(saved))
        if (k !== 'params') group[camel(k)] = Array.isArray(v) ? [...v] : v;
    }
    this.disposeState();
    for (const [id, entry] of Object.entries(sd.state)) {
      const p = byIndex.get(id);
      if (p === undefined)
        throw new DiffregError(`optimizer.loadStateDict: state for unknown parameter index ${id}`);
      const copy: StateEntry = {};
      for (const [k, v] of Object.entries(entry))
        copy[k] = v instanceof Tensor ? v.detach().clone().keep() : v;
      this.state.set(p, copy);
    }
  }

  #stateTensors(): Tensor[] {
    return [...this.state.values()].flatMap((st) =>
      Object.values(st).filter((v): v is Tensor => v instanceof Tensor),
    );
  }

  private disposeState(): void {
    for (const t of this.#stateTensors()) t.dispose();
    this.state.clear();
  }

  /** Frees the optimiser state (moment buffers). */
  dispose(): void {
    this.disposeState();
  }
}

// ------------------------------------------------------------------ SGD
export type SGDOptions = {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  maximize: boolean;
};

export class SGD extends Optimizer<SGDOptions> {
  constructor(params: ParamsInput<SGDOptions>, opts: Partial<SGDOptions> & { lr: number }) {
    super(params, { momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false, ...opts });
  }

  protected validate(g: SGDOptions, where: string): void {
    num(`${where} lr`, g.lr, { min: 0 });
    num(`${where} momentum`, g.momentum, { min: 0 });
    num(`${where} dampening`, g.dampening);
    num(`${where} weightDecay`, g.weightDecay, { min: 0 });
    bool(`${where} maximize`, g.maximize);
    if (bool(`${where} nesterov`, g.nesterov) && (g.momentum <= 0 || g.dampening !== 0)) {
      throw invalid(`${where} nesterov`, 'momentum > 0 and dampening 0 with nesterov', true);
    }
  }

  protected update(p: Tensor, grad: Tensor, g: SGDOptions, st: StateEntry): void {
    let d = g.maximize ? grad.neg() : grad;
    if (g.weightDecay !== 0) d = d.add(p, g.weightDecay);
    if (g.momentum !== 0) {
      let buf = st.momentum_buffer as Tensor | undefined;
      if (buf === undefined) {
        buf = d.clone().keep();
        st.momentum_buffer = buf;
      } else {
        buf.mul_(g.momentum).add_(d, 1 - g.dampening);
      }
      d = g.nesterov ? d.add(buf, g.momentum) : buf;
    }
    p.add_(d, -g.lr);
  }
}

// ------------------------------------------------------------------ Adam / AdamW
export type AdamOptions = {
  lr: number;
  betas: number[];
  eps: number;
  weightDecay: number;
  amsgrad: boolean;
  maximize: boolean;
};

abstract class AdamBase extends Optimizer<AdamOptions> {
  protected abstract readonly decoupled: boolean;

  protected validate(g: AdamOptions, where: string): void {
    num(`${where} lr`, g.lr, { min: 0 });
    if (
      !Array.isArray(g.betas) ||
      g.betas.length !== 2 ||
      !g.betas.every((b) => Number.isFinite(b) && b >= 0 && b < 1)
    ) {
      throw invalid(`${where} betas`, 'two numbers in [0, 1)', g.betas);
    }
    num(`${where} eps`, g.eps, { min: 0 });
    num(`${where} weightDecay`, g.weightDecay, { min: 0 });
    bool(`${where} amsgrad`, g.amsgrad);
    bool(`${where} maximize`, g.maximize);
  }

  protected update(p: Tensor, grad: Tensor, g: AdamOptions, st: StateEntry): void {
    const [b1, b2] = g.betas;
    if (st.step === undefined) {
      st.step = 0;
      st.exp_avg = this.zeroState(p);
      st.exp_avg_sq = this.zeroState(p);
      if (g.amsgrad) st.max_exp_avg_sq = this.zeroState(p);
    }
    const step = (st.step as number) + 1;
    st.step = step;
    let d = g.maximize ? grad.neg() : grad;
    if (g.weightDecay !== 0) {
      if (this.decoupled) p.mul_(1 - g.lr * g.weightDecay);
      else d = d.add(p, g.weightDecay);
    }
    const m = st.exp_avg as Tensor;
    const v = st.exp_avg_sq as Tensor;
    m.mul_(b1).add_(d, 1 - b1);
    v.mul_(b2).addcmul_(d, d, 1 - b2);
    const stepSize = g.lr / (1 - b1 ** step);
    const bc2Sqrt = Math.sqrt(1 - b2 ** step);
    let second = v;
    if (g.amsgrad) second = (st.max_exp_avg_sq as Tensor).maximum_(v);
    const denom = second.sqrt().div_(bc2Sqrt).add_(g.eps);
    p.addcdiv_(m, denom, -stepSize);
  }
}

const ADAM_DEFAULTS: AdamOptions = {
  lr: 1e-3,
  betas: [0.9, 0.999],
  eps: 1e-8,
  weightDecay: 0,
  amsgrad: false,
  maximize: false,
};

/** Adam; weight decay (default 0) is added to the gradient (L2 penalty). */
export class Adam extends AdamBase {
  protected readonly decoupled = false;
  constructor(params: ParamsInput<AdamOptions>, opts: Partial<AdamOptions> = {}) {
    super(params, { ...ADAM_DEFAULTS, ...opts });
  }
}

/** AdamW: decoupled weight decay (default 0.01) applied to the parameters before the Adam step. */
export class AdamW extends AdamBase {
  protected readonly decoupled = true;
  constructor(params: ParamsInput<AdamOptions>, opts: Partial<AdamOptions> = {}) {
    super(params, { ...ADAM_DEFAULTS, weightDecay: 1e-2, ...opts });
  }
}

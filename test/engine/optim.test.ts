import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, Tensor, nn, optim, randn, tensor, tidy } from '../../src/engine/index.ts';

const close = (a: number[], b: number[], tol = 1e-6): void => {
  assert.equal(a.length, b.length);
  a.forEach((v, i) =>
    assert.ok(Math.abs(v - b[i]) <= tol * Math.max(1, Math.abs(b[i])), `[${i}] ${v} vs ${b[i]}`),
  );
};

/** Sets p.grad to the gradient of sum(p · c) = c (a constant gradient). */
function constantGrad(p: Tensor, c: number[]): void {
  p.zeroGrad();
  tidy(() => p.mul(tensor(c)).sum().backward());
}

test('SGD with momentum and weight decay: two steps by hand', () => {
  const p = tensor([1, 2]).requiresGrad_();
  const opt = new optim.SGD([p], { lr: 0.1, momentum: 0.9, weightDecay: 0.1 });
  const c = [0.5, -1];
  constantGrad(p, c);
  opt.step();
  // d = c + 0.1 p = [0.6, -0.8]; buf = d; p -= 0.1 d.
  close(p.toArray(), [0.94, 2.08]);
  constantGrad(p, c);
  opt.step();
  // d = [0.594, -0.792]; buf = 0.9 [0.6, -0.8] + d = [1.134, -1.512]; p -= 0.1 buf.
  close(p.toArray(), [0.8266, 2.2312]);
});

/** Naive float64 reference of torch.optim (1.13) for one scalar parameter under a constant gradient. */
function reference(
  kind: 'sgd' | 'adam' | 'adamw',
  o: Record<string, number | boolean>,
  p0: number,
  g: number,
  steps: number,
): number {
  let p = p0;
  let buf: number | undefined;
  let m = 0;
  let v = 0;
  let vmax = 0;
  const lr = o.lr as number;
  const wd = (o.weightDecay as number) ?? 0;
  for (let t = 1; t <= steps; t++) {
    let d = o.maximize ? -g : g;
    if (kind === 'sgd') {
      if (wd) d += wd * p;
      const mom = (o.momentum as number) ?? 0;
      if (mom) {
        buf = buf === undefined ? d : mom * buf + (1 - ((o.dampening as number) ?? 0)) * d;
        d = o.nesterov ? d + mom * buf : buf;
      }
      p -= lr * d;
      continue;
    }
    const [b1, b2] = [0.9, 0.999];
    if (kind === 'adamw') p *= 1 - lr * wd;
    else if (wd) d += wd * p;
    m = b1 * m + (1 - b1) * d;
    v = b2 * v + (1 - b2) * d * d;
    vmax = Math.max(vmax, v);
    const denom = Math.sqrt(o.amsgrad ? vmax : v) / Math.sqrt(1 - b2 ** t) + 1e-8;
    p -= (lr / (1 - b1 ** t)) * (m / denom);
  }
  return p;
}

test('SGD (nesterov, dampening, maximize), Adam, AdamW, AMSGrad match a naive reference over 5 steps', () => {
  const cases: ['sgd' | 'adam' | 'adamw', Record<string, number | boolean>][] = [
    ['sgd', { lr: 0.05, momentum: 0.8, nesterov: true, weightDecay: 0.01 }],
    ['sgd', { lr: 0.05, momentum: 0.5, dampening: 0.3, maximize: true }],
    ['adam', { lr: 0.01 }],
    ['adam', { lr: 0.01, weightDecay: 0.1, amsgrad: true }],
    ['adamw', { lr: 0.01, weightDecay: 0.1 }],
  ];
  // Gradients of different signs and sizes, including one that changes (amsgrad keeps the max).
  for (const [kind, o] of cases) {
    const p = tensor([1, -2, 0.5]).requiresGrad_();
    const opt =
      kind === 'sgd'
        ? new optim.SGD([p], o as { lr: number })
        : kind === 'adam'
          ? new optim.Adam([p], o)
          : new optim.AdamW([p], o);
    const c = [0.3, -1.2, 4];
    for (let i = 0; i < 5; i++) {
      constantGrad(p, c);
      opt.step();
    }
    const want = [1, -2, 0.5].map((p0, i) => reference(kind, o, p0, c[i], 5));
    close(p.toArray(), want, 2e-6);
  }
  assert.throws(
    () => new optim.SGD([tensor([1])], { lr: 0.1, nesterov: true }),
    /nesterov: expected momentum > 0/,
  );
  assert.throws(
    () => new optim.Adam([tensor([1])], { betas: [0.9, 1] }),
    /param group 0 betas: expected two numbers in \[0, 1\), got \[0.9, 1\]/,
  );
});

test('param groups carry their own hyperparameters', () => {
  const a = tensor([1]).requiresGrad_();
  const b = tensor([1]).requiresGrad_();
  const opt = new optim.SGD([{ params: [a] }, { params: [b], lr: 1 }], { lr: 0.1 });
  constantGrad(a, [1]);
  constantGrad(b, [1]);
  opt.step();
  close(a.toArray(), [0.9]);
  close(b.toArray(), [0]);
  assert.throws(
    () => new optim.SGD([{ params: [a] }, { params: [a] }], { lr: 1 }),
    /a parameter appears in more than one group/,
  );
});

test('clipGradNorm scales gradients to the maximum norm and returns the norm before', () => {
  const a = tensor([0, 0]).requiresGrad_();
  const b = tensor([0]).requiresGrad_();
  constantGrad(a, [3, 4]);
  constantGrad(b, [12]);
  const n = optim.clipGradNorm([a, b], 6.5);
  close([n], [13]);
  close([...a.grad!.toArray(), ...b.grad!.toArray()], [1.5, 2, 6], 1e-5);
  // Under the limit: untouched.
  close([optim.clipGradNorm([a, b], 100)], [6.5], 1e-5);
  close(a.grad!.toArray(), [1.5, 2], 1e-6);
  close([optim.clipGradNorm([a, b], 100, Infinity)], [6]);
});

test('cosine (with warm-up) and linear schedules', () => {
  const p = tensor([1]).requiresGrad_();
  const opt = new optim.SGD([p], { lr: 1 });
  const cos = new optim.CosineSchedule(opt, { totalSteps: 10, warmupSteps: 2, minLr: 0.1 });
  const seen = [opt.paramGroups[0].lr];
  for (let i = 0; i < 11; i++) {
    cos.step();
    seen.push(opt.paramGroups[0].lr);
  }
  // Warm-up 0 → 0.5 → 1, then 0.1 + 0.9·(1 + cos(π(t−2)/8))/2, flat at 0.1 after step 10.
  const want = [
    0,
    0.5,
    ...[2, 3, 4, 5, 6, 7, 8, 9, 10].map((t) => 0.1 + (0.9 * (1 + Math.cos((Math.PI * (t - 2)) / 8))) / 2),
    0.1,
  ];
  close(seen, want);
  close([want[6]], [0.55]);
  const opt2 = new optim.SGD([p], { lr: 2 });
  const lin = new optim.LinearSchedule(opt2, { totalSteps: 4, startFactor: 1, endFactor: 0.5 });
  const lrs = [lin.lrs[0]];
  for (let i = 0; i < 5; i++) {
    lin.step();
    lrs.push(lin.lrs[0]);
  }
  close(lrs, [2, 1.75, 1.5, 1.25, 1, 1]);
  // Scheduler state resumes at the same point.
  const opt3 = new optim.SGD([p], { lr: 1 });
  const cos3 = new optim.CosineSchedule(opt3, { totalSteps: 10, warmupSteps: 2, minLr: 0.1 });
  cos3.loadStateDict(cos.stateDict());
  close([opt3.paramGroups[0].lr], [0.1]);
});

test('optimizer and model state dicts resume training exactly', () => {
  const data = randn([8, 3], { generator: new Generator(1) });
  const target = randn([8, 2], { generator: new Generator(2) });
  const make = () => {
    const model = new nn.Linear(3, 2, { generator: new Generator(3) });
    const opt = new optim.AdamW(model.parameters(), { lr: 0.05, amsgrad: true });
    return { model, opt };
  };
  const train = (model: nn.Linear, opt: optim.AdamW, steps: number) => {
    for (let i = 0; i < steps; i++) {
      opt.zeroGrad();
      tidy(() => model.forward(data).sub(target).pow(2).mean().backward());
      opt.step();
    }
  };
  const a = make();
  train(a.model, a.opt, 3);
  // Snapshot as a checkpoint would: copies of every tensor.
  const modelState = new Map([...a.model.stateDict()].map(([k, t]) => [k, t.detach().clone()]));
  const sd = a.opt.stateDict();
  const optState = {
    param_groups: sd.param_groups,
    state: Object.fromEntries(
      Object.entries(sd.state).map(([k, e]) => [
        k,
        Object.fromEntries(Object.entries(e).map(([n, v]) => [n, v instanceof Tensor ? v.clone() : v])),
      ]),
    ),
  };
  assert.deepEqual(Object.keys(optState.state[0]), ['step', 'exp_avg', 'exp_avg_sq', 'max_exp_avg_sq']);
  assert.equal(optState.state[0].step, 3);
  assert.deepEqual(sd.param_groups[0], {
    lr: 0.05,
    betas: [0.9, 0.999],
    eps: 1e-8,
    weight_decay: 0.01,
    amsgrad: true,
    maximize: false,
    params: [0, 1],
  });
  train(a.model, a.opt, 2);

  const b = make();
  b.model.loadStateDict(modelState);
  b.opt.loadStateDict(optState);
  train(b.model, b.opt, 2);
  assert.deepEqual(b.model.weight.toArray(), a.model.weight.toArray());
  assert.deepEqual(b.model.bias!.toArray(), a.model.bias!.toArray());
});

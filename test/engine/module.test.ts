import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  F,
  Generator,
  Tensor,
  memoryStats,
  nn,
  noGrad,
  ones,
  randn,
  tensor,
  zeros,
  type DType,
} from '../../src/engine/index.ts';

class Block extends nn.Module {
  readonly norm: nn.GroupNorm;
  readonly conv: nn.Conv3d;
  constructor(c: number) {
    super();
    this.norm = this.register('norm', new nn.GroupNorm(2, c));
    this.conv = this.register('conv', new nn.Conv3d(c, c, 3, { padding: 1 }));
  }
  forward(x: Tensor): Tensor {
    const h = this.norm.forward(x);
    const a = h.silu();
    h.dispose();
    const y = this.conv.forward(a);
    a.dispose();
    return y;
  }
}

class Net extends nn.Module {
  readonly scale: Tensor;
  readonly blocks: nn.ModuleList<Block>;
  readonly head: nn.Sequential;
  constructor() {
    super();
    this.scale = this.registerParameter('scale', ones([1]));
    this.registerBuffer('table', zeros([3]));
    this.registerBuffer('cache', zeros([2]), { persistent: false });
    this.blocks = this.register('blocks', new nn.ModuleList([new Block(4), new Block(4)]));
    this.head = this.register(
      'head',
      new nn.Sequential(new nn.Linear(4, 2), new nn.SiLU(), new nn.Linear(2, 1, { bias: false })),
    );
  }
}

test('state dict keys follow PyTorch order: own params, own buffers, then children', () => {
  const net = new Net();
  assert.deepEqual(
    [...net.stateDict().keys()],
    [
      'scale',
      'table',
      'blocks.0.norm.weight',
      'blocks.0.norm.bias',
      'blocks.0.conv.weight',
      'blocks.0.conv.bias',
      'blocks.1.norm.weight',
      'blocks.1.norm.bias',
      'blocks.1.conv.weight',
      'blocks.1.conv.bias',
      'head.0.weight',
      'head.0.bias',
      'head.2.weight',
    ],
  );
  assert.equal(net.parameters().length, 12);
  assert.deepEqual(
    net.namedBuffers().map(([n]) => n),
    ['table', 'cache'],
  );
  assert.deepEqual(
    net
      .namedModules()
      .map(([n]) => n)
      .slice(0, 4),
    ['', 'blocks', 'blocks.0', 'blocks.0.norm'],
  );
  assert.equal(net.numParameters(), 1 + 2 * (4 + 4 + 4 * 4 * 27 + 4) + 4 * 2 + 2 + 2);
  assert.ok(net.parameters().every((p) => p.requiresGrad));
  const bn = new nn.BatchNorm3d(3);
  assert.deepEqual(
    [...bn.stateDict().keys()],
    ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked'],
  );
  assert.deepEqual([...new nn.InstanceNorm3d(3).stateDict().keys()], []);
  assert.deepEqual([...new nn.InstanceNorm3d(3, { affine: true }).stateDict().keys()], ['weight', 'bias']);
  assert.deepEqual([...new nn.LayerNorm(5).stateDict().keys()], ['weight', 'bias']);
  assert.deepEqual([...new nn.PReLU().stateDict().keys()], ['weight']);
  const md = new nn.ModuleDict({ down: new nn.Identity(), up: new nn.Linear(1, 1) });
  assert.deepEqual([...md.stateDict().keys()], ['up.weight', 'up.bias']);
  assert.throws(
    () => net.register('scale', new nn.Identity()),
    /"scale" is already registered as another kind/,
  );
  assert.throws(
    () => net.registerParameter('a.b', zeros([1])),
    /parameter name: expected a non-empty name without "\."/,
  );
});

test('layers have PyTorch shapes and default initialisation bounds', () => {
  const g = new Generator(0);
  const lin = new nn.Linear(50, 7, { generator: g });
  assert.deepEqual(lin.weight.shape, [7, 50]);
  // kaiming_uniform(a=√5) on fan_in 50 → U(±1/√50); bias also U(±1/√50).
  const bound = 1 / Math.sqrt(50);
  assert.ok(lin.weight.abs().max().item() <= bound + 1e-7);
  assert.ok(lin.weight.abs().max().item() > 0.9 * bound);
  assert.ok(lin.bias!.abs().max().item() <= bound + 1e-7);
  const conv = new nn.Conv3d(4, 6, [3, 1, 2], { groups: 2, generator: g });
  assert.deepEqual(conv.weight.shape, [6, 2, 3, 1, 2]);
  assert.ok(conv.weight.abs().max().item() <= 1 / Math.sqrt(2 * 6) + 1e-7);
  const ct = new nn.ConvTranspose3d(4, 6, 2, { stride: 2, groups: 2 });
  assert.deepEqual(ct.weight.shape, [4, 3, 2, 2, 2]);
  assert.ok(ct.weight.abs().max().item() <= 1 / Math.sqrt(3 * 8) + 1e-7);
  assert.deepEqual(ct.forward(randn([1, 4, 3, 3, 3])).shape, [1, 6, 6, 6, 6]);
  assert.deepEqual(new nn.ConvTranspose2d(2, 2, 3).weight.shape, [2, 2, 3, 3]);
  assert.deepEqual(new nn.Conv1d(2, 3, 5).weight.shape, [3, 2, 5]);
  const gn = new nn.GroupNorm(2, 4);
  assert.deepEqual(gn.weight!.toArray(), [1, 1, 1, 1]);
  assert.deepEqual(gn.bias!.toArray(), [0, 0, 0, 0]);
  assert.throws(
    () => new nn.GroupNorm(3, 4),
    /GroupNorm numGroups: expected a divisor of numChannels 4, got 3/,
  );
  // Same seed, same weights.
  assert.deepEqual(
    new nn.Linear(3, 2, { generator: new Generator(5) }).weight.toArray(),
    new nn.Linear(3, 2, { generator: new Generator(5) }).weight.toArray(),
  );
  // Reflect padding mode pads before the convolution.
  const rc = new nn.Conv1d(1, 1, 3, { padding: 1, paddingMode: 'reflect', bias: false });
  rc.weight.assign(tensor([[[1, 1, 1]]]));
  assert.deepEqual(rc.forward(tensor([[[1, 2, 3]]])).toArray(), [5, 6, 7]);
});

test('forward through modules; train/eval switches dropout and running statistics', () => {
  const net = new Net();
  const y = net.blocks.at(0).forward(randn([2, 4, 3, 3, 3]));
  assert.deepEqual(y.shape, [2, 4, 3, 3, 3]);
  assert.deepEqual(net.head.forward(randn([5, 4])).shape, [5, 1]);
  const drop = new nn.Dropout(0.5);
  const seq = new nn.Sequential(drop);
  assert.ok(
    seq
      .forward(ones([100]))
      .eq(0)
      .any()
      .item() === 1,
  );
  seq.eval();
  assert.equal(drop.training, false);
  assert.deepEqual(seq.forward(ones([3])).toArray(), [1, 1, 1]);
  const bn = new nn.BatchNorm1d(2);
  const x = tensor([
    [1, 10],
    [3, 30],
  ]);
  bn.forward(x);
  // running = 0.9·old + 0.1·batch (unbiased variance for the running estimate).
  assert.deepEqual(
    bn.runningMean!.toArray().map((v) => +v.toFixed(5)),
    [0.2, 2],
  );
  assert.deepEqual(
    bn.runningVar!.toArray().map((v) => +v.toFixed(5)),
    [0.9 + 0.1 * 2, 0.9 + 0.1 * 200],
  );
  assert.equal(bn.numBatchesTracked!.item(), 1);
  bn.eval();
  const ev = bn.forward(x).toArray();
  assert.ok(Math.abs(ev[0] - (1 - 0.2) / Math.sqrt(1.1 + 1e-5)) < 1e-5);
  assert.equal(bn.numBatchesTracked!.item(), 1);
});

test('loadStateDict copies values and reports missing, unexpected and mismatched keys by name', () => {
  const a = new Net();
  const b = new Net();
  b.loadStateDict(a.stateDict());
  for (const [k, t] of b.stateDict()) assert.deepEqual(t.toArray(), a.stateDict().get(k)!.toArray(), k);
  // Copies, not aliases: changing a afterwards leaves b alone.
  noGrad(() => a.scale.fill_(5));
  assert.equal(b.scale.item(), 1);

  const dict = new Map(a.stateDict());
  dict.delete('blocks.1.conv.bias');
  dict.delete('head.0.bias');
  dict.set('blocks.0.extra', zeros([1]));
  dict.set('head.2.weight', zeros([2, 1]));
  assert.throws(
    () => b.loadStateDict(dict),
    (e: Error) => {
      assert.equal(
        e.message,
        'Net.loadStateDict: 2 missing keys: blocks.1.conv.bias, head.0.bias; 1 unexpected key: blocks.0.extra; ' +
          '1 shape mismatch: head.2.weight (checkpoint [2, 1], model [1, 2])',
      );
      return true;
    },
  );
  // Nothing was copied by the failed call.
  assert.equal(b.scale.item(), 1);
  dict.set('head.2.weight', zeros([1, 2]));
  const r = b.loadStateDict(dict, { strict: false });
  assert.deepEqual(r, {
    missingKeys: ['blocks.1.conv.bias', 'head.0.bias'],
    unexpectedKeys: ['blocks.0.extra'],
  });
  assert.equal(b.scale.item(), 5);
  assert.deepEqual(b.head.at(2).stateDict().get('weight')!.toArray(), [0, 0]);

  // Raw checkpoint records (bytes) load too, converted to the parameter's dtype.
  const lin = new nn.Linear(2, 1);
  const raw = (values: number[], shape: number[], dtype: DType = 'float64') => ({
    dtype,
    shape,
    data: Tensor.fromArray(values, shape, { dtype }).toBytes(),
  });
  lin.loadStateDict({ weight: raw([1.5, -2], [1, 2]), bias: raw([0.25], [1]) });
  assert.deepEqual(lin.weight.toArray(), [1.5, -2]);
  assert.equal(lin.weight.dtype, 'float32');
  assert.deepEqual(lin.forward(tensor([[2, 1]])).toArray(), [1.25]);
});

test('module.to(dtype) keeps parameter identity; dispose frees parameters; zeroGrad', () => {
  const net = new Net();
  const scale = net.scale;
  net.to('float64');
  assert.equal(net.scale, scale);
  assert.equal(scale.dtype, 'float64');
  assert.ok(scale.requiresGrad);
  assert.ok(net.parameters().every((p) => p.dtype === 'float64'));
  const bn = new nn.BatchNorm1d(2).to('float16');
  assert.equal(bn.numBatchesTracked!.dtype, 'int64');
  assert.equal(bn.runningMean!.dtype, 'float16');

  const lin = new nn.Linear(3, 2);
  F.linear(randn([4, 3]), lin.weight, lin.bias)
    .sum()
    .backward();
  assert.notEqual(lin.weight.grad, null);
  lin.zeroGrad();
  assert.equal(lin.weight.grad, null);

  const m = new Net();
  const own = m.parameters().length + m.buffers().length;
  assert.equal(own, 14);
  const live = memoryStats().handles;
  m.dispose();
  assert.ok(m.parameters().every((p) => p.isDisposed) && m.buffers().every((b) => b.isDisposed));
  // Every handle of the module is released. Finalisers of earlier garbage may run at any moment and
  // only lower the count, so a bound, not an equality (absolute counts failed when V8 collected).
  assert.ok(memoryStats().handles <= live - own, `${live} → ${memoryStats().handles}`);
});

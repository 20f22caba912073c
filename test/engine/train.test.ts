import { test } from 'node:test';
import assert from 'node:assert/strict';
import { F, Generator, nn, noGrad, optim, randn, tidy, type Tensor } from '../../src/engine/index.ts';

class SmallNet extends nn.Module {
  readonly body: nn.Sequential;
  constructor(g: Generator) {
    super();
    this.body = this.register(
      'body',
      new nn.Sequential(
        new nn.Conv3d(1, 8, 3, { padding: 1, generator: g }),
        new nn.GroupNorm(2, 8),
        new nn.SiLU(),
        new nn.Conv3d(8, 1, 3, { padding: 1, generator: g }),
      ),
    );
  }
  forward(x: Tensor): Tensor {
    return this.body.forward(x);
  }
}

test('a small 3-D conv network learns a synthetic regression (loss falls at least 10x)', () => {
  const g = new Generator(123);
  const net = new SmallNet(g);
  // Target: a 3×3×3 box blur of the input plus a fixed offset, which the network can represent.
  const x = randn([4, 1, 10, 10, 10], { generator: g });
  const y = noGrad(() =>
    tidy(() => F.avgPool3d(x, 3, { stride: 1, padding: 1, countIncludePad: false }).mul(2).add(0.5)),
  );
  const opt = new optim.Adam(net.parameters(), { lr: 1e-2 });
  const losses: number[] = [];
  for (let step = 0; step < 150; step++) {
    opt.zeroGrad();
    const loss = tidy(() => F.mseLoss(net.forward(x), y));
    loss.backward();
    opt.step();
    losses.push(loss.item());
    loss.dispose();
  }
  const first = losses[0];
  const last = Math.min(...losses.slice(-10));
  console.log(`loss ${first.toFixed(4)} → ${last.toFixed(5)} (${(first / last).toFixed(1)}x)`);
  assert.ok(first / last >= 10, `loss fell only ${(first / last).toFixed(1)}x: ${first} → ${last}`);
  net.dispose();
  opt.dispose();
});

/**
 * LDM-Morph's network and loss: the LGCA against a naive window-by-window cross-attention (padding,
 * shift, relative-position bias, shift mask), the window layouts of the sizes used, output shapes and
 * the displacement's bound, the latent term's gradient with and without `latentGradient`, a few Adam
 * steps on a shifted pair, the ablation variants, and one-line errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cat,
  F,
  Generator,
  grad,
  manualSeed,
  nn,
  noGrad,
  optim,
  randn,
  Tensor,
  tensor,
  tidy,
  zeros,
} from '../../src/engine/index.ts';
import { MASKED } from '../../src/models/blocks/index.ts';
import {
  CrossWindowBlock,
  LDM_MORPH_AUTHORS,
  LdmMorph,
  ldmMorphConfig,
  ldmMorphLoss,
  Lgca,
  ShiftedWindows,
  stageLayouts,
  type StageLayout,
} from '../../src/models/ldmmorph/index.ts';
import { DiffregError } from '../../src/util/errors.ts';
import { assertClose } from '../helpers/tensors.ts';
import { TINY_LDM_MORPH as TINY } from './ldm-fixtures.ts';

const values = (t: Tensor) => t.toTypedArray() as Float32Array;

/** Rows [start, start + d) of a linear layer applied to x: one head's share of its output. */
function headRows(layer: nn.Linear, x: Tensor, start: number, d: number): Tensor {
  const y = x.matmul(layer.weight.narrow(0, start, d).t());
  return layer.bias ? y.add(layer.bias.narrow(0, start, d)) : y;
}

/**
 * The block's window cross-attention of normalised queries q and context k (B, H, W, C) computed
 * window by window: the maps zero-padded to the padded grid, the rolled grid's position r holding
 * padded position (r + shift) mod padded, scores with the bias table entry of each token pair's
 * offset and MASKED between tokens of which one wrapped and the other did not, softmax, values,
 * output projection, written back at the tokens' positions inside the grid.
 */
function naiveCrossAttention(block: CrossWindowBlock, q: Tensor, k: Tensor): Tensor {
  const [batch, h, w, c] = q.shape;
  const { padded, window, shift } = block.windows;
  const { heads, headDim: d } = block.attn;
  const table = values(block.positionBias.table);
  const pad = (t: Tensor) => {
    const wide = cat([t, zeros([batch, h, padded[1] - w, c])], 2);
    return cat([wide, zeros([batch, padded[0] - h, padded[1], c])], 1).reshape(batch, -1, c);
  };
  const [qf, kf] = [pad(q), pad(k)];
  const local: number[][] = [];
  for (let i = 0; i < window[0]; i++) for (let j = 0; j < window[1]; j++) local.push([i, j]);
  const n = local.length;
  const result = new Float32Array(batch * h * w * c);
  for (let b = 0; b < batch; b++)
    for (let gy = 0; gy < padded[0] / window[0]; gy++)
      for (let gx = 0; gx < padded[1] / window[1]; gx++) {
        const rolled = local.map(([i, j]) => [gy * window[0] + i, gx * window[1] + j]);
        const source = rolled.map((r) => r.map((x, a) => (x + shift[a]) % padded[a]));
        const wrapped = rolled.map((r) => r.map((x, a) => x + shift[a] >= padded[a]));
        const index = Tensor.fromArray(
          BigInt64Array.from(source, ([y, x]) => BigInt(y * padded[1] + x)),
          [n],
        );
        const xq = qf.select(0, b).indexSelect(0, index);
        const xk = kf.select(0, b).indexSelect(0, index);
        const outputs: Tensor[] = [];
        for (let hd = 0; hd < heads; hd++) {
          const additive = new Float32Array(n * n);
          for (let p = 0; p < n; p++)
            for (let t = 0; t < n; t++) {
              const offset =
                (local[p][0] - local[t][0] + window[0] - 1) * (2 * window[1] - 1) +
                (local[p][1] - local[t][1] + window[1] - 1);
              const same = wrapped[p].every((x, a) => x === wrapped[t][a]);
              additive[p * n + t] = table[offset * heads + hd] + (same ? 0 : MASKED);
            }
          const scores = headRows(block.attn.q as nn.Linear, xq, hd * d, d)
            .matmul(headRows(block.attn.kv as nn.Linear, xk, hd * d, d).t())
            .div(Math.sqrt(d))
            .add(Tensor.fromArray(additive, [n, n]));
          outputs.push(scores.softmax(-1).matmul(headRows(block.attn.kv as nn.Linear, xk, c + hd * d, d)));
        }
        const out = values(block.attn.proj.forward(cat(outputs, -1)));
        source.forEach(([y, x], t) => {
          if (y < h && x < w) result.set(out.subarray(t * c, t * c + c), ((b * h + y) * w + x) * c);
        });
      }
  return Tensor.fromArray(result, q.shape);
}

/** The LGCA with the naive attention: both streams updated from each other by every block, then fused. */
function naiveLgca(lgca: Lgca, swin: Tensor, ldm: Tensor): Tensor {
  const step = (block: CrossWindowBlock, x: Tensor, context: Tensor) => {
    const y = x.add(naiveCrossAttention(block, block.norm1.forward(x), block.norm1.forward(context)));
    return y.add(block.mlp.forward(block.norm2.forward(y)));
  };
  let [s, l] = [swin, ldm];
  for (const block of lgca.blocks) [s, l] = [step(block, s, l), step(block, l, s)];
  return lgca.fusion.forward(s, l);
}

test('LGCA equals a naive window-by-window cross-attention in both directions: padded, shifted, clamped', () => {
  manualSeed(21);
  const g = new Generator(22);
  const layouts: StageLayout[] = [
    // 6×10 tokens in 4×4 windows: padded to 8×12, the second block shifted by 2.
    { dim: 8, heads: 2, depth: 2, grid: [6, 10], window: [4, 4], shift: [2, 2], padded: [8, 12] },
    // 3 rows: the window clamped to them and unshifted there, shifted along the 8 columns.
    { dim: 8, heads: 2, depth: 2, grid: [3, 8], window: [3, 4], shift: [0, 2], padded: [3, 8] },
  ];
  for (const layout of layouts) {
    const lgca = new Lgca(layout, { depth: 2, mlpRatio: 2 });
    assert.equal(lgca.blocks.at(0).windows.mask, null);
    assert.ok(lgca.blocks.at(1).windows.mask, 'the second block has shifted windows');
    // Tables of std 1 (Swin initialises them at 0.02): a wrong offset would show.
    noGrad(() => {
      for (const block of lgca.blocks)
        block.positionBias.table.copy_(randn(block.positionBias.table.shape, { generator: g }));
    });
    const swin = randn([2, ...layout.grid, 8], { generator: g });
    const ldm = randn([2, ...layout.grid, 8], { generator: g });
    noGrad(() =>
      assertClose(lgca.forward(swin, ldm), naiveLgca(lgca, swin, ldm), `grid ${layout.grid}`, 1e-5),
    );
  }
});

/** The padded position held at each token of each window, by the roll rule, with −1 for padding. */
function expectedWindows(windows: ShiftedWindows): number[] {
  const { grid, padded, window, shift } = windows;
  const out: number[] = [];
  for (let gy = 0; gy < padded[0] / window[0]; gy++)
    for (let gx = 0; gx < padded[1] / window[1]; gx++)
      for (let i = 0; i < window[0]; i++)
        for (let j = 0; j < window[1]; j++) {
          const y = (gy * window[0] + i + shift[0]) % padded[0];
          const x = (gx * window[1] + j + shift[1]) % padded[1];
          out.push(y < grid[0] && x < grid[1] ? y * grid[1] + x : -1);
        }
  return out;
}

test('window layouts of 128² (default) and 128×96: geometry, partition with roll and padding, shift masks', () => {
  const square = stageLayouts(ldmMorphConfig());
  assert.deepEqual(
    square.map((l) => [l.grid, l.window, l.shift, l.padded]),
    [
      [
        [32, 32],
        [8, 8],
        [4, 4],
        [32, 32],
      ],
      [
        [16, 16],
        [8, 8],
        [4, 4],
        [16, 16],
      ],
      // One window covers the 8² grid, and is not shifted; 4² is one window clamped to it.
      [
        [8, 8],
        [8, 8],
        [0, 0],
        [8, 8],
      ],
      [
        [4, 4],
        [4, 4],
        [0, 0],
        [4, 4],
      ],
    ],
  );
  const wide = stageLayouts(ldmMorphConfig({ imageSize: [128, 96] }));
  assert.deepEqual(
    wide.map((l) => [l.grid, l.window, l.shift, l.padded]),
    [
      [
        [32, 24],
        [8, 8],
        [4, 4],
        [32, 24],
      ],
      [
        [16, 12],
        [8, 8],
        [4, 4],
        [16, 16],
      ],
      [
        [8, 6],
        [8, 6],
        [0, 0],
        [8, 6],
      ],
      [
        [4, 3],
        [4, 3],
        [0, 0],
        [4, 3],
      ],
    ],
  );
  for (const layout of [square[0], square[1], wide[1]]) {
    const windows = new ShiftedWindows(layout, layout.shift);
    const [h, w] = layout.grid;
    // Each token's value is its position + 1, so that padding (0) reads −1.
    const map = Tensor.fromArray(
      Float32Array.from({ length: h * w }, (_, i) => i + 1),
      [1, h, w, 1],
    );
    const parts = windows.partition(map);
    assert.deepEqual(
      [...values(parts)].map((v) => v - 1),
      expectedWindows(windows),
      `partition ${layout.grid}`,
    );
    assert.deepEqual(values(windows.reverse(parts)), values(map), `round trip ${layout.grid}`);
    // The mask lets two tokens attend iff, on every axis, both or neither wrapped round.
    const mask = values(windows.mask as Tensor);
    const n = layout.window[0] * layout.window[1];
    const wraps = (window: number, t: number) => {
      const gx = window % (layout.padded[1] / layout.window[1]);
      const gy = Math.floor(window / (layout.padded[1] / layout.window[1]));
      const r = [
        gy * layout.window[0] + Math.floor(t / layout.window[1]),
        gx * layout.window[1] + (t % layout.window[1]),
      ];
      return r.map((x, a) => x + layout.shift[a] >= layout.padded[a]);
    };
    const count = mask.length / (n * n);
    for (let k = 0; k < count; k++)
      for (let i = 0; i < n; i++)
        for (let j = 0; j < n; j++) {
          const same = wraps(k, i).every((x, a) => x === wraps(k, j)[a]);
          assert.equal(mask[(k * n + i) * n + j], same ? 0 : MASKED);
        }
  }
});

/** Random LDM features of the shapes a network expects. */
function features(net: LdmMorph, batch: number, g: Generator): Tensor[] {
  return net.layouts.map((l, s) => randn([batch, net.config.ldmChannels[s], ...l.grid], { generator: g }));
}

test('the displacement: (B, 2, H, W) for 128² and 128×96, bounded by Softsign at (n − 1)/2 pixels per axis', () => {
  manualSeed(23);
  const g = new Generator(24);
  const square = new LdmMorph();
  const images = (shape: number[]) => [randn(shape, { generator: g }), randn(shape, { generator: g })];
  const [m, f] = images([1, 1, 128, 128]);
  assert.deepEqual(noGrad(() => square.forward(m, f, features(square, 1, g))).shape, [1, 2, 128, 128]);
  const wide = new LdmMorph({ imageSize: [128, 96] });
  const [m2, f2] = images([2, 1, 128, 96]);
  // A head saturated (bias ±10⁶): component 0 runs along H (127/2 px), component 1 along W (95/2 px).
  noGrad(() => wide.regHead.conv.bias!.copy_(tensor([1e6, -1e6])));
  const u = noGrad(() => wide.forward(m2, f2, features(wide, 2, g)));
  assert.deepEqual(u.shape, [2, 2, 128, 96]);
  assertClose(u.select(1, 0), zeros([2, 128, 96]).add(63.5), 'component 0', 1e-4);
  assertClose(u.select(1, 1), zeros([2, 128, 96]).add(-47.5), 'component 1', 1e-4);
});

/** A fixed stand-in for the autoencoder's encoder: (B, 1, 64, 64) → (B, 1, 16, 16), weights frozen. */
function frozenEncoder(): (x: Tensor) => Tensor {
  const e = new nn.Sequential(
    new nn.Conv2d(1, 4, 3, { stride: 2, padding: 1 }),
    new nn.Tanh(),
    new nn.Conv2d(4, 1, 3, { stride: 2, padding: 1 }),
  );
  for (const p of e.parameters()) p.requiresGrad_(false);
  return (x) => e.forward(x);
}

/** Two Gaussian blobs; `offset` moves them by (dy, dx) pixels. */
function blobs(offset: [number, number]): Tensor {
  const data = new Float32Array(64 * 64);
  for (let y = 0; y < 64; y++)
    for (let x = 0; x < 64; x++) {
      const blob = (cy: number, cx: number, s: number) =>
        Math.exp(-((y - cy - offset[0]) ** 2 + (x - cx - offset[1]) ** 2) / (2 * s * s));
      data[y * 64 + x] = blob(24, 28, 6) + 0.7 * blob(42, 38, 4);
    }
  return Tensor.fromArray(data, [1, 1, 64, 64]);
}

test('the latent term trains the network through E with latentGradient, and contributes nothing without', () => {
  manualSeed(25);
  const g = new Generator(26);
  const net = new LdmMorph(TINY);
  // A non-trivial field, so that the warped image depends on every parameter.
  noGrad(() => nn.init.normal_(net.regHead.conv.weight, 0, 0.05));
  const [moving, fixed] = [blobs([0, 0]), blobs([2, -1])];
  const feats = features(net, 1, g);
  const encode = frozenEncoder();
  const params = net.parameters();
  const norm = (gs: (Tensor | null)[]) => gs.reduce((s, t) => s + (t ? t.square().sum().item() : 0), 0);

  const on = ldmMorphLoss({}, encode)(fixed, moving, net.forward(moving, fixed, feats));
  assert.ok(on.latent.item() > 0);
  assert.ok(norm(grad(on.latent, params, { allowUnused: true })) > 0, 'latent gradient reaches the network');

  const off = ldmMorphLoss({ latentGradient: false }, encode)(
    fixed,
    moving,
    net.forward(moving, fixed, feats),
  );
  assert.equal(off.latent.item(), on.latent.item(), 'the same latent value either way');
  assert.equal(off.latent.requiresGrad, false);
  const total = grad(off.total, params, { retainGraph: true });
  const rest = grad(
    tidy(() => off.image.mul(0.6).add(off.smooth.mul(0.01))),
    params,
  );
  total.forEach((t, i) => assert.deepEqual(values(t as Tensor), values(rest[i] as Tensor), `parameter ${i}`));
});

test('a few Adam steps lower the loss on a shifted pair (tiny configuration)', () => {
  manualSeed(27);
  const g = new Generator(28);
  const net = new LdmMorph(TINY);
  const [moving, fixed] = [blobs([0, 0]), blobs([3, -2])];
  const feats = features(net, 1, g);
  const loss = ldmMorphLoss({}, frozenEncoder());
  const opt = new optim.Adam(net.parameters(), { lr: 2e-3 });
  const losses: number[] = [];
  for (let step = 0; step < 15; step++) {
    opt.zeroGrad();
    const total = tidy(() => loss(fixed, moving, net.forward(moving, fixed, feats)).total);
    losses.push(total.item());
    total.backward();
    opt.step();
    total.dispose();
  }
  assert.ok(losses[14] < 0.8 * losses[0], `loss ${losses[0].toFixed(5)} → ${losses[14].toFixed(5)}`);
  // Pull-back: fixed(p) = moving(p − (3, −2)), so at the large blob's centre in the fixed image
  // the displacement should approach (−3, 2).
  const u = noGrad(() => net.forward(moving, fixed, feats));
  const centre = [...values(u.select(0, 0).select(1, 27).select(1, 26))];
  assert.ok(Math.hypot(centre[0] + 3, centre[1] - 2) < 1, `u at the blob's centre: ${centre}`);
});

test('ablations: without LDM features no features are taken and no adapter or LGCA exists; without LGCA, fusion alone', () => {
  manualSeed(29);
  const g = new Generator(30);
  const full = new LdmMorph(TINY);
  const alone = new LdmMorph({ ...TINY, ldmFeatures: false });
  assert.equal(alone.config.lgca, false);
  const names = alone.namedParameters().map(([k]) => k);
  assert.ok(!names.some((k) => /^(adapters|lgca|fusion)\./.test(k)), names.join());
  const extra = full
    .namedParameters()
    .filter(([k]) => /^(adapters|lgca)\./.test(k))
    .reduce((s, [, p]) => s + p.numel, 0);
  assert.equal(alone.numParameters(), full.numParameters() - extra);
  const [m, f] = [blobs([0, 0]), blobs([1, 1])];
  assert.deepEqual(noGrad(() => alone.forward(m, f)).shape, [1, 2, 64, 64]);

  const fused = new LdmMorph({ ...TINY, lgca: false });
  const fusedNames = fused.namedParameters().map(([k]) => k);
  assert.ok(fusedNames.some((k) => k.startsWith('fusion.3.reduction')));
  assert.ok(!fusedNames.some((k) => k.startsWith('lgca.') || /fusion\.\d\.(blocks|attn)/.test(k)));
  assert.deepEqual(noGrad(() => fused.forward(m, f, features(fused, 1, g))).shape, [1, 2, 64, 64]);
});

/** Asserts a one-line DiffregError matching `pattern`. */
function refuses(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: Error) => {
    assert.ok(e instanceof DiffregError, `${e.name}: ${e.message}`);
    assert.ok(!e.message.includes('\n'), e.message);
    assert.match(e.message, pattern);
    return true;
  });
}

test('one-line errors: feature count and shapes, images, and bad configurations', () => {
  const g = new Generator(31);
  const net = new LdmMorph(TINY);
  const alone = new LdmMorph({ ...TINY, ldmFeatures: false });
  const [m, f] = [blobs([0, 0]), blobs([1, 1])];
  const feats = features(net, 1, g);
  refuses(() => net.forward(m, f), /^LdmMorph ldmFeatures: expected 4 tensors, one per scale, got "none"$/);
  refuses(
    () => net.forward(m, f, feats.slice(0, 3)),
    /ldmFeatures: expected 4 tensors, one per scale, got "3 tensors"/,
  );
  refuses(
    () => net.forward(m, f, [feats[0], randn([1, 8, 16, 16]), feats[2], feats[3]]),
    /^LdmMorph ldmFeatures\[1\]: expected shape \[1, 8, 8, 8\], got \[1, 8, 16, 16\]$/,
  );
  refuses(
    () => net.forward(m, f, [randn([1, 5, 16, 16]), ...feats.slice(1)]),
    /ldmFeatures\[0\]: expected shape \[1, 4, 16, 16\]/,
  );
  refuses(
    () => alone.forward(m, f, feats),
    /^LdmMorph ldmFeatures: expected none \(the network was built with ldmFeatures: false\)/,
  );
  refuses(
    () => net.forward(randn([1, 1, 64, 32]), f, feats),
    /^LdmMorph moving: expected \(B, 1, 64, 64\), got \[1, 1, 64, 32\]$/,
  );
  refuses(
    () => net.forward(m, randn([2, 1, 64, 64]), feats),
    /^LdmMorph fixed: expected the moving image's shape/,
  );

  refuses(
    () => ldmMorphConfig({ imageSize: [128, 100] }),
    /^imageSize: expected two positive multiples of 32 \(patchSize·8\), got \[128, 100\]$/,
  );
  refuses(
    () => ldmMorphConfig({ heads: [2, 4, 8, 7] }),
    /^heads: stage 3's width 192 is not divisible by 7 heads$/,
  );
  refuses(
    () => ldmMorphConfig({ depths: [2, 2, 2] }),
    /^depths: expected 4 positive integers, got \[2, 2, 2\]$/,
  );
  refuses(
    () => ldmMorphConfig({ ldmChannels: [128, 256, 0, 512] }),
    /^ldmChannels\[2\]: expected an integer >= 1, got 0$/,
  );
  refuses(() => ldmMorphConfig({ window: 0 }), /^window: expected an integer >= 1, got 0$/);
  refuses(() => ldmMorphConfig({ adapterKernel: 2 }), /^adapterKernel: expected an odd integer, got 2$/);
  refuses(() => ldmMorphConfig({ embedDim: 25 }), /^embedDim: expected an even integer, got 25$/);
  refuses(() => ldmMorphConfig({ mlpRatio: 0 }), /^mlpRatio: expected a finite number > 0/);
  refuses(
    () => ldmMorphConfig({ lgca: 'yes' as unknown as boolean }),
    /^lgca: expected true or false, got "yes"$/,
  );
  refuses(
    () => ldmMorphLoss({ beta: 1.5 }, (x) => x),
    /^beta: expected a finite number >= 0 and <= 1, got 1.5$/,
  );
  // The authors' configuration is valid as it stands.
  assert.deepEqual(ldmMorphConfig(LDM_MORPH_AUTHORS), LDM_MORPH_AUTHORS);
});

test('the loss is the weighted sum of MSE(F, M∘φ), MSE(E(F), E(M∘φ)) and ‖∇u‖², computed independently', () => {
  const g = new Generator(32);
  const encode = frozenEncoder();
  const [moving, fixed] = [blobs([0, 0]), blobs([2, 1])];
  // Roughly the aligning field (pull-back: u = (−2, −1)) plus a ramp and noise: every term non-zero.
  const ramp = Tensor.fromArray(
    Float32Array.from({ length: 64 * 64 }, (_, i) => (i % 64) * 0.01),
    [1, 1, 64, 64],
  );
  const u = cat([ramp.mul(0).sub(2), ramp.sub(1)], 1).add(randn([1, 2, 64, 64], { generator: g }).mul(0.01));
  const terms = ldmMorphLoss({ beta: 0.3, smoothness: 0.5 }, encode)(fixed, moving, u);
  const warped = F.gridSample(
    moving,
    // Independent warp: normalised (x, y) = 2(p + u)/(n − 1) − 1, x along W.
    tidy(() => {
      const coordinate = (of: (i: number) => number) =>
        Tensor.fromArray(
          Float32Array.from({ length: 64 * 64 }, (_, i) => of(i)),
          [1, 64, 64],
        );
      const [ys, xs] = [coordinate((i) => Math.floor(i / 64)), coordinate((i) => i % 64)];
      const norm = (t: Tensor) => t.mul(2 / 63).sub(1);
      return cat(
        [norm(xs.add(u.select(1, 1))).unsqueeze(-1), norm(ys.add(u.select(1, 0))).unsqueeze(-1)],
        -1,
      );
    }),
    { alignCorners: true, paddingMode: 'border' },
  );
  const image = warped.sub(fixed).square().mean().item();
  const latent = encode(warped).sub(encode(fixed)).square().mean().item();
  const meanSquareDifference = (axis: number) =>
    u
      .narrow(axis, 1, 63)
      .sub(u.narrow(axis, 0, 63))
      .square()
      .mean()
      .item();
  const [dy, dx] = [meanSquareDifference(2), meanSquareDifference(3)];
  const close = (a: number, b: number, what: string) =>
    assert.ok(Math.abs(a - b) <= 1e-5 * Math.abs(b) + 1e-9, `${what}: ${a} vs ${b}`);
  close(terms.image.item(), image, 'image');
  close(terms.latent.item(), latent, 'latent');
  close(terms.smooth.item(), (dy + dx) / 2, 'smooth');
  close(terms.total.item(), 0.3 * image + 0.7 * latent + 0.5 * ((dy + dx) / 2), 'total');
});

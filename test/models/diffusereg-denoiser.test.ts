/**
 * DiffuseReg's denoiser: the conditional masked window attention of a flow-encoder block against a
 * naive loop over windows and token pairs; output shape, seeded determinism and gradients of the
 * whole network; one-line errors for bad configurations and inputs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cat,
  Generator,
  manualSeed,
  noGrad,
  randn,
  stack,
  tensor,
  Tensor,
  zeros,
} from '../../src/engine/index.ts';
import { clampWindow, MASKED } from '../../src/models/blocks/index.ts';
import { denoiserConfig, DiffuseRegDenoiser, SwinBlock } from '../../src/models/diffusereg/index.ts';
import { DiffregError } from '../../src/util/errors.ts';
import { assertClose } from '../helpers/tensors.ts';

const values = (t: Tensor) => t.toTypedArray() as Float32Array;

/**
 * The block's conditioned window attention computed window by window: tokens gathered by coordinates
 * (position r of the rolled map holds voxel (r + shift) mod grid), scores over [time | moving | fixed
 * | flow] for the flow queries with the bias table entry of each position pair and the wrap rule for
 * the mask, softmax, value sum, output projection, written back at the tokens' voxels.
 */
function naiveConditionedAttention(
  block: SwinBlock,
  h: Tensor,
  moving: Tensor,
  fixed: Tensor,
  timeToken: Tensor,
): Tensor {
  const [batch, ...rest] = h.shape;
  const c = rest.pop() as number;
  const grid = rest;
  const { window, shift } = block.windows;
  const heads = block.attn.heads;
  const d = block.attn.headDim;
  const n = window[0] * window[1] * window[2];
  const [hv, mv, fv, tv] = [h, moving, fixed, timeToken].map(values);
  const table = values(block.positionBias.table);
  const weight = block.attn.qkv!.weight;
  const qkvBias = block.attn.qkv!.bias!;
  const flat = (b: number, p: number[]) => ((b * grid[0] + p[0]) * grid[1] + p[1]) * grid[2] + p[2];
  const result = new Float32Array(hv.length);
  const windowCount = grid.map((g, a) => g / window[a]);
  for (let b = 0; b < batch; b++) {
    for (let gw = 0; gw < windowCount[0]; gw++)
      for (let gh = 0; gh < windowCount[1]; gh++)
        for (let gd = 0; gd < windowCount[2]; gd++) {
          const local: number[][] = [];
          for (let i = 0; i < window[0]; i++)
            for (let j = 0; j < window[1]; j++) for (let k = 0; k < window[2]; k++) local.push([i, j, k]);
          const rolled = local.map((l) => [
            gw * window[0] + l[0],
            gh * window[1] + l[1],
            gd * window[2] + l[2],
          ]);
          const source = rolled.map((r) => r.map((x, a) => (x + shift[a]) % grid[a]));
          const wrapped = rolled.map((r) => r.map((x, a) => shift[a] > 0 && x + shift[a] >= grid[a]));
          const rows = (v: Float32Array) =>
            source.map((p) => [...v.subarray(flat(b, p) * c, flat(b, p) * c + c)]);
          const flowTokens = rows(hv);
          const keys = [[...tv.subarray(b * c, b * c + c)], ...rows(mv), ...rows(fv), ...flowTokens];
          const xq = tensor(flowTokens);
          const xk = tensor(keys);
          const project = (x: Tensor, start: number) =>
            x.matmul(weight.narrow(0, start, d).t()).add(qkvBias.narrow(0, start, d));
          const headOutputs: Tensor[] = [];
          for (let hd = 0; hd < heads; hd++) {
            const additive = new Float32Array(n * (1 + 3 * n));
            for (let p = 0; p < n; p++) {
              for (let key = 1; key < 1 + 3 * n; key++) {
                const q = (key - 1) % n;
                const offset = local[p].reduce(
                  (id, lp, a) => id * (2 * window[a] - 1) + (lp - local[q][a] + window[a] - 1),
                  0,
                );
                const sameRegion = wrapped[p].every((w, a) => w === wrapped[q][a]);
                additive[p * (1 + 3 * n) + key] = table[offset * heads + hd] + (sameRegion ? 0 : MASKED);
              }
            }
            const scores = project(xq, hd * d)
              .matmul(project(xk, c + hd * d).t())
              .div(Math.sqrt(d))
              .add(Tensor.fromArray(additive, [n, 1 + 3 * n]));
            headOutputs.push(scores.softmax(-1).matmul(project(xk, 2 * c + hd * d)));
          }
          const out = values(block.attn.proj.forward(stack(headOutputs, 1).reshape(n, c)));
          source.forEach((p, t) => result.set(out.subarray(t * c, t * c + c), flat(b, p) * c));
        }
  }
  return Tensor.fromArray(result, h.shape);
}

test('conditional masked window attention equals the naive loop: shifted, unshifted, window clamped', () => {
  manualSeed(11);
  const g = new Generator(12);
  const cases = [
    { name: 'shifted', grid: [8, 8, 4], shifted: true, expect: { window: [4, 4, 2], shift: [2, 2, 1] } },
    { name: 'unshifted', grid: [8, 8, 4], shifted: false, expect: { window: [4, 4, 2], shift: [2, 2, 1] } },
    // A token grid thinner than the window along d: the window takes the grid's size there, no shift.
    { name: 'clamped', grid: [8, 4, 1], shifted: true, expect: { window: [4, 4, 1], shift: [2, 0, 0] } },
  ];
  for (const { name, grid, shifted, expect } of cases) {
    const geometry = clampWindow(grid, [4, 4, 2]);
    assert.deepEqual(geometry, expect, `${name}: Swin's window rule`);
    const block = new SwinBlock({
      dim: 12,
      heads: 3,
      grid,
      window: geometry.window,
      shift: shifted ? geometry.shift : [0, 0, 0],
      mlpRatio: 4,
      timeDim: 5,
    });
    const map = () => randn([2, ...grid, 12], { generator: g });
    const [h, moving, fixed] = [map(), map(), map()];
    const timeToken = randn([2, 12], { generator: g });
    noGrad(() =>
      assertClose(
        block.attend(h, { timeToken, moving, fixed }),
        naiveConditionedAttention(block, h, moving, fixed, timeToken),
        name,
        1e-5,
      ),
    );
  }
});

// Stage grids 32×8×4 … 4×1×1 (windows clamped from stage 1 on), bottleneck 2×1×1: instance norm
// needs more than one voxel there to pass a gradient.
const SMALL = { gridSize: [64, 16, 8] as [number, number, number], featureSize: 6 };

function inputs(seed: number) {
  const g = new Generator(seed);
  return {
    flow: randn([2, 3, 64, 16, 8], { generator: g }),
    timesteps: tensor([3, 1700], { dtype: 'int64' }),
    fixed: randn([2, 1, 64, 16, 8], { generator: g }),
    moving: randn([2, 1, 64, 16, 8], { generator: g }),
  };
}

test('denoiser: ε̂ shape, the same output for the same seed, and a gradient on every parameter', () => {
  const x = inputs(1);
  const run = (net: DiffuseRegDenoiser) => net.forward(x.flow, x.timesteps, x.fixed, x.moving);
  manualSeed(7);
  const net = new DiffuseRegDenoiser(SMALL);
  const out = run(net);
  assert.deepEqual(out.shape, [2, 3, 64, 16, 8]);
  manualSeed(7);
  const again = noGrad(() => run(new DiffuseRegDenoiser(SMALL)));
  assert.deepEqual(values(again), values(out));

  const loss = out.mul(randn(out.shape, { generator: new Generator(2) })).sum();
  loss.backward();
  const missing: string[] = [];
  for (const [key, p] of net.namedParameters())
    if (!p.grad || p.grad.abs().sum().item() === 0) missing.push(key);
  assert.deepEqual(missing, [], 'parameters without gradient');
  // The state dict reads top-down: time embedding, image encoder, flow encoder, Swin-UNETR's decoder.
  const tops = [...new Set([...net.stateDict().keys()].map((k) => k.split('.')[0]))];
  assert.deepEqual(tops, [
    'time_embed',
    'image_encoder',
    'flow_encoder',
    'encoder1',
    'encoder2',
    'encoder3',
    'encoder4',
    'encoder10',
    'decoder5',
    'decoder4',
    'decoder3',
    'decoder2',
    'decoder1',
    'out',
  ]);
});

test("images in the flow input: the authors' network when their input weights are zero, and they matter", () => {
  const x = inputs(4);
  manualSeed(3);
  const authors = new DiffuseRegDenoiser({ ...SMALL, imagesInFlowInput: false });
  const ours = new DiffuseRegDenoiser(SMALL);
  // Only the two input layers differ: 3 flow channels against 3 + moving + fixed.
  const widened = ['flow_encoder.patch_embed.weight', 'encoder1.conv1.weight', 'encoder1.conv3.weight'];
  const own = ours.stateDict();
  for (const [key, t] of authors.stateDict()) {
    const shape = own.get(key)?.shape;
    if (widened.includes(key)) assert.deepEqual(shape, [t.shape[0], 5, ...t.shape.slice(2)], key);
    else assert.deepEqual(shape, t.shape, key);
  }
  const zeroImages = (key: string, t: Tensor) =>
    widened.includes(key) ? cat([t, zeros([t.shape[0], 2, ...t.shape.slice(2)])], 1) : t;
  ours.loadStateDict(new Map([...authors.stateDict()].map(([k, t]) => [k, zeroImages(k, t)])));
  const run = (net: DiffuseRegDenoiser, moving = x.moving) =>
    noGrad(() => net.forward(x.flow, x.timesteps, x.fixed, moving));
  assertClose(run(ours), run(authors), 'zero image weights', 1e-4, 1e-5);
  // The images' channels come after the flow's: weights on them alone change the output.
  const patch = ours.flowEncoder.patchEmbed.weight;
  noGrad(() => patch.narrow(1, 3, 2).copy_(randn([6, 2, 2, 2, 2], { generator: new Generator(5) })));
  const difference = run(ours).sub(run(authors)).abs().max().item();
  assert.ok(difference > 1e-3, `output moved by ${difference}`);
});

function throwsOneLine(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: Error) => {
    assert.ok(e instanceof DiffregError, `${e.name}: ${e.message}`);
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes('\n'), 'one line');
    return true;
  });
}

test('bad configurations and inputs give one-line errors', () => {
  // Stage 1's token grid is 16×16×3: the window's 2 along d does not divide 3.
  throwsOneLine(
    () => denoiserConfig({ gridSize: [64, 64, 12] }),
    /^window: \[4, 4, 2\] does not divide stage 1's token grid \[16, 16, 3\]$/,
  );
  throwsOneLine(
    () => new DiffuseRegDenoiser({ featureSize: 20, heads: [3, 6, 12, 24] }),
    /^heads: stage 0's width 20 is not divisible by 3 heads$/,
  );
  throwsOneLine(() => denoiserConfig({ depths: [2, 2, 2] }), /^depths: expected 4 integers/);
  throwsOneLine(() => denoiserConfig({ gridSize: [64, 64, 15] }), /^gridSize: axis 2 \(15\)/);
  manualSeed(1);
  const net = new DiffuseRegDenoiser(SMALL);
  const x = inputs(3);
  throwsOneLine(
    () => net.forward(x.flow, x.timesteps, x.fixed.narrow(4, 0, 4), x.moving),
    /^denoiser fixed: expected shape \[2, 1, 64, 16, 8\], got \[2, 1, 64, 16, 4\]$/,
  );
  throwsOneLine(() => net.forward(x.flow, tensor([1]), x.fixed, x.moving), /^denoiser timesteps/);
});

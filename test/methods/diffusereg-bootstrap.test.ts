/**
 * DiffuseReg's bootstrap network: VoxelMorph's U-Net (near-zero start, cascade composition, a few steps
 * lower the loss), validation scores of known displacements, training pairs flipped alike, save/load,
 * and a tiny training run on a synthetic ACDC folder that resumes from its checkpoint.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  arange,
  full,
  manualSeed,
  noGrad,
  optim,
  rand,
  stack,
  tensor,
  tidy,
  zeros,
} from '../../src/engine/index.ts';
import { Volume, type Vec3 } from '../../src/geometry/index.ts';
import { Random } from '../../src/geometry/random.ts';
import { writeVolume } from '../../src/io/index.ts';
import { readLog } from '../../src/models/training/loop.ts';
import { nccLoss, spatialTransformer } from '../../src/models/losses/index.ts';
import { VoxelMorph, type VoxelMorphConfig } from '../../src/models/voxelmorph/index.ts';
import {
  bootstrapField,
  DEFAULT_BOOTSTRAP_LOSS,
  loadBootstrap,
  saveBootstrap,
  trainBootstrap,
  validationScores,
} from '../../src/methods/diffusereg/bootstrap.ts';
import { trainingPair, type NetworkCase } from '../../src/methods/diffusereg/data.ts';
import { NETWORK_DIMS } from '../../src/methods/diffusereg/grid.ts';

const TINY: VoxelMorphConfig = {
  spatialDims: 3,
  encoder: [4, 4, 4, 4],
  decoder: [4, 4, 4, 4, 4],
  cascades: 1,
};

test('VoxelMorph: displacement shape, near-zero start, one-line errors; a cascade composes its stages', () => {
  manualSeed(0);
  tidy(() => {
    const net = new VoxelMorph({ ...TINY, cascades: 2 });
    const m = rand([1, 1, 32, 16, 16]);
    const u = net.forward(m, rand([1, 1, 32, 16, 16]));
    assert.deepEqual(u.shape, [1, 3, 32, 16, 16]);
    assert.ok(u.abs().max().item() < 1e-2, 'flow heads start near zero');
    assert.ok(net.stateDict().has('cascade.1.unet_model.encoder.0.0.main.weight'));
    assert.ok(net.stateDict().has('cascade.0.flow.weight'));
    assert.throws(() => net.forward(rand([1, 1, 20, 16, 16]), rand([1, 1, 20, 16, 16])), /divisible by 16/);
    assert.throws(() => net.forward(rand([1, 1, 16, 16]), rand([1, 1, 16, 16])), /expected 3-D images/);
    // Two stages that each shift by one voxel along axis 0 compose to two voxels.
    noGrad(() => {
      for (const stage of net.cascade) {
        stage.flow.weight.zero_();
        stage.flow.bias?.copy_(tensor([1, 0, 0]));
      }
    });
    const total = net.forward(m, m);
    assert.ok(total.select(1, 0).sub(2).abs().max().item() < 1e-5);
    assert.ok(total.narrow(1, 1, 2).abs().max().item() < 1e-6);
  });
});

test('VoxelMorph (2-D): a few Adam steps lower the NCC loss of a shifted pair', () => {
  manualSeed(1);
  const net = new VoxelMorph({ ...TINY, spatialDims: 2 });
  const optimizer = new optim.Adam(net.parameters(), { lr: 1e-2 });
  const fixed = tidy(() => {
    const x = arange(0, 32, 1, { dtype: 'float32' }).reshape(32, 1).expand([32, 32]);
    return x.sub(16).square().add(x.transpose(0, 1).sub(16).square()).div(-40).exp().reshape(1, 1, 32, 32);
  });
  const moving = fixed.roll(2, 2);
  const lossOf = () => tidy(() => nccLoss(spatialTransformer(moving, net.forward(moving, fixed)), fixed));
  const before = lossOf().item();
  for (let i = 0; i < 20; i++) {
    optimizer.zeroGrad();
    const l = lossOf();
    l.backward();
    optimizer.step();
    l.dispose();
  }
  assert.ok(lossOf().item() < before - 0.01, `loss ${before} → ${lossOf().item()}`);
});

/** A case whose ES is its ED shifted one voxel along axis 0 (labels too). */
function shiftedCase(): NetworkCase {
  return tidy(() => {
    const edLabels = zeros([1, 1, ...NETWORK_DIMS]);
    edLabels.narrow(2, 20, 10).narrow(3, 20, 10).narrow(4, 4, 6).fill_(1);
    edLabels.narrow(2, 32, 8).narrow(3, 30, 8).narrow(4, 4, 6).fill_(2);
    edLabels.narrow(2, 40, 6).narrow(3, 20, 12).narrow(4, 4, 6).fill_(3);
    const ed = edLabels.div(3).add(rand([1, 1, ...NETWORK_DIMS]).mul(0.1));
    const shift = (t: typeof ed) => t.roll(1, 2);
    return { id: 'synthetic', ed, es: shift(ed), edLabels, esLabels: shift(edLabels) };
  });
}

test('validationScores: the true shift scores Dice 1 with no folding; identity scores lower', () => {
  manualSeed(2);
  const c = shiftedCase();
  tidy(() => {
    // es(p) = ed(p − e₀), so ed(p) = es(p + e₀): the ES → ED displacement is +1 voxel along axis 0.
    const trueShift = () =>
      stack([full(NETWORK_DIMS, 1), zeros(NETWORK_DIMS), zeros(NETWORK_DIMS)], 0).unsqueeze(0);
    const right = validationScores([c], trueShift, DEFAULT_BOOTSTRAP_LOSS);
    assert.deepEqual(Object.keys(right.dice), ['RV', 'myocardium', 'LV']);
    for (const d of Object.values(right.dice)) assert.ok(Math.abs(d - 1) < 1e-9);
    assert.equal(right.foldedPercent, 0);
    assert.equal(right.smoothness, 0);
    const identity = validationScores([c], () => zeros([1, 3, ...NETWORK_DIMS]), DEFAULT_BOOTSTRAP_LOSS);
    assert.ok(identity.meanDice < 0.95 && identity.loss > right.loss);
  });
});

test('trainingPair: either direction, both images flipped alike', () => {
  const c = tidy(() => {
    const ed = arange(0, 65536, 1, { dtype: 'float32' }).reshape(1, 1, ...NETWORK_DIMS);
    return { id: 'p', ed, es: ed.add(1e6), edLabels: ed, esLabels: ed };
  });
  const random = new Random(3);
  const directions = new Set<number>();
  for (let i = 0; i < 12; i++) {
    tidy(() => {
      const { fixed, moving } = trainingPair([c], random);
      const difference = moving.sub(fixed);
      const d = difference.select(2, 0).select(2, 0).select(2, 0).item();
      assert.equal(Math.abs(d), 1e6);
      assert.equal(difference.sub(d).abs().max().item(), 0, 'the same flips on both images');
      directions.add(Math.sign(d));
    });
  }
  assert.equal(directions.size, 2);
});

/** A synthetic ACDC folder: ED a bright disc, ES the disc smaller; labels RV, myocardium, LV rings. */
async function syntheticAcdc(root: string, ids: string[]): Promise<void> {
  const dims: Vec3 = [48, 44, 6];
  const volume = (radius: number, labels: boolean) => {
    const data = labels
      ? new Uint8Array(dims[0] * dims[1] * dims[2])
      : new Float32Array(dims[0] * dims[1] * dims[2]);
    for (let k = 0, t = 0; k < dims[2]; k++)
      for (let j = 0; j < dims[1]; j++)
        for (let i = 0; i < dims[0]; i++, t++) {
          const r = Math.hypot(i - 24, j - 22);
          const label =
            r < radius
              ? 3
              : r < radius + 3
                ? 2
                : i > 24 + radius + 3 && i < 40 && Math.abs(j - 22) < 5
                  ? 1
                  : 0;
          data[t] = labels ? label : [20, 300, 120, 250][label] + ((i * 7 + j * 3 + k) % 5);
        }
    return new Volume({ data, dims, spacing: [4, 4, 10], direction: [-1, 0, 0, 0, -1, 0, 0, 0, 1] });
  };
  for (const id of ids) {
    mkdirSync(join(root, id), { recursive: true });
    await writeVolume(join(root, id, 'ed.nii.gz'), volume(8, false));
    await writeVolume(join(root, id, 'es.nii.gz'), volume(6, false));
    await writeVolume(join(root, id, 'ed_gt.nii.gz'), volume(8, true));
    await writeVolume(join(root, id, 'es_gt.nii.gz'), volume(6, true));
  }
}

test('trainBootstrap: a tiny run on synthetic ACDC writes logs, caches the data and resumes', async () => {
  const root = mkdtempSync(join(tmpdir(), 'diffusereg-acdc-'));
  try {
    await syntheticAcdc(join(root, 'acdc'), ['patient001', 'patient017']);
    const dir = join(root, 'run');
    const options = {
      dir,
      root: join(root, 'acdc'),
      network: TINY,
      steps: 4,
      warmupSteps: 1,
      checkpointEvery: 2,
      validateEvery: 2,
      lr: 1e-3,
    };
    const first = await trainBootstrap({ ...options, stopAfter: 2 });
    assert.equal(first.step, 2);
    assert.ok(!first.finished && !existsSync(join(dir, 'network.safetensors')));
    assert.ok(existsSync(join(dir, 'acdc-network-grid.safetensors')));
    const second = await trainBootstrap(options);
    assert.ok(second.finished);
    assert.deepEqual(
      readLog(join(dir, 'log.jsonl')).map((e) => e.step),
      [1, 2, 3, 4],
    );
    const validation = readFileSync(join(dir, 'validation.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      validation.map((v) => v.step),
      [0, 2, 4],
    );
    assert.ok(validation[0].foldedPercent === 0 && validation[0].meanDice > 0.3, 'identity scores');
    await assert.rejects(trainBootstrap({ ...options, smoothness: 5 }), /another network or loss/);

    // The saved network loads and registers whole volumes to a world-mm field on the fixed grid.
    const network = loadBootstrap(join(dir, 'network.safetensors'));
    const again = join(dir, 'again.safetensors');
    saveBootstrap(again, network, DEFAULT_BOOTSTRAP_LOSS);
    assert.deepEqual([...loadBootstrap(again).stateDict().keys()], [...network.stateDict().keys()]);
    const { readVolume } = await import('../../src/io/index.ts');
    const fixed = await readVolume(join(root, 'acdc', 'patient017', 'ed.nii.gz'));
    const moving = await readVolume(join(root, 'acdc', 'patient017', 'es.nii.gz'));
    const field = bootstrapField(network, fixed, moving, 'mr');
    assert.deepEqual(field.dims, fixed.dims);
    assert.equal(field.components, 3);
    assert.throws(() => loadBootstrap(join(dir, 'missing.safetensors')), /bootstrap network not found/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

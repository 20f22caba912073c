/**
 * MAISI networks against MONAI: the tiny random-weight fixtures (exactly MAISI's structure at reduced
 * width) reproduce every stored output and tap within the fixtures' suggested 1e-4·max|ref| bound, and
 * the full-size configurations give exactly the key/shape manifest of MONAI's networks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { noGrad, type Tensor } from '../../src/engine/index.ts';
import {
  AutoencoderKlMaisi,
  DiffusionModelUNetMaisi,
  MAISI_V1_AUTOENCODER,
  MAISI_V1_UNET,
  fromMonaiArgs,
  loadMaisiAutoencoder,
  loadMaisiUNet,
  maisiConditioning,
  timestepEmbedding,
  type UNetTap,
} from '../../src/models/index.ts';
import { requireShared } from '../helpers/shared.ts';
import { assertClose, get, loadTensors } from '../helpers/tensors.ts';

function readJson(path: string) {
  return JSON.parse(readFileSync(path, 'utf8'));
}

test('tiny MAISI U-Net reproduces MONAI outputs and every tap (cases b1, b2)', (t) => {
  const dir = requireShared(t, 'fixtures', 'maisi-unet-tiny');
  if (!dir) return;
  const config = fromMonaiArgs('unet', readJson(join(dir, 'config.json')).constructor_args, MAISI_V1_UNET);
  const { unet, scaleFactor } = loadMaisiUNet(join(dir, 'unet.pt'), config);
  assert.equal(scaleFactor, Math.fround(0.7875311970710754));
  const ref = loadTensors(join(dir, 'unet_io.safetensors'));
  const taps: UNetTap[] = [
    't_emb_sinusoidal',
    'emb_time',
    'emb_top_region',
    'emb_bottom_region',
    'emb_spacing',
    'emb',
    'conv_in',
    'down_block_0',
    'down_block_1',
    'down_block_2',
    'down_block_3',
    'middle_block',
    'up_block_0',
    'up_block_1',
    'up_block_2',
    'up_block_3',
    'out',
  ];
  const worst: Record<string, number> = {};
  for (const c of ['b1', 'b2']) {
    const out = noGrad(() =>
      unet.forwardWithTaps(
        get(ref, `${c}.x`),
        get(ref, `${c}.timesteps`),
        {
          topRegionIndex: get(ref, `${c}.top_region_index`),
          bottomRegionIndex: get(ref, `${c}.bottom_region_index`),
          spacing: get(ref, `${c}.spacing`),
        },
        taps,
      ),
    );
    for (const tap of taps) {
      worst[`${c}.${tap}`] = assertClose(out.get(tap) as Tensor, get(ref, `${c}.${tap}`), `${c}.${tap}`);
    }
  }
  const max = Math.max(...Object.values(worst));
  console.log(`# U-Net tiny: worst relative error over all taps ${max.toExponential(2)}`);
  assert.ok(max < 1e-5, 'a correct float32 implementation lands near 1e-6 of max|ref|');
  unet.dispose();
});

test('sinusoidal timestep embedding at the full width matches MONAI', (t) => {
  const dir = requireShared(t, 'fixtures', 'maisi-unet-tiny');
  if (!dir) return;
  const ref = loadTensors(join(dir, 'unet_io.safetensors'));
  const ts = get(ref, 'extra.t_emb_timesteps');
  assertClose(timestepEmbedding(ts, 64), get(ref, 'extra.t_emb_sinusoidal_dim64'), 'dim 64', 1e-6);
  assertClose(timestepEmbedding(ts, 4), get(ref, 'extra.t_emb_sinusoidal_dim4'), 'dim 4', 1e-6);
});

test('MAISI conditioning: one-hot regions and spacing ×100, rounded to float16', () => {
  const c = maisiConditioning('chest', 'abdomen', [0.6835, 0.75, 1.25]);
  assert.deepEqual(c.topRegionIndex.toArray(), [0, 100, 0, 0]);
  assert.deepEqual(c.bottomRegionIndex.toArray(), [0, 0, 100, 0]);
  // 68.35 is not a float16 number; its nearest is 68.375 (the fixture README's example).
  assert.deepEqual(c.spacing.toArray(), [68.375, 75, 125]);
  assert.throws(
    () => maisiConditioning('neck' as never, 'chest', [1, 1, 1]),
    /top region: expected one of head, chest, abdomen, lower-body, got "neck"/,
  );
});

test('tiny MAISI autoencoder reproduces z_mu, z_sigma, the reconstruction and intermediates', (t) => {
  const dir = requireShared(t, 'fixtures', 'maisi-vae-tiny');
  if (!dir) return;
  const config = fromMonaiArgs(
    'autoencoder',
    readJson(join(dir, 'config.json')).constructor_args,
    MAISI_V1_AUTOENCODER,
  );
  const vae = loadMaisiAutoencoder(join(dir, 'autoencoder.pt'), config);
  const ref = loadTensors(join(dir, 'vae_io.safetensors'));
  const x = get(ref, 'x');
  noGrad(() => {
    const { mu, sigma } = vae.encode(x);
    const errors = [
      assertClose(mu, get(ref, 'z_mu'), 'z_mu'),
      assertClose(sigma, get(ref, 'z_sigma'), 'z_sigma'),
      assertClose(vae.encoder.forward(x), get(ref, 'encoder_out'), 'encoder_out'),
      assertClose(
        vae.postQuantConv.forward(get(ref, 'z_mu')),
        get(ref, 'post_quant_conv_out'),
        'post_quant_conv_out',
      ),
      assertClose(vae.reconstruct(x), get(ref, 'recon'), 'recon'),
    ];
    console.log(`# VAE tiny: worst relative error ${Math.max(...errors).toExponential(2)}`);
  });
  vae.dispose();
});

test('full-size MAISI v1 configurations have exactly the manifest keys, shapes and parameter counts', (t) => {
  const path = requireShared(t, 'fixtures', 'maisi-full-manifest', 'maisi_v1_ddpm_full_manifest.json');
  if (!path) return;
  const manifest = readJson(path);
  const check = (
    model: DiffusionModelUNetMaisi | AutoencoderKlMaisi,
    entry: {
      state_dict: { name: string; shape: number[] }[];
      num_params: number;
      constructor_args: Record<string, unknown>;
    },
  ) => {
    const ours = [...model.stateDict()].map(([k, v]) => ({ name: k, shape: [...v.shape] }));
    assert.deepEqual(
      ours,
      entry.state_dict.map((e) => ({ name: e.name, shape: e.shape })),
    );
    assert.equal(model.numParameters(), entry.num_params);
  };
  const unetArgs = manifest.diffusion_unet.constructor_args;
  const unet = new DiffusionModelUNetMaisi(fromMonaiArgs('unet', unetArgs, MAISI_V1_UNET));
  assert.deepEqual(fromMonaiArgs('unet', unetArgs, MAISI_V1_UNET), MAISI_V1_UNET);
  check(unet, manifest.diffusion_unet);
  unet.dispose();
  const vaeArgs = manifest.autoencoder.constructor_args;
  assert.deepEqual(fromMonaiArgs('autoencoder', vaeArgs, MAISI_V1_AUTOENCODER), MAISI_V1_AUTOENCODER);
  const vae = new AutoencoderKlMaisi(MAISI_V1_AUTOENCODER);
  check(vae, manifest.autoencoder);
  vae.dispose();
});

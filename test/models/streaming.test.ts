/**
 * The streaming encoder equals the whole-volume encoder: with float32 storage up to float rounding
 * (slabs smaller than the halo and non-dividing slab sizes included), with float16 storage within
 * half-precision error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { memoryStats, noGrad, randn } from '../../src/engine/index.ts';
import {
  AutoencoderKlMaisi,
  MAISI_V1_AUTOENCODER,
  encodeStreaming,
  fromMonaiArgs,
  loadMaisiAutoencoder,
} from '../../src/models/index.ts';
import { requireShared } from '../helpers/shared.ts';
import { assertClose, get, loadTensors } from '../helpers/tensors.ts';

test('streaming autoencoder encode matches encode (float32 storage) and the MONAI reference', (t) => {
  const dir = requireShared(t, 'fixtures', 'maisi-vae-tiny');
  if (!dir) return;
  const config = fromMonaiArgs(
    'autoencoder',
    JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).constructor_args,
    MAISI_V1_AUTOENCODER,
  );
  const vae = loadMaisiAutoencoder(join(dir, 'autoencoder.pt'), config);
  const ref = loadTensors(join(dir, 'vae_io.safetensors'));
  const x = get(ref, 'x');
  noGrad(() => {
    const whole = vae.encode(x);
    for (const slab of [1, 3, 8, 32]) {
      const streamed = encodeStreaming(vae, x, { slab, storage: 'float32' });
      assertClose(streamed.mu, whole.mu, `mu, slab ${slab}`, 1e-5);
      assertClose(streamed.sigma, whole.sigma, `sigma, slab ${slab}`, 1e-5);
      assertClose(streamed.mu, get(ref, 'z_mu'), `mu vs MONAI, slab ${slab}`);
    }
    const half = encodeStreaming(vae, x, { slab: 5, storage: 'float16' });
    const err = assertClose(half.mu, whole.mu, 'mu, float16 storage', 1e-2);
    console.log(`# float16 storage: relative error ${err.toExponential(2)}`);
    assert.ok(err > 0, 'float16 storage really rounds');
  });
  assert.throws(() => encodeStreaming(vae, x, { slab: 0 }), {
    message: /^slab: expected an integer >= 1, got 0$/,
  });
});

test('the streaming encoder holds at most about two full-resolution activations at once', () => {
  // 16 channels at 256×32×16: one full-resolution activation is 8 MiB in float32. A residual block
  // needs its input and its first convolution's output stored; everything else is per slab (8 of the
  // 256 rows, plus a halo, a few times over).
  const vae = new AutoencoderKlMaisi({
    ...MAISI_V1_AUTOENCODER,
    numChannels: [16, 32, 32],
    numResBlocks: [1, 1, 1],
    normNumGroups: 8,
  }).eval();
  const x = randn([1, 1, 256, 32, 16]);
  const activation = 16 * x.numel * 4;
  noGrad(() => {
    const before = memoryStats({ resetPeak: true }).bytes;
    const d = encodeStreaming(vae, x, { storage: 'float32' });
    const held = (memoryStats().peakBytes - before) / activation;
    d.mu.dispose();
    d.sigma.dispose();
    console.log(`# streaming encode peak: ${held.toFixed(2)} full-resolution activations`);
    // Keeping every slab's float64 statistics copy alive (an earlier defect) peaked at 8.8 here. The
    // two stored activations measure 2.20 alone and 1.996 after the whole suite (the allocator's
    // rounding of what other tests left cached), so the floor is 1.9.
    assert.ok(held >= 1.9 && held < 3, `peak of ${held.toFixed(3)} activations`);
  });
  x.dispose();
  vae.dispose();
});

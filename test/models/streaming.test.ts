/**
 * The streaming encoder equals the whole-volume encoder: with float32 storage up to float rounding
 * (slabs smaller than the halo and non-dividing slab sizes included), with float16 storage within
 * half-precision error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { noGrad } from '../../src/engine/index.ts';
import { MAISI_V1_AUTOENCODER, encodeStreaming, fromMonaiArgs, loadMaisiAutoencoder } from '../../src/models/index.ts';
import { requireShared } from '../helpers/shared.ts';
import { assertClose, get, loadTensors } from '../helpers/tensors.ts';

test('streaming autoencoder encode matches encode (float32 storage) and the MONAI reference', (t) => {
  const dir = requireShared(t, 'fixtures', 'maisi-vae-tiny');
  if (!dir) return;
  const config = fromMonaiArgs('autoencoder', JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).constructor_args, MAISI_V1_AUTOENCODER);
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
  assert.throws(() => encodeStreaming(vae, x, { slab: 0 }), { message: /^slab: expected an integer >= 1, got 0$/ });
});

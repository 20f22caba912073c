/** The tiny random-weight MAISI networks of ../shared/fixtures as a MedDIFT model. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadMaisiModel, type MaisiLatentDiffusion } from '../../src/models/index.ts';

/** `root` is ../shared/fixtures. */
export function tinyFixtureModel(root: string): MaisiLatentDiffusion {
  const info = JSON.parse(readFileSync(join(root, 'meddift-tiny', 'meddift_tiny.json'), 'utf8'));
  return loadMaisiModel({
    unet: join(root, 'maisi-unet-tiny', 'unet.pt'),
    autoencoder: join(root, 'maisi-vae-tiny', 'autoencoder.pt'),
    config: { diffusion_unet_def: info.models.unet_args, autoencoder_def: info.models.vae_args },
  });
}

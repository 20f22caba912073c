/** The tiny random-weight MAISI networks of ../shared/fixtures as a MedDIFT model. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DDIMScheduler,
  MAISI_V1_AUTOENCODER,
  MAISI_V1_UNET,
  fromMonaiArgs,
  loadMaisiAutoencoder,
  loadMaisiUNet,
  type LatentDiffusionModel,
} from '../../src/models/index.ts';

/** `root` is ../shared/fixtures. */
export function tinyFixtureModel(root: string): LatentDiffusionModel {
  const info = JSON.parse(readFileSync(join(root, 'meddift-tiny', 'meddift_tiny.json'), 'utf8'));
  const { unet, scaleFactor } = loadMaisiUNet(
    join(root, 'maisi-unet-tiny', 'unet.pt'),
    fromMonaiArgs('unet', info.models.unet_args, MAISI_V1_UNET),
  );
  const autoencoder = loadMaisiAutoencoder(
    join(root, 'maisi-vae-tiny', 'autoencoder.pt'),
    fromMonaiArgs('autoencoder', info.models.vae_args, MAISI_V1_AUTOENCODER),
  );
  return { name: 'maisi-tiny-fixture', unet, autoencoder, scaleFactor, scheduler: new DDIMScheduler() };
}

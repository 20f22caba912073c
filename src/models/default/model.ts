/**
 * diffreg's shipped default model (models/default): MAISI-architecture networks at small width,
 * trained by this project (see models/default/MODEL_CARD.md). The weights are verified against the
 * SHA-256 recorded in model.json before loading; float16 weights become float32 networks.
 */
import { join } from 'node:path';
import { fail } from '../../util/errors.ts';
import { readJsonFile } from '../../util/json.ts';
import { loadMaisiAutoencoder, loadMaisiUNet } from '../maisi/checkpoint.ts';
import {
  checkAutoencoderConfig,
  checkUNetConfig,
  type AutoencoderMaisiConfig,
  type UNetMaisiConfig,
} from '../maisi/config.ts';
import { MaisiLatentDiffusion } from '../maisi/latent-diffusion.ts';
import { shippedModelDir, verifiedFile } from '../shipped.ts';

export const DEFAULT_MODEL_DIR = shippedModelDir('default');

interface ModelJson {
  name: string;
  autoencoder: AutoencoderMaisiConfig;
  unet: UNetMaisiConfig;
  scaleFactor: number;
  featureLevels?: number[];
  sha256: Record<string, string>;
}

/** Loads the default model from `dir` (models/default of this repository unless given). */
export function loadDefaultModel(dir: string = DEFAULT_MODEL_DIR): MaisiLatentDiffusion {
  const jsonPath = join(dir, 'model.json');
  const meta = readJsonFile(jsonPath, 'default model description') as ModelJson;
  const aePath = verifiedFile(
    dir,
    'autoencoder.safetensors',
    meta.sha256?.['autoencoder.safetensors'],
    'model.json',
  );
  const unetPath = verifiedFile(dir, 'unet.safetensors', meta.sha256?.['unet.safetensors'], 'model.json');
  const unetConfig = checkUNetConfig(meta.unet);
  const levels = meta.featureLevels;
  const n = unetConfig.numChannels.length;
  if (
    levels !== undefined &&
    !(
      Array.isArray(levels) &&
      levels.length > 0 &&
      levels.every((l) => Number.isInteger(l) && l >= 0 && l < n)
    )
  )
    fail(jsonPath, `featureLevels must list decoder levels 0-${n - 1}, got ${JSON.stringify(levels)}`);
  const autoencoder = loadMaisiAutoencoder(aePath, checkAutoencoderConfig(meta.autoencoder));
  const { unet, scaleFactor } = loadMaisiUNet(unetPath, unetConfig);
  return new MaisiLatentDiffusion({
    name: meta.name,
    unet,
    autoencoder,
    scaleFactor,
    recommendedLevels: levels,
  });
}

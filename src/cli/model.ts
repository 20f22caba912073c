/**
 * The model options shared by the commands: the embedded default model, or NVIDIA MAISI checkpoints
 * given by path (`--unet`, `--autoencoder`, optionally `--model-config`).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DiffregError } from '../util/errors.ts';
import { loadMaisiModel, type DiffusionFeatureModel } from '../methods/meddift/index.ts';
import { DEFAULT_MODEL_DIR, loadDefaultModel } from '../models/index.ts';
import type { OptionSpec } from './args.ts';

export const MODEL_OPTIONS: OptionSpec = {
  unet: { type: 'string' },
  autoencoder: { type: 'string' },
  'model-config': { type: 'string' },
};

export const MODEL_HELP: [string, string][] = [
  ['--unet FILE', 'MAISI diffusion U-Net checkpoint (diff_unet_3d_ddpm*.pt); with --autoencoder'],
  ['--autoencoder FILE', 'MAISI autoencoder checkpoint (autoencoder_*.pt)'],
  ['--model-config FILE', 'MAISI network config JSON (default: MAISI v1 "ddpm")'],
  ['', 'without --unet/--autoencoder: the embedded default model (models/default)'],
];

export function defaultModelInstalled(): boolean {
  return existsSync(join(DEFAULT_MODEL_DIR, 'model.json'));
}

export function loadModel(values: Record<string, unknown>): DiffusionFeatureModel {
  const unet = values.unet as string | undefined;
  const autoencoder = values.autoencoder as string | undefined;
  if (unet && autoencoder)
    return loadMaisiModel({ unet, autoencoder, config: values['model-config'] as string | undefined });
  if (unet || autoencoder) throw new DiffregError('model: give both --unet and --autoencoder');
  if (!defaultModelInstalled()) {
    throw new DiffregError(
      `model: the default model is not installed (${DEFAULT_MODEL_DIR}); give --unet and --autoencoder (MAISI checkpoints)`,
    );
  }
  return loadDefaultModel();
}

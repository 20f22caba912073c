/** The `--model/--unet/--autoencoder/--model-config` options shared by match and register. */
import { DiffregError } from '../util/errors.ts';
import { loadMaisiModel, type DiffusionFeatureModel } from '../methods/meddift/index.ts';
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
];

export function loadModel(values: Record<string, unknown>): DiffusionFeatureModel {
  const unet = values.unet as string | undefined;
  const autoencoder = values.autoencoder as string | undefined;
  if (unet && autoencoder)
    return loadMaisiModel({ unet, autoencoder, config: values['model-config'] as string | undefined });
  if (unet || autoencoder) throw new DiffregError('model: give both --unet and --autoencoder');
  throw new DiffregError(
    'model: no default model is installed in this build; give --unet and --autoencoder (MAISI checkpoints)',
  );
}

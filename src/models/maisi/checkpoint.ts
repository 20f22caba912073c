/**
 * Loading MAISI checkpoints as NVIDIA distributes them, with strict key and shape checking:
 * - the diffusion U-Net file (`diff_unet_3d_ddpm*.pt`) is a dict holding `unet_state_dict` and the
 *   latent `scale_factor` (plus `epoch`, `loss`, `num_train_timesteps`);
 * - the autoencoder file (`autoencoder_epoch273.pt`, `autoencoder_v1.pt`) is a plain state dict.
 * diffreg's own safetensors files hold the same keys (scale_factor in the metadata).
 */
import { existsSync } from 'node:fs';
import { loadStateDict, scalarValue } from '../../engine/checkpoint/index.ts';
import { DiffregError, fail } from '../../util/errors.ts';
import { AutoencoderKlMaisi } from './autoencoder.ts';
import {
  MAISI_V1_AUTOENCODER,
  MAISI_V1_UNET,
  type AutoencoderMaisiConfig,
  type UNetMaisiConfig,
} from './config.ts';
import { DiffusionModelUNetMaisi } from './unet.ts';

export interface LoadedUNet {
  unet: DiffusionModelUNetMaisi;
  /** The factor MAISI multiplies autoencoder latents by before diffusion (1/std of the latents). */
  scaleFactor: number;
}

function loadInto(path: string, model: DiffusionModelUNetMaisi | AutoencoderKlMaisi, key?: string) {
  if (!existsSync(path)) fail(path, 'checkpoint file not found');
  const { tensors, rest } = loadStateDict(path, key === undefined ? {} : { key });
  try {
    model.loadStateDict(tensors, { strict: true });
  } catch (e) {
    model.dispose();
    if (e instanceof DiffregError) {
      throw new DiffregError(
        `${path}: does not fit the ${model.constructor.name} configuration: ${e.message.replace(/^[^:]*: /, '')}`,
      );
    }
    throw e;
  }
  return rest;
}

export function loadMaisiUNet(path: string, config: UNetMaisiConfig = MAISI_V1_UNET): LoadedUNet {
  const unet = new DiffusionModelUNetMaisi(config);
  const rest = loadInto(path, unet, path.endsWith('.safetensors') ? undefined : 'unet_state_dict');
  const raw = rest.get('scale_factor');
  if (raw === undefined) {
    unet.dispose();
    fail(path, 'no scale_factor in the U-Net checkpoint (MAISI stores it beside unet_state_dict)');
  }
  const scaleFactor = scalarValue(raw);
  if (scaleFactor === undefined || !Number.isFinite(scaleFactor) || scaleFactor <= 0) {
    unet.dispose();
    fail(path, `scale_factor must be a positive number, got ${scaleFactor}`);
  }
  return { unet: unet.eval(), scaleFactor };
}

export function loadMaisiAutoencoder(
  path: string,
  config: AutoencoderMaisiConfig = MAISI_V1_AUTOENCODER,
): AutoencoderKlMaisi {
  const vae = new AutoencoderKlMaisi(config);
  loadInto(path, vae);
  return vae.eval();
}

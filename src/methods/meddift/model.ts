/**
 * Choosing the latent diffusion model for MedDIFT: NVIDIA MAISI checkpoints given by path (with MAISI's
 * v1 configuration or a MAISI network-config JSON), loaded strictly.
 */
import { existsSync, readFileSync } from 'node:fs';
import {
  DDIMScheduler,
  MAISI_V1_AUTOENCODER,
  MAISI_V1_UNET,
  fromMonaiArgs,
  loadMaisiAutoencoder,
  loadMaisiUNet,
} from '../../models/index.ts';
import { fail } from '../../util/errors.ts';
import type { DiffusionFeatureModel } from './features.ts';

export interface MaisiModelPaths {
  /** U-Net checkpoint (`diff_unet_3d_ddpm*.pt` or safetensors with scale_factor metadata). */
  unet: string;
  /** Autoencoder checkpoint (`autoencoder_epoch273.pt`, `autoencoder_v1.pt`, or safetensors). */
  autoencoder: string;
  /**
   * A MAISI network-config JSON (`config_maisi3d-ddpm.json` style, with `diffusion_unet_def` and
   * `autoencoder_def`), as a path or already parsed; MAISI v1 "ddpm" when absent.
   */
  config?: string | Record<string, Record<string, unknown>>;
}

function readConfig(path: string): Record<string, Record<string, unknown>> {
  if (!existsSync(path)) fail(path, 'network config file not found');
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    fail(path, `not valid JSON (${(e as Error).message})`);
  }
}

export function loadMaisiModel(paths: MaisiModelPaths): DiffusionFeatureModel {
  const config = typeof paths.config === 'string' ? readConfig(paths.config) : paths.config;
  const source = typeof paths.config === 'string' ? paths.config : 'network config';
  const section = (key: string) => {
    const v = config?.[key];
    if (config && (typeof v !== 'object' || v === null)) fail(source, `no "${key}" section`);
    return v;
  };
  const unetArgs = section('diffusion_unet_def');
  const vaeArgs = section('autoencoder_def');
  const { unet, scaleFactor } = loadMaisiUNet(
    paths.unet,
    unetArgs ? fromMonaiArgs('unet', unetArgs, MAISI_V1_UNET) : MAISI_V1_UNET,
  );
  try {
    const autoencoder = loadMaisiAutoencoder(
      paths.autoencoder,
      vaeArgs ? fromMonaiArgs('autoencoder', vaeArgs, MAISI_V1_AUTOENCODER) : MAISI_V1_AUTOENCODER,
    );
    return { name: 'maisi', unet, autoencoder, scaleFactor, scheduler: new DDIMScheduler() };
  } catch (e) {
    unet.dispose();
    throw e;
  }
}

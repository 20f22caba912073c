/**
 * MAISI networks as a LatentDiffusionModel: NVIDIA's checkpoints (loaded strictly, with MAISI's v1
 * configuration or a MAISI network-config JSON) and diffreg's default model, which has MAISI's
 * architecture at a small width.
 */
import { tensor, tidy, type Generator, type Tensor } from '../../engine/index.ts';
import { readJsonFile } from '../../util/json.ts';
import { fail } from '../../util/errors.ts';
import type { ImageConditioning, LatentDiffusionModel } from '../latent-diffusion.ts';
import { DDIMScheduler } from '../schedulers/ddim.ts';
import type { NoiseScheduler } from '../schedulers/schedule.ts';
import type { AutoencoderKlMaisi, LatentDistribution } from './autoencoder.ts';
import { loadMaisiAutoencoder, loadMaisiUNet } from './checkpoint.ts';
import { fromMonaiArgs, MAISI_V1_AUTOENCODER, MAISI_V1_UNET } from './config.ts';
import { encodeImage } from './streaming.ts';
import { maisiConditioning, type DiffusionModelUNetMaisi, type UNetTap } from './unet.ts';

export interface MaisiNetworks {
  name: string;
  unet: DiffusionModelUNetMaisi;
  autoencoder: AutoencoderKlMaisi;
  /** Latent scale (the U-Net checkpoint's `scale_factor`). */
  scaleFactor: number;
  /** Default: DDIM with MAISI's schedule (add_noise is the same for DDPM and DDIM). */
  scheduler?: NoiseScheduler;
  recommendedLevels?: readonly number[];
}

export class MaisiLatentDiffusion implements LatentDiffusionModel {
  readonly name: string;
  readonly unet: DiffusionModelUNetMaisi;
  readonly autoencoder: AutoencoderKlMaisi;
  readonly scaleFactor: number;
  readonly scheduler: NoiseScheduler;
  readonly recommendedLevels?: readonly number[];

  constructor(n: MaisiNetworks) {
    this.name = n.name;
    this.unet = n.unet;
    this.autoencoder = n.autoencoder;
    this.scaleFactor = n.scaleFactor;
    this.scheduler = n.scheduler ?? new DDIMScheduler();
    this.recommendedLevels = n.recommendedLevels;
  }

  get decoderLevels(): number {
    return this.unet.config.numChannels.length;
  }

  /** Streams clinical-size images through the encoder in bounded memory (see streaming.ts). */
  encode(image: Tensor): LatentDistribution {
    return encodeImage(this.autoencoder, image);
  }

  sampleLatent(distribution: LatentDistribution, eps: Tensor | Generator): Tensor {
    return tidy(() => this.autoencoder.sample(distribution, eps).mul(this.scaleFactor));
  }

  /** MAISI's decoder up-block outputs (`up_block_l`, after each block's upsampler), batch dim dropped. */
  decoderTaps(
    noisyLatent: Tensor,
    timestep: number,
    image: ImageConditioning,
    levels: readonly number[],
  ): Tensor[] {
    const region = image.region ?? { top: 'chest', bottom: 'chest' };
    return tidy(() => {
      const taps = levels.map((l) => `up_block_${l}` as UNetTap);
      const out = this.unet.forwardWithTaps(
        noisyLatent,
        tensor([timestep], { dtype: 'int64' }),
        maisiConditioning(region.top, region.bottom, image.spacingMm),
        taps,
      );
      return taps.map((name) => (out.get(name) as Tensor).squeeze(0));
    });
  }

  dispose(): void {
    this.unet.dispose();
    this.autoencoder.dispose();
  }
}

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

/** NVIDIA's MAISI checkpoints, loaded strictly. */
export function loadMaisiModel(paths: MaisiModelPaths): MaisiLatentDiffusion {
  const config =
    typeof paths.config === 'string'
      ? (readJsonFile(paths.config, 'network config') as Record<string, Record<string, unknown>>)
      : paths.config;
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
    return new MaisiLatentDiffusion({ name: 'maisi', unet, autoencoder, scaleFactor });
  } catch (e) {
    unet.dispose();
    throw e;
  }
}

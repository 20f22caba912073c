/**
 * The model options shared by the commands: the embedded default model, or NVIDIA MAISI checkpoints
 * given by path (`--unet`, `--autoencoder`, optionally `--model-config`).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DiffregError, fail } from '../util/errors.ts';
import { readJsonFile } from '../util/json.ts';
import {
  usesDiffusionModel,
  type ConcreteDescriptor,
  type DiffusionFeatureModel,
} from '../methods/meddift/index.ts';
import { loadMaisiModel } from '../models/index.ts';
import {
  DEFAULT_MODEL_DIR,
  MAISI_V1_AUTOENCODER,
  MAISI_V1_UNET,
  fromMonaiArgs,
  loadDefaultModel,
} from '../models/index.ts';
import type { OptionSpec } from './args.ts';

export const MODEL_OPTIONS: OptionSpec = {
  unet: { type: 'string' },
  autoencoder: { type: 'string' },
  'model-config': { type: 'string' },
};

/** Each model option names an input file. */
export const MODEL_INPUTS = Object.keys(MODEL_OPTIONS);

export const MODEL_HELP: [string, string][] = [
  ['--unet FILE', 'MAISI diffusion U-Net checkpoint (diff_unet_3d_ddpm*.pt); with --autoencoder'],
  ['--autoencoder FILE', 'MAISI autoencoder checkpoint (autoencoder_*.pt)'],
  ['--model-config FILE', 'MAISI network config JSON, with --unet/--autoencoder (default: MAISI v1 "ddpm")'],
  ['', 'without --unet/--autoencoder: the embedded default model (models/default)'],
];

export function defaultModelInstalled(): boolean {
  return existsSync(join(DEFAULT_MODEL_DIR, 'model.json'));
}

const SECTIONS = [
  ['diffusion_unet_def', 'unet', MAISI_V1_UNET],
  ['autoencoder_def', 'autoencoder', MAISI_V1_AUTOENCODER],
] as const;

/**
 * A `--model-config` file, read and checked against the network configurations before anything is
 * loaded. Its sections are MONAI's untyped dictionaries and the configuration checks assume MONAI's
 * types, so a wrong type (a number where a list belongs) ends in a TypeError there; trying the section's
 * entries one at a time then names the entry at fault.
 */
function readModelConfig(path: string): Record<string, Record<string, unknown>> {
  const config = readJsonFile(path, 'network config') as Record<string, Record<string, unknown>>;
  for (const [key, kind, base] of SECTIONS) {
    const section = config?.[key];
    if (typeof section !== 'object' || section === null || Array.isArray(section))
      fail(path, `no "${key}" section`);
    const problem = (args: Record<string, unknown>) => {
      try {
        fromMonaiArgs(kind, args, base);
        return undefined;
      } catch (e) {
        return e as Error;
      }
    };
    const error = problem(section);
    if (error instanceof DiffregError) fail(path, `${key}: ${error.message}`);
    if (error) {
      const entry = Object.keys(section).find((k) => {
        const e = problem({ [k]: section[k] });
        return e && !(e instanceof DiffregError);
      });
      fail(
        path,
        entry === undefined
          ? `${key}: a value of the wrong type`
          : `${key}.${entry}: wrong type of value ${JSON.stringify(section[entry])}`,
      );
    }
  }
  return config;
}

/**
 * Checks the model options (both checkpoints or neither; a config only with them, and the config
 * itself) and returns the loader, to run once inputs are read. The default model's presence is checked
 * by the loader: `bench` calls it only for the methods that need a model.
 */
export function modelLoader(values: Record<string, unknown>): () => DiffusionFeatureModel {
  const unet = values.unet as string | undefined;
  const autoencoder = values.autoencoder as string | undefined;
  const configPath = values['model-config'] as string | undefined;
  if (Boolean(unet) !== Boolean(autoencoder))
    throw new DiffregError('model: give both --unet and --autoencoder');
  if (unet && autoencoder) {
    const config = configPath === undefined ? undefined : readModelConfig(configPath);
    return () => loadMaisiModel({ unet, autoencoder, config });
  }
  if (configPath !== undefined)
    throw new DiffregError('--model-config: only with --unet and --autoencoder (MAISI checkpoints)');
  return () => {
    if (!defaultModelInstalled()) {
      throw new DiffregError(
        `model: the default model is not installed (${DEFAULT_MODEL_DIR}); give --unet and --autoencoder (MAISI checkpoints)`,
      );
    }
    return loadDefaultModel();
  };
}

/**
 * Refuses, in one line, a model given (--unet, --autoencoder, --model-config) for a pair whose
 * descriptor uses no diffusion model: it would be silently ignored.
 */
export function refuseUnusedModel(values: Record<string, unknown>, descriptor: ConcreteDescriptor): void {
  if (usesDiffusionModel(descriptor)) return;
  const given = MODEL_INPUTS.find((o) => values[o] !== undefined);
  if (given)
    throw new DiffregError(
      `--${given}: only with the diffusion model's features; the descriptor of this pair is ${descriptor}`,
    );
}

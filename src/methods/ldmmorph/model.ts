/**
 * LDM-Morph's shipped model (models/ldmmorph): the 2-D LDM (autoencoder and U-Net, written by
 * `diffreg train ldm2d`) and the registration network trained on its features (added by `diffreg
 * train ldmmorph`). Weights are float16 safetensors whose SHA-256 model.json records and the loaders
 * check before reading them. The network records the SHA-256 of the LDM it was trained with: a
 * re-exported, different LDM drops it, and it is never exported beside another LDM.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { nn } from '../../engine/index.ts';
import {
  Ldm2dAutoencoder,
  LDM2D_SCHEDULE,
  Ldm2dUNet,
  LDM_MORPH_FEATURE_TIMESTEP,
  type Ldm2dConfig,
  type Ldm2dModel,
} from '../../models/ldm2d/index.ts';
import { LdmMorph } from '../../models/ldmmorph/index.ts';
import { DDIMScheduler } from '../../models/schedulers/ddim.ts';
import { loadVerifiedWeights, shippedModelDir, writeHalfWeights } from '../../models/shipped.ts';
import { writeFileAtomic } from '../../util/atomic.ts';
import { fail } from '../../util/errors.ts';
import { readJsonFile } from '../../util/json.ts';
import { SLICE_CONTENT_FRACTION } from './grid.ts';
import type { NetworkRecord } from './train.ts';

export const LDM_MORPH_MODEL_DIR = shippedModelDir('ldmmorph');

const LDM_FILES = ['autoencoder.safetensors', 'unet.safetensors'] as const;
const NETWORK_FILE = 'network.safetensors';

interface ModelJson {
  name: string;
  /** The part of the network grid the slice fills (its version: other values mean another grid). */
  contentFraction: number;
  ldm: {
    config: Ldm2dConfig;
    /** The U-Net's latent scale in full precision (its float16 buffer is rounded). */
    latentScale: number;
    schedule: typeof LDM2D_SCHEDULE;
    featureTimestep: number;
    [card: string]: unknown;
  };
  network?: NetworkRecord & { [card: string]: unknown };
  sha256: Record<string, string>;
}

/** A loaded LDM, frozen, and the SHA-256 of its files. */
export interface LoadedLdm {
  ldm: Ldm2dModel;
  sha256: Record<string, string>;
  dispose(): void;
}

export interface LdmMorphModel extends LoadedLdm {
  network: LdmMorph;
  variant: NetworkRecord['variant'];
}

const jsonPath = (dir: string) => join(dir, 'model.json');

function readModelJson(dir: string): ModelJson {
  const path = jsonPath(dir);
  if (!existsSync(path))
    fail(path, 'LDM-Morph model not found (train it: diffreg train ldm2d, then diffreg train ldmmorph)');
  const meta = readJsonFile(path, 'LDM-Morph model description') as ModelJson;
  if (meta.contentFraction !== SLICE_CONTENT_FRACTION)
    fail(path, `network grid content fraction ${meta.contentFraction} differs from this version's`);
  return meta;
}

/** `module` with the weights of `dir/file` after its SHA-256 check, in eval mode, frozen. */
function loadVerified<M extends nn.Module>(dir: string, file: string, meta: ModelJson, module: M): M {
  loadVerifiedWeights(dir, file, meta.sha256?.[file], 'model.json', module);
  for (const p of module.parameters()) p.requiresGrad_(false);
  return module;
}

function ldmOf(dir: string, meta: ModelJson): LoadedLdm {
  const autoencoder = loadVerified(dir, LDM_FILES[0], meta, new Ldm2dAutoencoder(meta.ldm.config));
  const unet = loadVerified(dir, LDM_FILES[1], meta, new Ldm2dUNet(meta.ldm.config));
  unet.latentScale = meta.ldm.latentScale;
  return {
    ldm: { autoencoder, unet, scheduler: new DDIMScheduler(LDM2D_SCHEDULE) },
    sha256: Object.fromEntries(LDM_FILES.map((f) => [f, meta.sha256[f]])),
    dispose: () => {
      autoencoder.dispose();
      unet.dispose();
    },
  };
}

/** The LDM of models/ldmmorph (or `dir`), its files checked. */
export const loadLdm = (dir: string = LDM_MORPH_MODEL_DIR): LoadedLdm => ldmOf(dir, readModelJson(dir));

/** The whole model of models/ldmmorph (or `dir`): LDM and network, every file checked. */
export function loadLdmMorphModel(dir: string = LDM_MORPH_MODEL_DIR): LdmMorphModel {
  const meta = readModelJson(dir);
  if (!meta.network) fail(jsonPath(dir), 'holds no LDM-Morph network yet (train it: diffreg train ldmmorph)');
  const loaded = ldmOf(dir, meta);
  const network = loadVerified(dir, NETWORK_FILE, meta, new LdmMorph(meta.network.config));
  return {
    ...loaded,
    network,
    variant: meta.network.variant,
    dispose: () => {
      loaded.dispose();
      network.dispose();
    },
  };
}

const sameHashes = (a: Record<string, string>, b: Record<string, string>) =>
  LDM_FILES.every((f) => a[f] === b[f]);

const writeModelJson = (dir: string, meta: ModelJson) =>
  writeFileAtomic(jsonPath(dir), JSON.stringify(meta, null, 2) + '\n');

/**
 * Writes the LDM (float16) and model.json into `outDir`; `card` adds the model card's facts (split,
 * steps, validation). A network already there stays only if it was trained with these very files.
 */
export function exportLdm(
  outDir: string,
  autoencoder: Ldm2dAutoencoder,
  unet: Ldm2dUNet,
  card: Record<string, unknown>,
): void {
  const sha256: Record<string, string> = {
    [LDM_FILES[0]]: writeHalfWeights(outDir, LDM_FILES[0], autoencoder),
    [LDM_FILES[1]]: writeHalfWeights(outDir, LDM_FILES[1], unet),
  };
  const previous = existsSync(jsonPath(outDir)) ? readModelJson(outDir) : undefined;
  const network =
    previous?.network && sameHashes(previous.network.ldm, sha256) ? previous.network : undefined;
  if (network) sha256[NETWORK_FILE] = previous!.sha256[NETWORK_FILE];
  writeModelJson(outDir, {
    name: 'diffreg-ldmmorph-v1',
    contentFraction: SLICE_CONTENT_FRACTION,
    ldm: {
      config: autoencoder.config,
      latentScale: unet.latentScale,
      schedule: LDM2D_SCHEDULE,
      featureTimestep: LDM_MORPH_FEATURE_TIMESTEP,
      ...card,
    },
    network,
    sha256,
  });
}

/** Adds the network (float16) to the model in `outDir`, whose LDM must be the one it was trained with. */
export function exportNetwork(
  outDir: string,
  network: LdmMorph,
  record: NetworkRecord,
  card: Record<string, unknown>,
): void {
  const meta = readModelJson(outDir);
  if (!sameHashes(meta.sha256, record.ldm))
    fail(
      jsonPath(outDir),
      'its LDM is not the one the network was trained with; train the network again (diffreg train ldmmorph --stage network)',
    );
  const sha256 = { ...meta.sha256, [NETWORK_FILE]: writeHalfWeights(outDir, NETWORK_FILE, network) };
  writeModelJson(outDir, { ...meta, network: { ...record, ...card }, sha256 });
}

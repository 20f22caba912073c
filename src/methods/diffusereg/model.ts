/**
 * DiffuseReg's shipped model (models/diffusereg): the bootstrap registration network (also the
 * `voxelmorph` baseline) and, once trained, the denoiser with its field normalisation. Weights are
 * float16 safetensors whose SHA-256 is recorded in model.json and checked before loading.
 */
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import type { nn } from '../../engine/index.ts';
import { DiffuseRegDenoiser, denoiserConfig, type DenoiserConfig } from '../../models/diffusereg/index.ts';
import { DIFFUSEREG_SCHEDULE, type PredictionType } from '../../models/schedulers/schedule.ts';
import { loadVerifiedWeights, shippedModelDir, writeHalfWeights } from '../../models/shipped.ts';
import { VoxelMorph, type VoxelMorphConfig } from '../../models/voxelmorph/index.ts';
import { writeFileAtomic } from '../../util/atomic.ts';
import { fail } from '../../util/errors.ts';
import { readJsonFile } from '../../util/json.ts';
import { NETWORK_DIMS, NETWORK_SPACING } from './grid.ts';
import type { FlowNormalisation } from './sample.ts';
import type { DenoiserRecord } from './train-denoiser.ts';

export const DIFFUSEREG_MODEL_DIR = shippedModelDir('diffusereg');

interface ModelJson {
  name: string;
  grid: { dims: number[]; spacing: number[] };
  bootstrap: VoxelMorphConfig;
  denoiser?: DenoiserConfig;
  normalisation?: FlowNormalisation;
  schedule?: { predictionType?: PredictionType };
  sha256: Record<string, string>;
  [card: string]: unknown;
}

export interface DiffuseRegModel {
  name: string;
  bootstrap: VoxelMorph;
  /** Absent while only the bootstrap stage is shipped. */
  denoiser?: { network: DiffuseRegDenoiser } & Omit<DenoiserRecord, 'config'>;
  dispose(): void;
}

/** `module` with the float16 weights of `dir/file` after their SHA-256 check (loading converts to float32). */
const loadWeights = <M extends nn.Module>(dir: string, file: string, meta: ModelJson, module: M): M =>
  loadVerifiedWeights(dir, file, meta.sha256?.[file], 'model.json', module);

/** Loads models/diffusereg (or `dir`), checking every file's SHA-256 and the network grid. */
export function loadDiffuseRegModel(dir: string = DIFFUSEREG_MODEL_DIR): DiffuseRegModel {
  const jsonPath = join(dir, 'model.json');
  if (!existsSync(jsonPath))
    fail(jsonPath, 'DiffuseReg model not found (train it: diffreg train diffusereg)');
  const meta = readJsonFile(jsonPath, 'DiffuseReg model description') as ModelJson;
  if (JSON.stringify(meta.grid) !== JSON.stringify({ dims: NETWORK_DIMS, spacing: NETWORK_SPACING }))
    fail(jsonPath, `network grid ${JSON.stringify(meta.grid)} differs from this version's`);
  const bootstrap = loadWeights(dir, 'bootstrap.safetensors', meta, new VoxelMorph(meta.bootstrap));
  let denoiser: DiffuseRegModel['denoiser'];
  if (meta.denoiser) {
    if (!meta.normalisation) fail(jsonPath, 'a denoiser without its field normalisation');
    const network = loadWeights(
      dir,
      'denoiser.safetensors',
      meta,
      new DiffuseRegDenoiser(denoiserConfig(meta.denoiser)),
    );
    const prediction = meta.schedule?.predictionType ?? 'epsilon';
    denoiser = { network, normalisation: meta.normalisation, prediction };
  }
  return {
    name: meta.name,
    bootstrap,
    denoiser,
    dispose: () => {
      bootstrap.dispose();
      denoiser?.network.dispose();
    },
  };
}

/**
 * Writes the networks (float16) and model.json into `outDir`; `card` adds the model card's facts
 * (data split, steps, validation numbers).
 */
export function exportDiffuseRegModel(
  outDir: string,
  networks: {
    bootstrap: VoxelMorph;
    denoiser?: { network: DiffuseRegDenoiser } & Omit<DenoiserRecord, 'config'>;
  },
  card: Record<string, unknown>,
): string {
  const files: Record<string, string> = {
    'bootstrap.safetensors': writeHalfWeights(outDir, 'bootstrap.safetensors', networks.bootstrap),
  };
  if (networks.denoiser)
    files['denoiser.safetensors'] = writeHalfWeights(
      outDir,
      'denoiser.safetensors',
      networks.denoiser.network,
    );
  const meta: ModelJson = {
    name: networks.denoiser ? 'diffreg-diffusereg-v1' : 'diffreg-diffusereg-bootstrap-v1',
    grid: { dims: NETWORK_DIMS, spacing: NETWORK_SPACING },
    bootstrap: networks.bootstrap.config,
    denoiser: networks.denoiser?.network.config,
    normalisation: networks.denoiser?.normalisation,
    schedule: { ...DIFFUSEREG_SCHEDULE, predictionType: networks.denoiser?.prediction ?? 'epsilon' },
    ...card,
    sha256: files,
  };
  writeFileAtomic(join(outDir, 'model.json'), JSON.stringify(meta, null, 2) + '\n');
  return outDir;
}

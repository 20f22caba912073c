/**
 * Shipped model files: float16 safetensors written from a trained module, each recorded by SHA-256 in
 * the model's JSON description and verified before it is loaded; and a stage's newest training
 * checkpoint loaded into a module for export.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensors, writeSafetensors, type RawTensor } from '../engine/checkpoint/index.ts';
import { noGrad, type nn } from '../engine/index.ts';
import { fail } from '../util/errors.ts';
import { checkpointPath, latestCheckpointStep } from './training/checkpoint.ts';

/** The folder of a model shipped with this repository: models/<name>. */
export function shippedModelDir(name: string): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'models', name);
}

/** float16 copies of a module's weights under its state-dict keys (halves the shipped size). */
export function halfWeights(model: nn.Module): [string, RawTensor][] {
  return noGrad(() =>
    [...model.stateDict()].map(([k, t]) => {
      const h = t.half();
      const raw: RawTensor = { dtype: 'float16', shape: [...t.shape], data: h.toBytes() };
      h.dispose();
      return [k, raw];
    }),
  );
}

export const sha256File = (path: string): string =>
  createHash('sha256').update(readFileSync(path)).digest('hex');

/** `dir/file` after checking it against the SHA-256 its description (`json`) records. */
export function verifiedFile(dir: string, file: string, expected: unknown, json: string): string {
  const path = join(dir, file);
  if (!existsSync(path)) fail(path, 'model weights not found');
  if (typeof expected !== 'string') fail(json, `no sha256 recorded for ${file}`);
  const actual = sha256File(path);
  if (actual !== expected)
    fail(path, `SHA-256 ${actual} does not match ${json} (${expected}): the file is corrupt or was changed`);
  return path;
}

/** `module` with the weights of `dir/file` after its SHA-256 check against `expected` (from `json`), in eval mode. */
export function loadVerifiedWeights<M extends nn.Module>(
  dir: string,
  file: string,
  expected: unknown,
  json: string,
  module: M,
): M {
  module.loadStateDict(readSafetensors(verifiedFile(dir, file, expected, json)).tensors);
  return module.eval();
}

/** Writes `module`'s weights as float16 `dir/file`; returns the file's SHA-256 for the model's JSON. */
export function writeHalfWeights(dir: string, file: string, module: nn.Module): string {
  writeSafetensors(join(dir, file), halfWeights(module));
  return sha256File(join(dir, file));
}

/** The weights of the newest checkpoint of a training stage, loaded into `model` (eval mode). */
export function loadStageWeights<M extends nn.Module>(dir: string, model: M): M {
  const step = latestCheckpointStep(dir);
  if (step === undefined) fail(dir, 'no training checkpoint');
  const { tensors } = readSafetensors(checkpointPath(dir, step));
  const weights = new Map(
    [...tensors].filter(([k]) => k.startsWith('model.')).map(([k, v]) => [k.slice(6), v]),
  );
  model.loadStateDict(weights);
  return model.eval();
}

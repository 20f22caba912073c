/**
 * Training checkpoints: one safetensors file per saved step holding the model weights (`model.<key>`),
 * the optimiser's state tensors (`optim.<param index>.<name>`) and, in the metadata, everything else
 * needed to continue exactly (step, optimiser hyperparameters and step counts, LR-scheduler state).
 * Random draws are derived from (seed, step), so the step is the whole RNG state. Writes are atomic.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors, type RawTensor } from '../../engine/checkpoint/index.ts';
import { Tensor, type nn, type optim } from '../../engine/index.ts';
import { fail } from '../../util/errors.ts';

const FILE = /^step-(\d{8})\.safetensors$/;

export function checkpointPath(dir: string, step: number): string {
  return join(dir, `step-${String(step).padStart(8, '0')}.safetensors`);
}

/** The step of the newest checkpoint in `dir`, or undefined. */
export function latestCheckpointStep(dir: string): number | undefined {
  if (!existsSync(dir)) return undefined;
  const steps = readdirSync(dir)
    .map((f) => FILE.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]));
  return steps.length ? Math.max(...steps) : undefined;
}

export function rawOf(t: Tensor): RawTensor {
  return { dtype: t.dtype, shape: [...t.shape], data: t.toBytes() };
}

export interface TrainingState {
  step: number;
  model: nn.Module;
  optimizer: optim.Optimizer<optim.AdamOptions>;
  scheduler: optim.LRScheduler;
  /** Anything else the loop wants back (JSON). */
  extra?: Record<string, unknown>;
}

/** Saves the state and deletes older checkpoints beyond the newest `keep`. */
export function saveCheckpoint(dir: string, s: TrainingState, keep = 2): string {
  const tensors: [string, RawTensor][] = [];
  for (const [k, t] of s.model.stateDict()) tensors.push([`model.${k}`, rawOf(t)]);
  const sd = s.optimizer.stateDict();
  const scalars: Record<string, Record<string, number>> = {};
  for (const [id, entry] of Object.entries(sd.state)) {
    for (const [name, v] of Object.entries(entry)) {
      if (v instanceof Tensor) tensors.push([`optim.${id}.${name}`, rawOf(v)]);
      else (scalars[id] ??= {})[name] = v;
    }
  }
  const path = checkpointPath(dir, s.step);
  writeSafetensors(path, tensors, {
    step: String(s.step),
    param_groups: JSON.stringify(sd.param_groups),
    optimizer_scalars: JSON.stringify(scalars),
    scheduler: JSON.stringify(s.scheduler.stateDict()),
    extra: JSON.stringify(s.extra ?? {}),
  });
  const old = readdirSync(dir)
    .filter((f) => FILE.test(f))
    .sort()
    .slice(0, -keep);
  for (const f of old) rmSync(join(dir, f));
  return path;
}

/** Restores model, optimiser and scheduler from a checkpoint; returns its step and extra data. */
export function loadCheckpoint(
  path: string,
  s: Omit<TrainingState, 'step' | 'extra'>,
): { step: number; extra: Record<string, unknown> } {
  const { tensors, metadata } = readSafetensors(path);
  const model = new Map<string, RawTensor>();
  const state: Record<string, Record<string, Tensor | number>> = {};
  const loose: Tensor[] = [];
  for (const [k, raw] of tensors) {
    if (k.startsWith('model.')) {
      model.set(k.slice('model.'.length), raw);
    } else if (k.startsWith('optim.')) {
      const [, id, name] = k.split('.');
      const t = Tensor.fromBytes(raw.data, raw.dtype, raw.shape);
      loose.push(t);
      (state[id] ??= {})[name] = t;
    } else {
      fail(path, `unexpected tensor '${k}' in a training checkpoint`);
    }
  }
  for (const [id, entry] of Object.entries(
    JSON.parse(metadata.optimizer_scalars) as Record<string, Record<string, number>>,
  )) {
    Object.assign((state[id] ??= {}), entry);
  }
  s.model.loadStateDict(model);
  s.optimizer.loadStateDict({ state, param_groups: JSON.parse(metadata.param_groups) });
  for (const t of loose) t.dispose();
  s.scheduler.loadStateDict(JSON.parse(metadata.scheduler));
  return { step: Number(metadata.step), extra: JSON.parse(metadata.extra) as Record<string, unknown> };
}

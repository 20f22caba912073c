/**
 * The training loop every recipe uses: an optimiser and a learning-rate schedule (by default AdamW
 * with linear warm-up and cosine decay), gradient clipping, a held-out validation loss, JSON-lines
 * logs, a loss-curve SVG and checkpoints next to each other in the run folder, and exact resumption
 * from the newest checkpoint.
 *
 * Reproducibility: every random draw of step s comes from generators seeded with (seed, s), so a
 * resumed run makes the same draws as an uninterrupted one without storing generator states.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Generator, optim, type nn, type Tensor } from '../../engine/index.ts';
import { Random } from '../../geometry/random.ts';
import { writeFileAtomic } from '../../util/atomic.ts';
import type { ProgressFn } from '../../util/progress.ts';
import { checkpointPath, latestCheckpointStep, loadCheckpoint, saveCheckpoint } from './checkpoint.ts';
import { lossPlotSvg } from './plot.ts';

export interface LoopOptions {
  /** Folder of this stage's checkpoints, log and plot. */
  dir: string;
  steps: number;
  seed: number;
  lr: number;
  weightDecay: number;
  warmupSteps: number;
  /** Final learning rate of the cosine decay. */
  minLr: number;
  /** Largest gradient 2-norm (clipped above). */
  gradClip: number;
  checkpointEvery: number;
  validateEvery: number;
  /** Stop after this step (checkpointing it), as an interruption would; resume continues from there. */
  stopAfter?: number;
  /** The optimiser over the model's parameters (default adamW). */
  optimizer?: (params: Tensor[], o: LoopOptions) => optim.Optimizer<optim.AdamOptions>;
  /** The learning-rate schedule (default cosineSchedule). */
  schedule?: (optimizer: optim.Schedulable, o: LoopOptions) => optim.LRScheduler;
}

/** AdamW at `lr` with decoupled weight decay `weightDecay`. */
export const adamW = (params: Tensor[], o: LoopOptions): optim.Optimizer<optim.AdamOptions> =>
  new optim.AdamW(params, { lr: o.lr, weightDecay: o.weightDecay });
/** Adam at `lr` (L2 weight decay `weightDecay`, usually 0). */
export const adam = (params: Tensor[], o: LoopOptions): optim.Optimizer<optim.AdamOptions> =>
  new optim.Adam(params, { lr: o.lr, weightDecay: o.weightDecay });
/** Linear warm-up over `warmupSteps`, then cosine decay to `minLr` at the last step. */
export const cosineSchedule = (optimizer: optim.Schedulable, o: LoopOptions): optim.LRScheduler =>
  new optim.CosineSchedule(optimizer, { totalSteps: o.steps, warmupSteps: o.warmupSteps, minLr: o.minLr });
/** A constant rate (`lr` throughout). */
export const constantSchedule = (optimizer: optim.Schedulable, o: LoopOptions): optim.LRScheduler =>
  new optim.LinearSchedule(optimizer, { totalSteps: o.steps, startFactor: 1, endFactor: 1 });

export const DEFAULT_LOOP: Omit<LoopOptions, 'dir' | 'steps'> = {
  seed: 0,
  lr: 1e-4,
  weightDecay: 1e-2,
  warmupSteps: 50,
  minLr: 1e-6,
  gradClip: 1,
  checkpointEvery: 100,
  validateEvery: 100,
};

/** What one step hands back: the loss that was back-propagated, plus named parts for the log. */
export interface TrainingStep {
  loss: number;
  parts?: Record<string, number>;
}

/** Back-propagates a step's loss and reads it and its named parts for the log, freeing them all. */
export function backpropagate(loss: Tensor, parts: Record<string, Tensor> = {}): TrainingStep {
  loss.backward();
  const step = {
    loss: loss.item(),
    parts: Object.fromEntries(Object.entries(parts).map(([name, t]) => [name, t.item()])),
  };
  for (const t of [loss, ...Object.values(parts)]) t.dispose();
  return step;
}

export interface StepRandom {
  /** Patch and timestep draws. */
  random: Random;
  /** Tensor draws (noise, latent sampling). */
  generator: Generator;
}

export interface LogEntry {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  /** Wall-clock seconds of training so far (all sessions). */
  seconds: number;
  validation?: number;
  [part: string]: number | undefined;
}

/** Generators for step `step` of a run seeded with `seed`. */
export function stepRandom(seed: number, step: number): StepRandom {
  // Distinct 32-bit seeds per (seed, step); a golden-ratio multiplier spreads neighbouring steps.
  const mixed = (Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca6b)) >>> 0;
  return { random: new Random(mixed), generator: new Generator(mixed) };
}

export function readLog(path: string): LogEntry[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as LogEntry);
}

/** The newest validation value in a run folder's log.jsonl (undefined before the first). */
export function lastValidation(dir: string): number | undefined {
  return readLog(join(dir, 'log.jsonl'))
    .filter((e) => e.validation !== undefined)
    .at(-1)?.validation;
}

function writeOutputs(dir: string, title: string, log: readonly LogEntry[]): void {
  writeFileAtomic(
    join(dir, 'log.jsonl'),
    log.map((e) => JSON.stringify(e)).join('\n') + (log.length ? '\n' : ''),
  );
  writeFileAtomic(join(dir, 'loss.svg'), lossCurveSvg(title, log));
}

/** A stage's loss curve: the training loss (running mean over 25 steps, as it is noisy) and validation. */
export function lossCurveSvg(title: string, log: readonly LogEntry[]): string {
  const smooth: [number, number][] = [];
  let sum = 0;
  log.forEach((e, i) => {
    sum += e.loss - (i >= 25 ? log[i - 25].loss : 0);
    smooth.push([e.step, sum / Math.min(i + 1, 25)]);
  });
  const validation = log
    .filter((e) => e.validation !== undefined)
    .map((e) => [e.step, e.validation as number] as [number, number]);
  return lossPlotSvg(title, 'step', [
    { name: 'training (mean of 25)', colour: '#1f77b4', points: smooth },
    { name: 'validation', colour: '#d62728', points: validation },
  ]);
}

export interface LoopResult {
  log: LogEntry[];
  /** The step reached (steps, or stopAfter). */
  step: number;
  /** Whether the run reached its last step. */
  finished: boolean;
}

/**
 * Trains `model` with `trainStep` (which computes the loss and calls backward) until `steps`,
 * resuming from the newest checkpoint in `o.dir`.
 */
export function runLoop(
  title: string,
  model: nn.Module,
  o: LoopOptions,
  trainStep: (step: number, r: StepRandom) => TrainingStep,
  validate: () => number,
  progress?: ProgressFn,
): LoopResult {
  mkdirSync(o.dir, { recursive: true });
  model.train();
  const optimizer = (o.optimizer ?? adamW)(model.parameters(), o);
  const scheduler = (o.schedule ?? cosineSchedule)(optimizer, o);
  let step = 0;
  let seconds = 0;
  const logPath = join(o.dir, 'log.jsonl');
  let log: LogEntry[] = [];
  const resumeFrom = latestCheckpointStep(o.dir);
  if (resumeFrom !== undefined) {
    const restored = loadCheckpoint(checkpointPath(o.dir, resumeFrom), { model, optimizer, scheduler });
    step = restored.step;
    seconds = Number(restored.extra.seconds ?? 0);
    // Steps logged after the checkpoint are redone: drop them.
    log = readLog(logPath).filter((e) => e.step <= step);
  }
  const last = Math.min(o.steps, o.stopAfter ?? o.steps);
  const started = performance.now() / 1000 - seconds;
  while (step < last) {
    step++;
    optimizer.zeroGrad();
    const result = trainStep(step, stepRandom(o.seed, step));
    const gradNorm = optim.clipGradNorm(model.parameters(), o.gradClip);
    const lr = optimizer.paramGroups[0].lr;
    optimizer.step();
    scheduler.step();
    const entry: LogEntry = { step, loss: result.loss, ...result.parts, lr, gradNorm, seconds: 0 };
    if (step % o.validateEvery === 0 || step === o.steps) {
      model.eval();
      entry.validation = validate();
      model.train();
    }
    entry.seconds = performance.now() / 1000 - started;
    log.push(entry);
    if (step % o.checkpointEvery === 0 || step === last) {
      optimizer.zeroGrad();
      saveCheckpoint(o.dir, { step, model, optimizer, scheduler, extra: { seconds: entry.seconds } });
      writeOutputs(o.dir, title, log);
    }
    if (progress) {
      progress({ stage: title, done: step, total: o.steps, detail: `loss ${result.loss.toPrecision(4)}` });
    }
  }
  optimizer.dispose();
  return { log, step, finished: step >= o.steps };
}

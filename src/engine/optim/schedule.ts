/**
 * Learning-rate schedules: `lr(step)` for each param group from its base rate. `step()` advances one
 * step and writes the rates into the optimiser; construction applies step 0, as torch.optim.lr_scheduler.
 */
import { DiffregError } from '../../util/errors.ts';
import { integer, number as num } from '../../util/is.ts';

/** What a schedule drives: any optimiser's param groups with their learning rates. */
export interface Schedulable {
  readonly paramGroups: { lr: number }[];
}

export interface SchedulerState {
  last_epoch: number;
  base_lrs: number[];
}

export abstract class LRScheduler {
  readonly baseLrs: number[];
  lastStep = 0;

  constructor(readonly optimizer: Schedulable) {
    this.baseLrs = optimizer.paramGroups.map((g) => g.lr);
  }

  /** The rate at `step` for a group whose base rate is `base`. */
  abstract rate(base: number, step: number): number;

  protected apply(): void {
    this.optimizer.paramGroups.forEach((g, i) => {
      g.lr = this.rate(this.baseLrs[i], this.lastStep);
    });
  }

  step(): void {
    this.lastStep++;
    this.apply();
  }

  /** Current rates, one per param group. */
  get lrs(): number[] {
    return this.optimizer.paramGroups.map((g) => g.lr);
  }

  stateDict(): SchedulerState {
    return { last_epoch: this.lastStep, base_lrs: [...this.baseLrs] };
  }

  loadStateDict(s: SchedulerState): void {
    if (s.base_lrs.length !== this.baseLrs.length) {
      throw new DiffregError(
        `scheduler.loadStateDict: ${s.base_lrs.length} base rates, the optimiser has ${this.baseLrs.length} groups`,
      );
    }
    this.lastStep = integer('last_epoch', s.last_epoch, { min: 0 });
    s.base_lrs.forEach((b, i) => (this.baseLrs[i] = num('base_lrs', b, { min: 0 })));
    this.apply();
  }
}

export interface CosineOptions {
  /** Steps until the rate reaches minLr (warm-up included). */
  totalSteps: number;
  /** Linear warm-up steps from warmupStartFactor·base to base. */
  warmupSteps?: number;
  warmupStartFactor?: number;
  minLr?: number;
}

/**
 * Linear warm-up, then cosine decay from the base rate to minLr at totalSteps (constant afterwards).
 * Without warm-up this is CosineAnnealingLR(T_max = totalSteps, eta_min = minLr).
 */
export class CosineSchedule extends LRScheduler {
  readonly totalSteps: number;
  readonly warmupSteps: number;
  readonly warmupStartFactor: number;
  readonly minLr: number;

  constructor(optimizer: Schedulable, o: CosineOptions) {
    super(optimizer);
    this.totalSteps = integer('totalSteps', o.totalSteps, { min: 1 });
    this.warmupSteps = integer('warmupSteps', o.warmupSteps ?? 0, { min: 0, max: this.totalSteps - 1 });
    this.warmupStartFactor = num('warmupStartFactor', o.warmupStartFactor ?? 0, { min: 0, max: 1 });
    this.minLr = num('minLr', o.minLr ?? 0, { min: 0 });
    this.apply();
  }

  rate(base: number, step: number): number {
    if (step < this.warmupSteps) {
      const f = this.warmupStartFactor + ((1 - this.warmupStartFactor) * step) / this.warmupSteps;
      return base * f;
    }
    const progress = Math.min(1, (step - this.warmupSteps) / (this.totalSteps - this.warmupSteps));
    return this.minLr + ((base - this.minLr) * (1 + Math.cos(Math.PI * progress))) / 2;
  }
}

export interface LinearOptions {
  totalSteps: number;
  startFactor?: number;
  endFactor?: number;
}

/** base · (start + (end − start)·min(step, total)/total), as LinearLR(start_factor, end_factor, total_iters). */
export class LinearSchedule extends LRScheduler {
  readonly totalSteps: number;
  readonly startFactor: number;
  readonly endFactor: number;

  constructor(optimizer: Schedulable, o: LinearOptions) {
    super(optimizer);
    this.totalSteps = integer('totalSteps', o.totalSteps, { min: 1 });
    this.startFactor = num('startFactor', o.startFactor ?? 1, { min: 0 });
    this.endFactor = num('endFactor', o.endFactor ?? 0, { min: 0 });
    this.apply();
  }

  rate(base: number, step: number): number {
    const t = Math.min(step, this.totalSteps) / this.totalSteps;
    return base * (this.startFactor + (this.endFactor - this.startFactor) * t);
  }
}

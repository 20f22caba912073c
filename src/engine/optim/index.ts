/** torch.optim for diffreg: SGD, Adam, AdamW, gradient clipping and LR schedules. */
export {
  Optimizer,
  SGD,
  Adam,
  AdamW,
  type SGDOptions,
  type AdamOptions,
  type ParamsInput,
  type ParamGroup,
  type OptimizerStateDict,
  type StateEntry,
} from './optimizer.ts';
export { clipGradNorm } from './clip.ts';
export {
  LRScheduler,
  CosineSchedule,
  LinearSchedule,
  type Schedulable,
  type CosineOptions,
  type LinearOptions,
  type SchedulerState,
} from './schedule.ts';

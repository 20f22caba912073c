/**
 * Progress reporting for long work. Library functions take an optional `ProgressFn` and call it
 * with the stage name and how much of it is done; the CLI renders it as a bar with an ETA.
 */
export interface ProgressEvent {
  stage: string;
  done: number;
  total: number;
  /** Short extra information a renderer may show (e.g. the current training loss). */
  detail?: string;
}

export type ProgressFn = (event: ProgressEvent) => void;

/** Calls `progress` for each of `total` steps of `stage`; a no-op without a callback. */
export function stageReporter(
  progress: ProgressFn | undefined,
  stage: string,
  total: number,
): (done: number) => void {
  if (!progress) return () => {};
  progress({ stage, done: 0, total });
  return (done: number) => progress({ stage, done, total });
}

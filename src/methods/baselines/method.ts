/**
 * The interface every registration method offers the benchmark harness (src/eval/bench), and the
 * registration case it works on. A method maps a case to a displacement field on the fixed grid
 * (diffreg's convention: LPS world mm, pull-back p → p + u(p), see geometry/field.ts) and/or, for
 * point-matching methods, to a predicted moving position for every fixed point.
 */
import type { RegistrationCase } from '../../data/case.ts';
import type { DisplacementField, Vec3 } from '../../geometry/index.ts';
import { peakRssBytes, resetPeakRss } from '../../util/memory.ts';
import type { ProgressFn } from '../../util/progress.ts';

export type { Modality, RegistrationCase } from '../../data/case.ts';

export interface RegisterOptions {
  /** Fewer iterations and levels: for tests and smoke runs. */
  quick?: boolean;
  /** Seed of any randomness inside the method. */
  seed?: number;
  progress?: ProgressFn;
}

export interface RegistrationResult {
  /** Transform on the fixed grid: warped(p) = moving(p + u(p)). */
  field?: DisplacementField;
  /** Predicted moving position (LPS mm) of each case.fixedPoints entry, for point-matching methods. */
  movingPointsPredicted?: Vec3[];
  /** Wall time of the registration (s). */
  seconds: number;
  /** Peak resident memory of the process during the registration (MB). */
  peakRssMb: number;
}

export interface RegistrationMethod {
  /** Short name used in tables and file names (letters, digits, '-', '_'). */
  name: string;
  /** One line on what it does and its settings, for the report. */
  description: string;
  register(item: RegistrationCase, options?: RegisterOptions): Promise<RegistrationResult>;
}

/**
 * Runs `work` and measures its wall time and the process's peak RSS meanwhile. On Linux the peak is
 * exact (VmHWM after resetting it through /proc/self/clear_refs), which also covers work that
 * blocks the event loop (WebAssembly, native code); elsewhere RSS is sampled every 50 ms.
 */
export async function measured<T>(
  work: () => Promise<T>,
): Promise<{ value: T; seconds: number; peakRssMb: number }> {
  const exact = resetPeakRss();
  let sampled = process.memoryUsage.rss();
  const timer = exact
    ? undefined
    : setInterval(() => (sampled = Math.max(sampled, process.memoryUsage.rss())), 50);
  const start = performance.now();
  try {
    const value = await work();
    const seconds = (performance.now() - start) / 1000;
    sampled = Math.max(sampled, process.memoryUsage.rss());
    const peakRssMb = (exact ? (peakRssBytes() ?? sampled) : sampled) / 2 ** 20;
    return { value, seconds, peakRssMb };
  } finally {
    if (timer) clearInterval(timer);
  }
}

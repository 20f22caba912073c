/** Engine-wide settings and statistics: threads, memory, version. */
import { integer } from '../util/is.ts';
import { N } from './native.ts';

/**
 * Sets libtorch's intra-op thread count. The default is every core available to the process, or
 * DIFFREG_THREADS when set (read once, when the addon loads).
 */
export function setNumThreads(n: number): void {
  N.set_num_threads(integer('threads', n, { min: 1, max: 1024 }));
}

export function getNumThreads(): number {
  return N.get_num_threads();
}

/** Live native tensor handles and the bytes they hold (what is reported to V8). */
export function memoryStats(): { handles: number; bytes: number } {
  return N.memory();
}

/** libtorch version, whether CUDA is usable, and the cores available to this process. */
export function engineInfo(): { version: string; cudaAvailable: boolean; cores: number } {
  return N.info();
}

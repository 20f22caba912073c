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

/**
 * Live tensor handles and the bytes their tensors hold, and the most bytes held at once since the
 * last `resetPeak` (a view counts its own extent). `resetPeak: true` starts a new peak after reading.
 * `cachedBytes`: freed large blocks the engine keeps for reuse (at most 1 GiB; `releaseFreeMemory`).
 */
export function memoryStats(options: { resetPeak?: boolean } = {}): {
  handles: number;
  bytes: number;
  peakBytes: number;
  cachedBytes: number;
} {
  return N.memory(options.resetPeak === true);
}

/**
 * Returns freed memory to the operating system: the engine's cache of large blocks and glibc's free
 * heap pages (malloc_trim). Both keep freed blocks for reuse, so the resident size stays near its peak
 * after a burst of work; a long-running server can call this after a large job. Returns true when
 * memory was released.
 */
export function releaseFreeMemory(): boolean {
  return N.trim_memory();
}

/** libtorch version, whether CUDA is usable, and the cores available to this process. */
export function engineInfo(): { version: string; cudaAvailable: boolean; cores: number } {
  return N.info();
}

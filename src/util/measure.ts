/** Wall time and peak memory of a piece of work, as the benchmark harness reports them per case. */
import { peakRssBytes, resetPeakRss } from './memory.ts';

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

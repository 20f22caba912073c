/** The process's peak resident memory as the Linux kernel counts it. */
import { readFileSync, writeFileSync } from 'node:fs';

/** Peak resident set size (VmHWM) of this process in bytes, or undefined off Linux. */
export function peakRssBytes(): number | undefined {
  try {
    const match = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined; // the kernel's "kB" are KiB
  } catch {
    return undefined;
  }
}

/** Resets the kernel's peak-RSS mark to the current RSS; true when supported (Linux). */
export function resetPeakRss(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

/** Terminal progress bars (stage, percent, ETA) on stderr; silent when stderr is not a terminal. */
import type { ProgressEvent, ProgressFn } from '../util/progress.ts';

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '--';
  if (s < 60) return `${s.toFixed(0)}s`;
  const m = Math.floor(s / 60);
  return m < 60
    ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s`
    : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export function terminalProgress(stream: NodeJS.WriteStream = process.stderr): ProgressFn {
  if (!stream.isTTY) return () => {};
  let current = '';
  let started = 0;
  let lastDraw = 0;
  return (e: ProgressEvent) => {
    const now = Date.now();
    if (e.stage !== current) {
      if (current) stream.write('\n');
      current = e.stage;
      started = now;
    }
    if (e.done < e.total && now - lastDraw < 100) return;
    lastDraw = now;
    const fraction = e.total > 0 ? Math.min(1, e.done / e.total) : 1;
    const elapsed = (now - started) / 1000;
    const eta = fraction > 0 ? (elapsed * (1 - fraction)) / fraction : Infinity;
    const width = 24;
    const filled = Math.round(fraction * width);
    const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
    const tail = e.done >= e.total ? `done in ${formatSeconds(elapsed)}` : `ETA ${formatSeconds(eta)}`;
    stream.write(`\r${e.stage.padEnd(28)} [${bar}] ${(fraction * 100).toFixed(0).padStart(3)}%  ${tail}   `);
    if (e.done >= e.total) {
      stream.write('\n');
      current = '';
    }
  };
}

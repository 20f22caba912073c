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
  // Where the stage began: a resumed training starts part-way, and the ETA counts only steps done here.
  let startDone = 0;
  let lastDraw = 0;
  return (e: ProgressEvent) => {
    const now = Date.now();
    if (e.stage !== current) {
      if (current) stream.write('\n');
      current = e.stage;
      started = now;
      startDone = e.done;
    }
    if (e.done < e.total && now - lastDraw < 100) return;
    lastDraw = now;
    const fraction = e.total > 0 ? Math.min(1, e.done / e.total) : 1;
    const elapsed = (now - started) / 1000;
    const eta = e.done > startDone ? (elapsed * (e.total - e.done)) / (e.done - startDone) : Infinity;
    const width = 24;
    const filled = Math.round(fraction * width);
    const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
    const tail = e.done >= e.total ? `done in ${formatSeconds(elapsed)}` : `ETA ${formatSeconds(eta)}`;
    const detail = e.detail ? `  ${e.detail}` : '';
    stream.write(
      `\r${e.stage.padEnd(28)} [${bar}] ${(fraction * 100).toFixed(0).padStart(3)}%  ${tail}${detail}   `,
    );
    if (e.done >= e.total) {
      stream.write('\n');
      current = '';
    }
  };
}

/**
 * Progress as plain lines for logs (stderr redirected to a file during a long background run): one
 * line at the start and end of each stage and every `every` steps in between.
 */
export function lineProgress(every: number, stream: NodeJS.WritableStream = process.stderr): ProgressFn {
  return (e: ProgressEvent) => {
    if (e.done === 0 || e.done === e.total || e.done % every === 0) {
      stream.write(
        `${new Date().toISOString()} ${e.stage} ${e.done}/${e.total}${e.detail ? ` ${e.detail}` : ''}\n`,
      );
    }
  };
}

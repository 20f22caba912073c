/** The machine facts every benchmark's results entry records. */
import { cpus, loadavg, totalmem } from 'node:os';
import { engineInfo, getNumThreads } from '../src/engine/index.ts';

/** CPU, cores, memory, libtorch version and the threads in use, as one line. */
export const machineLine = (): string =>
  `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, libtorch ${engineInfo().version}, ${getNumThreads()} threads`;

/** The 1-, 5- and 15-minute load averages now (a quiet machine is near 0). */
export const loadAverage = (): string =>
  loadavg()
    .map((v) => v.toFixed(2))
    .join(' ');

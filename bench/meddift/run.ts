/**
 * bench/meddift: wall time and peak memory of `match` (300 points, with the backward consistency
 * match) and `register` for a 160×192×160 brain pair (LPBA40 S01/S11) and for the thoracic CT
 * resampled to its clinical 512×512×141 grid with a synthetic deformation, with the full-size MAISI
 * configuration (random weights: timing only). Each measurement runs in its own process.
 * Reports the network FLOPs, the share of wall time in the network passes, and their GFLOP/s against
 * the conv3d figure measured in the same run; and (`ct:cli:default`) `diffreg register` with its
 * defaults on the CT pair written to NIfTI, as a user runs it. Appends to bench/meddift/RESULTS.md.
 * Usage: node --import tsx bench/meddift/run.ts [brain|ct|brain:match|ct:register|ct:cli:default ...]
 */
import { machineLine } from '../machine.ts';
import { spawnSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { F, noGrad, randn, tidy } from '../../src/engine/index.ts';
import { conv } from '../maisi/flops.ts';

// Arguments: pairs (`brain`, `ct`: both tasks, MAISI) or single measurements `pair:task[:model]`
// (`ct:match`, `brain:register:default`, `ct:cli:default` = `diffreg register` with its defaults); models:
// maisi-random (full-size MAISI, random weights) or default.
const measurements = (process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['brain', 'ct']).flatMap(
  (a) => {
    const [pair, task, model = 'maisi-random'] = a.split(':');
    return task
      ? [[pair, task, model]]
      : [
          [pair, 'match', model],
          [pair, 'register', model],
        ];
  },
);
const conv3d = noGrad(() => {
  const x = randn([1, 64, 64, 64, 64]);
  const w = randn([64, 64, 3, 3, 3]).mul(0.01);
  tidy(() => F.conv3d(x, w, null, { padding: 1 }));
  const times = [0, 1, 2].map(() => {
    const t0 = performance.now();
    tidy(() => F.conv3d(x, w, null, { padding: 1 }).sum().item());
    return (performance.now() - t0) / 1000;
  });
  return conv(64, 64, 3, 64 ** 3) / 1e9 / Math.min(...times);
});

const rows: string[] = [];
for (const [pair, task, model] of measurements) {
  const script = fileURLToPath(new URL('./case.ts', import.meta.url));
  const r = spawnSync(process.execPath, ['--import', 'tsx', script, pair, model, task], {
    encoding: 'utf8',
  });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !line.startsWith('{')) {
    rows.push(
      `| ${pair} | ${model} | ${task} | failed: ${(r.stderr.trim().split('\n').pop() ?? '').slice(0, 120)} | | | | |`,
    );
    continue;
  }
  const m = JSON.parse(line);
  if (task === 'cli') {
    // `diffreg register` with defaults: its descriptor decides whether any network runs at all.
    const used = `${m.descriptor}${m.diffusionModelLoaded ? ', diffusion model loaded' : ', no diffusion model loaded'}`;
    rows.push(
      `| ${pair} ${m.dims.join('×')} | defaults (${used}) | diffreg register | ${m.seconds.toFixed(0)} | ${m.peakRssGiB.toFixed(2)} | — | features ${m.featureSeconds.toFixed(0)} s | — |`,
    );
  } else {
    const netShare = m.featureSeconds / m.seconds;
    const gflops = m.gflop / m.featureSeconds;
    rows.push(
      `| ${pair} ${m.dims.join('×')} | ${model === 'default' ? 'default model' : 'MAISI full (random)'} | ${task} | ${m.seconds.toFixed(0)} | ${m.peakRssGiB.toFixed(2)} (set-up ${m.setupGiB.toFixed(2)}) | ${m.gflop.toFixed(0)} | ${(100 * netShare).toFixed(0)} % | ${gflops.toFixed(0)} (${((100 * gflops) / conv3d).toFixed(0)} %) |`,
    );
  }
  process.stdout.write(`${rows[rows.length - 1]}\n`);
}

const machine = machineLine();
const entry = [
  `## ${new Date().toISOString()}`,
  '',
  `machine: ${machine}`,
  `command: node --import tsx bench/meddift/run.ts ${process.argv.slice(2).join(' ')}`,
  `conv3d reference in this run: ${conv3d.toFixed(0)} GFLOP/s`,
  '',
  '| pair | model | task | wall s | peak RSS GiB | network GFLOP | wall share of network passes | network GFLOP/s (of conv3d) |',
  '|---|---|---|---|---|---|---|---|',
  ...rows,
  '',
].join('\n');
process.stdout.write(`${entry}\n`);
appendFileSync(fileURLToPath(new URL('./RESULTS.md', import.meta.url)), `${entry}\n`);

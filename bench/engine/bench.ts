/**
 * Tensor-engine benchmark (not a test): conv3d forward and forward+backward (1×64×64³, 64→64, 3³, pad 1
 * = 57.98 GFLOP per forward), a GroupNorm+SiLU+conv3d block, a 4096×256 · 256×32768 matmul followed by
 * argmax over the last dim, and the per-call cost of a tiny op. When python3-torch is importable the same
 * work runs through it (bench/engine/torch_ref.py), alternating with ours so both see the same machine
 * load. Prints a table and appends it to bench/engine/RESULTS.md.
 *
 *   npm run bench:engine            (node --import tsx bench/engine/bench.ts [--rounds N])
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { F, engineInfo, getNumThreads, ones, randn, zeros, type Tensor } from '../../src/engine/index.ts';

const CONV_GFLOP = (2 * 64 * 64 * 27 * 64 ** 3) / 1e9;
const MATMUL_GFLOP = (2 * 4096 * 256 * 32768) / 1e9;
const TINY_CALLS = 10000;

interface Case {
  id: string;
  label: string;
  /** GFLOP per repetition, or undefined for the per-call case. */
  gflop?: number;
  reps: number;
  /** Builds the inputs and returns the repetition plus a cleanup. */
  make(): { run(): void; free(): void };
}

function convInputs(grad: boolean): Tensor[] {
  const ts = [randn([1, 64, 64, 64, 64]), randn([64, 64, 3, 3, 3]), randn([64])];
  if (grad) for (const t of ts) t.requiresGrad_();
  return ts;
}

const freeAll = (ts: Tensor[]) => () => ts.forEach((t) => t.dispose());

const CASES: Case[] = [
  {
    id: 'conv3d_fwd',
    label: 'conv3d fwd',
    gflop: CONV_GFLOP,
    reps: 3,
    make() {
      const [x, w, b] = convInputs(false);
      return { run: () => F.conv3d(x, w, b, { padding: 1 }).dispose(), free: freeAll([x, w, b]) };
    },
  },
  {
    id: 'conv3d_fwd_bwd',
    label: 'conv3d fwd+bwd',
    gflop: 3 * CONV_GFLOP,
    reps: 2,
    make() {
      const [x, w, b] = convInputs(true);
      const g = ones([1, 64, 64, 64, 64]);
      const run = (): void => {
        for (const t of [x, w, b]) t.zeroGrad();
        const y = F.conv3d(x, w, b, { padding: 1 });
        y.backward(g);
        y.dispose();
      };
      return { run, free: freeAll([x, w, b, g]) };
    },
  },
  {
    id: 'block',
    label: 'GroupNorm+SiLU+conv3d',
    gflop: CONV_GFLOP,
    reps: 3,
    make() {
      const [x, w, b] = convInputs(false);
      const gw = ones([64]);
      const gb = zeros([64]);
      const run = (): void => {
        const n = F.groupNorm(x, 32, gw, gb, 1e-5);
        const a = n.silu();
        n.dispose();
        F.conv3d(a, w, b, { padding: 1 }).dispose();
        a.dispose();
      };
      return { run, free: freeAll([x, w, b, gw, gb]) };
    },
  },
  {
    id: 'matmul_argmax',
    label: 'matmul 4096×256·256×32768 + argmax',
    gflop: MATMUL_GFLOP,
    reps: 3,
    make() {
      const a = randn([4096, 256]);
      const m = randn([256, 32768]);
      const run = (): void => {
        const p = a.matmul(m);
        p.argmax(-1).dispose();
        p.dispose();
      };
      return { run, free: freeAll([a, m]) };
    },
  },
  {
    id: 'tiny_op',
    label: `tiny op (add of 2 elements, ×${TINY_CALLS})`,
    reps: 5,
    make() {
      const a = randn([2]);
      const c = randn([2]);
      const run = (): void => {
        for (let i = 0; i < TINY_CALLS; i++) a.add(c).dispose();
      };
      return { run, free: freeAll([a, c]) };
    },
  },
];

/** The first python that imports torch: `python3`, else Debian's /usr/bin/python3 (pyenv may shadow it). */
function findPython(): string | undefined {
  for (const py of ['python3', '/usr/bin/python3']) {
    const r = spawnSync(py, ['-c', 'import torch'], { cwd: '/', stdio: 'ignore' });
    if (r.status === 0) return py;
  }
  return undefined;
}

class TorchRef {
  readonly #proc: ChildProcessWithoutNullStreams;
  readonly #lines: AsyncIterator<string>;

  constructor(python: string) {
    const script = fileURLToPath(new URL('./torch_ref.py', import.meta.url));
    this.#proc = spawn(python, [script], {
      cwd: '/',
      env: { ...process.env, DIFFREG_THREADS: String(getNumThreads()) },
    });
    this.#proc.stderr.on('data', (d: Buffer) => process.stderr.write(d));
    this.#lines = createInterface({ input: this.#proc.stdout })[Symbol.asyncIterator]();
  }

  async run(id: string, reps: number): Promise<number[]> {
    this.#proc.stdin.write(`${id} ${reps}\n`);
    const next = await this.#lines.next();
    if (next.done) throw new Error('torch_ref.py exited');
    return (JSON.parse(next.value) as { seconds: number[] }).seconds;
  }

  close(): void {
    this.#proc.stdin.end();
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function timeOurs(c: Case, reps: number): number[] {
  const { run, free } = c.make();
  run(); // warm-up (oneDNN primitive creation, first-touch allocation)
  const out: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    run();
    out.push((performance.now() - t0) / 1000);
  }
  free();
  return out;
}

async function main(): Promise<void> {
  const roundsArg = process.argv.indexOf('--rounds');
  const rounds = roundsArg > 0 ? Number(process.argv[roundsArg + 1]) : 2;
  const python = findPython();
  const ref = python === undefined ? undefined : new TorchRef(python);
  const loadStart = loadavg()[0];
  const info = engineInfo();
  console.log(
    `engine: libtorch ${info.version}, ${getNumThreads()} threads; reference: ${python ?? 'none (python3-torch not importable)'}`,
  );

  const rows: string[] = [];
  for (const c of CASES) {
    const ours: number[] = [];
    const theirs: number[] = [];
    for (let r = 0; r < rounds; r++) {
      ours.push(...timeOurs(c, c.reps));
      if (ref) theirs.push(...(await ref.run(c.id, c.reps)));
    }
    const t = median(ours);
    const p = theirs.length ? median(theirs) : undefined;
    const ratio = p === undefined ? '—' : (p / t).toFixed(2);
    let row: string;
    if (c.gflop !== undefined) {
      const cell = (s: number | undefined) =>
        s === undefined ? '—' : `${(s * 1000).toFixed(0)} ms, ${(c.gflop! / s).toFixed(0)} GFLOP/s`;
      row = `| ${c.label} | ${c.gflop.toFixed(2)} | ${cell(t)} | ${cell(p)} | ${ratio} |`;
    } else {
      const cell = (s: number | undefined) =>
        s === undefined ? '—' : `${((s / TINY_CALLS) * 1e6).toFixed(2)} µs/call`;
      row = `| ${c.label} | — | ${cell(t)} | ${cell(p)} | ${ratio} |`;
    }
    console.log(row);
    rows.push(row);
  }
  ref?.close();

  const header = [
    '| case | GFLOP | TypeScript (median) | PyTorch (median) | speed ratio TS/PyTorch |',
    '|---|---|---|---|---|',
  ];
  const entry = [
    '',
    `## ${new Date().toISOString()} — ${cpus()[0].model}, ${cpus().length} cores`,
    '',
    `Command: \`node --import tsx bench/engine/bench.ts${rounds === 2 ? '' : ` --rounds ${rounds}`}\` (npm run bench:engine). ` +
      `libtorch ${info.version}, ${getNumThreads()} threads both sides; reference ${python ?? 'not available'}; ` +
      `${rounds} alternating rounds; load average ${loadStart.toFixed(1)} at start, ${loadavg()[0].toFixed(1)} at end.`,
    '',
    ...header,
    ...rows,
    '',
  ].join('\n');
  appendFileSync(fileURLToPath(new URL('./RESULTS.md', import.meta.url)), entry);
  console.log(`appended to bench/engine/RESULTS.md`);
}

await main();

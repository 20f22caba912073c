import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { engineInfo, getNumThreads, setNumThreads } from '../../src/engine/index.ts';
import { repoRoot } from '../helpers/shared.ts';

test('threads default to the available cores (or DIFFREG_THREADS) and can be changed', () => {
  const env = Number(process.env.DIFFREG_THREADS);
  const expected = env > 0 ? env : availableParallelism();
  assert.equal(getNumThreads(), expected);
  assert.equal(engineInfo().cores, availableParallelism());
  setNumThreads(1);
  assert.equal(getNumThreads(), 1);
  setNumThreads(expected);
  assert.equal(getNumThreads(), expected);
  assert.throws(() => setNumThreads(0), /threads: expected an integer in \[1, 1024\], got 0/);
});

test('DIFFREG_THREADS sets the count at load time', () => {
  const out = execFileSync(
    process.execPath,
    ['--import', 'tsx', '-e', "import('./src/engine/index.ts').then((e) => console.log(e.getNumThreads()))"],
    { cwd: repoRoot, env: { ...process.env, DIFFREG_THREADS: '3' }, encoding: 'utf8' },
  );
  assert.equal(out.trim(), '3');
});

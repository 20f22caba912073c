/**
 * `diffreg view` from the command line: every option refused in one line before anything is read,
 * inputs refused in one line naming the file, and a viewer that Ctrl-C stops cleanly, freeing its port.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Volume } from '../../src/geometry/volume.ts';
import { writeVolume } from '../../src/io/index.ts';
import { main } from '../../src/cli/main.ts';
import { DiffregError } from '../../src/util/errors.ts';
import { repoRoot } from '../helpers/shared.ts';
import { assertPortFree } from './phantom-viewer.ts';

const bin = join(repoRoot, 'bin', 'diffreg.js');
const dir = mkdtempSync(join(tmpdir(), 'diffreg-view-'));
const image = join(dir, 'image.nii.gz');
const small = join(dir, 'small.nii.gz');
const matrix = join(dir, 'matrix.txt');

function diffreg(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    cwd: repoRoot,
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('setup: a small image, a field on another grid and a matrix', async () => {
  const data = new Int16Array(16 * 16 * 12).map((_, i) => ((i * 37) % 200) - 900);
  await writeVolume(image, new Volume({ data, dims: [16, 16, 12], spacing: [4, 4, 5] }));
  await writeVolume(
    small,
    new Volume({ data: new Float32Array(8 * 8 * 8 * 3), dims: [8, 8, 8], components: 3 }),
  );
  writeFileSync(matrix, '1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n');
});

test('help; a bad option is one line on stderr and exit 1', () => {
  const help = diffreg('view', '--help');
  assert.equal(help.status, 0);
  assert.match(help.stdout, /--bench DIR --case ID/);
  const r = diffreg('view', '--fixed', image, '--moving', image, '--port', '70000');
  assert.equal(r.status, 1);
  assert.equal(r.stderr, 'diffreg: --port: expected an integer in [0, 65535], got 70000\n');
});

/** What the CLI prints for a user error (runCli: "diffreg: " + the message, one line, exit 1). */
async function userError(args: string[]): Promise<string> {
  try {
    await main(args);
  } catch (e) {
    assert.ok(e instanceof DiffregError, `${args.join(' ')}: ${(e as Error).stack}`);
    assert.doesNotMatch(e.message, /\n/);
    return `diffreg: ${e.message}`;
  }
  assert.fail(`${args.join(' ')}: accepted`);
}

test('every bad option or input is refused in one line', async () => {
  const missing = join(dir, 'missing.nii.gz');
  const cases: [string[], RegExp][] = [
    [['view'], /^diffreg: --fixed: required$/],
    [['view', '--fixed', image], /^diffreg: --moving: required$/],
    [
      ['view', '--fixed', image, '--moving', image, '--port', 'x'],
      /^diffreg: --port: expected a number, got "x"$/,
    ],
    [
      ['view', '--fixed', image, '--moving', image, '--radius', '5'],
      /^diffreg: --radius: only with --field or --method/,
    ],
    [
      ['view', '--fixed', image, '--moving', image, '--field', small, '--radius', '-1'],
      /^diffreg: --radius: expected a finite number > 0, got -1$/,
    ],
    [['view', '--fixed', image, '--moving', image, '--host', ''], /^diffreg: --host: required$/],
    [['view', '--bench', dir, '--fixed', image], /^diffreg: --fixed: not with --bench/],
    [['view', '--bench', dir], /^diffreg: --case: required$/],
    [['view', '--fixed', image, '--moving', image, '--case', 'a'], /^diffreg: --case: only with --bench$/],
    [
      ['view', '--fixed', image, '--moving', image, '--points', 'p.csv', '--matches', 'm.csv'],
      /^diffreg: --points: not with --matches/,
    ],
    [
      ['view', '--fixed', image, '--moving', image, '--moving-points', 'p.csv'],
      /^diffreg: --moving-points: needs --points or --matches/,
    ],
    [
      ['view', '--fixed', image, '--moving', image, '--matches', 'm.txt'],
      /^diffreg: --matches: expected a \.csv file/,
    ],
    [
      ['view', '--fixed', image, '--moving', image, '--points-format', 'csv'],
      /^diffreg: --points-format: only with --points/,
    ],
    [
      ['view', '--fixed', image, '--moving', image, '--unet', 'u.pt'],
      /^diffreg: model: give both --unet and --autoencoder$/,
    ],
    [
      ['view', '--fixed', image, '--moving', image, '--frobnicate'],
      /^diffreg: view: Unknown option '--frobnicate'/,
    ],
    [['view', '--fixed', missing, '--moving', image], /missing\.nii\.gz: fixed image not found$/],
    [
      ['view', '--fixed', image, '--moving', image, '--field', matrix],
      /matrix\.txt: expected a displacement field image, not a matrix$/,
    ],
    [
      ['view', '--fixed', image, '--moving', image, '--field', small],
      /small\.nii\.gz: the field is not on the fixed image's grid \(dims 8x8x8 vs 16x16x12\)$/,
    ],
    [
      ['view', '--fixed', image, '--moving', image, '--matches', join(dir, 'none.csv')],
      /none\.csv: file not found$/,
    ],
    [['view', '--bench', dir, '--case', 'x'], /: no results\.json: not a diffreg bench results folder$/],
  ];
  const bad = join(dir, 'bad.csv');
  writeFileSync(
    bad,
    'index,fixed_x,fixed_y,fixed_z,moving_x,moving_y,moving_z\n0,1,2,3,4,5,6\n1,1,x,3,4,5,6\n',
  );
  cases.push([
    ['view', '--fixed', image, '--moving', image, '--matches', bad],
    /bad\.csv: line 3: fixed_y is not a number$/,
  ]);
  for (const [args, pattern] of cases) assert.match(await userError(args), pattern, args.join(' '));
});

test('Ctrl-C (SIGINT) stops the viewer, exit 0, and frees its port', async () => {
  const args = [bin, 'view', '--fixed', image, '--moving', image, '--port', '0', '--json'];
  const child = spawn(process.execPath, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let stdout = '';
  // --json: the address as JSON on stdout once the server listens.
  const { url, port } = await new Promise<{ url: string; port: number }>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.trimEnd().endsWith('}')) resolve(JSON.parse(stdout));
    });
    child.once('exit', () => reject(new Error(`the viewer exited: ${stderr}`)));
  });
  assert.equal(url, `http://127.0.0.1:${port}/`);
  const page = await fetch(url);
  assert.equal(page.status, 200);
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  child.kill('SIGINT');
  assert.equal(await exited, 0, stderr);
  assert.match(stderr, /diffreg view: stopped\n$/);
  await assertPortFree(port);
});

/**
 * The diffreg command as a user meets it: help, exit codes, one-line errors without stack traces for
 * bad input, no partial output files, and a real `match` run with the fixture networks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Volume } from '../../src/geometry/volume.ts';
import { writeVolume } from '../../src/io/index.ts';
import { defaultModelInstalled } from '../../src/cli/model.ts';
import { repoRoot, requireShared } from '../helpers/shared.ts';

function diffreg(...args: string[]) {
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'diffreg.js'), ...args], {
    encoding: 'utf8',
    cwd: repoRoot,
    timeout: 600_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A user error: exit 1, exactly one line on stderr, no stack trace. */
function assertOneLineError(r: ReturnType<typeof diffreg>, pattern: RegExp) {
  assert.equal(r.status, 1, `exit code (stderr: ${r.stderr})`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line expected, got:\n${r.stderr}`);
  assert.match(lines[0], pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
}

const dir = mkdtempSync(join(tmpdir(), 'diffreg-cli-'));
const image = join(dir, 'image.nii.gz');
const points = join(dir, 'points.csv');

test('setup: a small CT-like image and points', async () => {
  const data = new Int16Array(24 * 24 * 20).map((_, i) => ((i * 37) % 200) - 900);
  await writeVolume(image, new Volume({ data, dims: [24, 24, 20], spacing: [4, 4, 5] }));
  writeFileSync(points, 'x,y,z\n20,20,20\n40,44,30\n');
});

test('help and usage', () => {
  const top = diffreg('--help');
  assert.equal(top.status, 0);
  assert.match(top.stdout, /usage: diffreg <command>/);
  for (const c of ['match', 'register', 'bench', 'train', 'demo'])
    assert.match(top.stdout, new RegExp(`\\n  ${c} `));
  const match = diffreg('match', '--help');
  assert.equal(match.status, 0);
  assert.match(match.stdout, /--radius MM/);
  assert.equal(diffreg().status, 1);
});

test('bad input gives one line, exit 1, and no output file', () => {
  const out = join(dir, 'never.csv');
  const cases: [string[], RegExp][] = [
    [['frobnicate'], /^diffreg: unknown command "frobnicate"/],
    [['match', '--bogus'], /^diffreg: match: Unknown option '--bogus'/],
    [
      ['match', '--fixed', join(dir, 'missing.nii.gz'), '--moving', image, '--points', points, '--out', out],
      /^diffreg: .*missing\.nii\.gz: fixed image not found$/,
    ],
    [['match', '--fixed', image, '--moving', image, '--points', points], /^diffreg: --out: required$/],
    [
      ['match', '--fixed', image, '--moving', image, '--points', points, '--out', out, '--timestep', 'soon'],
      /^diffreg: --timestep: expected a number, got "soon"$/,
    ],
    [
      ['match', '--fixed', image, '--moving', image, '--points', points, '--out', out, '--search', 'nearby'],
      /^diffreg: --search: expected one of global, local, got "nearby"$/,
    ],
    [
      [
        'match',
        '--fixed',
        image,
        '--moving',
        image,
        '--points',
        points,
        '--out',
        out,
        '--unet',
        join(dir, 'nope.pt'),
        '--autoencoder',
        join(dir, 'nope.pt'),
      ],
      /nope\.pt: checkpoint file not found$/,
    ],
  ];
  // `train`: options are checked before any data is read; an empty run has nothing to export.
  const run = join(dir, 'run');
  cases.push(
    [['train', '--run', run], /^diffreg: --data: required$/],
    [
      ['train', '--data', dir, '--run', run, '--stage', 'polish'],
      /^diffreg: --stage: expected one of all, autoencoder, .*got "polish"$/,
    ],
    [
      ['train', '--data', dir, '--run', run, '--unet-steps', '0'],
      /^diffreg: --unet-steps: expected a positive integer, got "0"$/,
    ],
    [
      ['train', '--data', dir, '--run', run],
      /diffreg-cli-\w+: training data folder has no lung\/ \(expected the layout of \.\.\/shared\/data\)$/,
    ],
    [
      ['train', '--data', dir, '--run', run, '--stage', 'export'],
      /run\/autoencoder: no training checkpoint$/,
    ],
  );
  if (!defaultModelInstalled()) {
    cases.push([
      ['match', '--fixed', image, '--moving', image, '--points', points, '--out', out],
      /^diffreg: model: the default model is not installed/,
    ]);
  }
  for (const [args, pattern] of cases) assertOneLineError(diffreg(...args), pattern);
  // A truncated image and a landmark file with the wrong number of columns.
  const broken = join(dir, 'broken.nii.gz');
  writeFileSync(broken, gzipSync(readFileSync(image)).subarray(0, 200));
  assertOneLineError(
    diffreg('register', '--fixed', broken, '--moving', image, '--out-field', join(dir, 'f.nii.gz')),
    /^diffreg: .*broken\.nii\.gz: /,
  );
  const badPoints = join(dir, 'bad.csv');
  writeFileSync(badPoints, 'x,y,z\n1,2\n');
  assertOneLineError(
    diffreg(
      'match',
      '--fixed',
      image,
      '--moving',
      image,
      '--points',
      badPoints,
      '--out',
      out,
      '--unet',
      'a',
      '--autoencoder',
      'b',
    ),
    /bad\.csv.*line 2/,
  );
  assert.ok(!existsSync(out));
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.includes('.tmp')),
    [],
  );
});

test('match with the fixture networks writes CSV and a JSON summary', (t) => {
  const root = requireShared(t, 'fixtures');
  if (!root) return;
  const config = join(dir, 'tiny-config.json');
  const info = JSON.parse(readFileSync(join(root, 'meddift-tiny', 'meddift_tiny.json'), 'utf8'));
  writeFileSync(
    config,
    JSON.stringify({ diffusion_unet_def: info.models.unet_args, autoencoder_def: info.models.vae_args }),
  );
  const out = join(dir, 'matches.csv');
  const r = diffreg(
    'match',
    '--fixed',
    image,
    '--moving',
    image,
    '--points',
    points,
    '--out',
    out,
    '--json',
    '--no-consistency',
    '--unet',
    join(root, 'maisi-unet-tiny', 'unet.pt'),
    '--autoencoder',
    join(root, 'maisi-vae-tiny', 'autoencoder.pt'),
    '--model-config',
    config,
    '--search',
    'local',
    '--radius',
    '12',
  );
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  assert.equal(summary.points, 2);
  const lines = readFileSync(out, 'utf8').trim().split('\n');
  assert.equal(lines.length, 4, 'comment, header and one row per point');
  const row = lines[2].split(',').map(Number);
  // The moving point lies within the 12 mm window around the query (same image: identity start).
  assert.ok(Math.hypot(row[4] - row[1], row[5] - row[2], row[6] - row[3]) <= 12 + 1e-6);
});

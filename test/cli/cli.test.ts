/**
 * The diffreg command as a user meets it: help, exit codes, one-line errors without stack traces for
 * bad input, no partial output files, and a real `match` run with the fixture networks.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Volume } from '../../src/geometry/volume.ts';
import { readVolume, writeVolume } from '../../src/io/index.ts';
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
  const match = (...more: string[]) => [
    'match',
    ...['--fixed', image, '--moving', image, '--points', points, '--out', out],
    ...more,
  ];
  const cases: [string[], RegExp][] = [
    [['frobnicate'], /^diffreg: unknown command "frobnicate"/],
    [['match', '--bogus'], /^diffreg: match: Unknown option '--bogus'/],
    [
      ['match', '--fixed', join(dir, 'missing.nii.gz'), '--moving', image, '--points', points, '--out', out],
      /^diffreg: .*missing\.nii\.gz: fixed image not found$/,
    ],
    [['match', '--fixed', image, '--moving', image, '--points', points], /^diffreg: --out: required$/],
    [match('--timestep', 'soon'), /^diffreg: --timestep: expected a number, got "soon"$/],
    [
      match('--search', 'nearby'),
      /^diffreg: --search: expected one of registered, local, global, got "nearby"$/,
    ],
    [
      match('--search', 'global', '--radius', '5'),
      /^diffreg: --radius: only with --search registered or local$/,
    ],
    [match('--initial', points), /^diffreg: --initial: only with --search local$/],
    [
      match('--descriptor', 'sift'),
      /^diffreg: --descriptor: expected one of auto, diffusion, mind, patches, fused, classical, got "sift"$/,
    ],
    [
      match('--descriptor', 'fused', '--level-weights', '1,2'),
      /^diffreg: --level-weights: only with --descriptor diffusion$/,
    ],
    [
      match(
        '--descriptor',
        'diffusion',
        '--unet',
        join(dir, 'nope.pt'),
        '--autoencoder',
        join(dir, 'nope.pt'),
      ),
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
      /^diffreg: --unet-steps: expected an integer >= 1, got 0$/,
    ],
    // --variant counts from 0 (the full model), step counts from 1
    [
      ['train', 'ldmmorph', '--data', dir, '--run', run, '--variant', '-1'],
      /^diffreg: --variant: expected an integer >= 0, got -1$/,
    ],
    [
      ['train', 'ldmmorph', '--data', dir, '--run', run, '--variant', '6'],
      /^diffreg: --variant: expected an integer in \[0, 5\], got 6$/,
    ],
    [
      ['train', 'ldm2d', '--data', dir, '--run', run, '--codebook-size', '-1'],
      /^diffreg: --codebook-size: expected an integer >= 0, got -1$/,
    ],
    [
      ['train', '--data', dir, '--run', run],
      /diffreg-cli-\w+: training data folder has no lung\/ \(expected the layout of \.\.\/shared\/data\)$/,
    ],
    [
      ['train', '--data', dir, '--run', run, '--stage', 'export'],
      /run\/autoencoder: no training checkpoint$/,
    ],
    // The recipe by name: the same checks as without one; unknown names list the recipes.
    [
      ['train', 'default', '--data', dir, '--run', run, '--stage', 'export'],
      /run\/autoencoder: no training checkpoint$/,
    ],
    [
      ['train', 'polish', '--data', dir, '--run', run],
      /^diffreg: recipe "polish": unknown \(recipes: default/,
    ],
    [
      ['train', 'default', 'extra', '--data', dir, '--run', run],
      /^diffreg: train: unexpected argument "extra"$/,
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
    diffreg('match', '--fixed', image, '--moving', image, '--points', badPoints, '--out', out),
    /bad\.csv.*line 2/,
  );
  assert.ok(!existsSync(out));
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.includes('.tmp')),
    [],
  );
});

/** The fixture MAISI networks as model options (tiny widths, so a match takes seconds). */
function fixtureModel(t: TestContext): string[] | undefined {
  const root = requireShared(t, 'fixtures');
  if (!root) return undefined;
  const config = join(dir, 'tiny-config.json');
  const info = JSON.parse(readFileSync(join(root, 'meddift-tiny', 'meddift_tiny.json'), 'utf8'));
  writeFileSync(
    config,
    JSON.stringify({ diffusion_unet_def: info.models.unet_args, autoencoder_def: info.models.vae_args }),
  );
  return [
    '--unet',
    join(root, 'maisi-unet-tiny', 'unet.pt'),
    '--autoencoder',
    join(root, 'maisi-vae-tiny', 'autoencoder.pt'),
    '--model-config',
    config,
  ];
}

/** The moving points of a CSV written by match, and their distances from the fixed points (mm). */
function matchDistances(out: string): number[] {
  return readFileSync(out, 'utf8')
    .trim()
    .split('\n')
    .slice(2)
    .map((line) => {
      const row = line.split(',').map(Number);
      return Math.hypot(row[4] - row[1], row[5] - row[2], row[6] - row[3]);
    });
}

test('match with the fixture networks writes CSV and a JSON summary', (t) => {
  const model = fixtureModel(t);
  if (!model) return;
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
    ...model,
    '--descriptor',
    'diffusion',
    '--search',
    'local',
    '--radius',
    '12',
  );
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  assert.equal(summary.points, 2);
  assert.equal(summary.diffusionModelLoaded, true);
  assert.equal(
    readFileSync(out, 'utf8').trim().split('\n').length,
    4,
    'comment, header and one row per point',
  );
  // The moving point lies within the 12 mm window around the query (same image: identity start).
  assert.ok(matchDistances(out)[0] <= 12 + 1e-6);
});

test('register with the defaults on a CT pair: MIND-SSC, no diffusion model loaded, a field on the fixed grid', async () => {
  // The default descriptor on CT uses no diffusion model: no model option is needed or loaded, and
  // the feature options' defaults (body region) must not count as diffusion settings given.
  const out = join(dir, 'ct-field.nii.gz');
  const pair = ['--fixed', image, '--moving', image];
  const r = diffreg('register', ...pair, '--out-field', out, '--iterations', '2', '--json');
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  assert.equal(summary.method, 'default-register');
  assert.equal(summary.descriptor, 'mind');
  assert.equal(summary.diffusionModelLoaded, false);
  assert.deepEqual((await readVolume(out)).dims, [24, 24, 20]);
  const matches = join(dir, 'ct-matches.csv');
  const m = diffreg('match', ...pair, '--points', points, '--out', matches, '--json');
  assert.equal(m.status, 0, m.stderr);
  assert.equal(JSON.parse(m.stdout).diffusionModelLoaded, false);
  // The same image on both sides: every point matches itself to within a voxel (4 × 4 × 5 mm).
  assert.ok(
    matchDistances(matches).every((d) => d < 4),
    `distances ${matchDistances(matches)}`,
  );
  // Given explicitly, a diffusion-only option is refused in one line for this pair.
  assertOneLineError(
    diffreg('register', ...pair, '--out-field', join(dir, 'never-ct.nii.gz'), '--region-top', 'head'),
    /^diffreg: region: only with the diffusion model's features; the descriptor of this pair is mind$/,
  );
  assert.ok(!existsSync(join(dir, 'never-ct.nii.gz')));
  // So is a model: with MIND-SSC it would be silently ignored (the files exist; they are never read).
  const model = ['--unet', image, '--autoencoder', image];
  for (const [command, out] of [
    ['register', ['--out-field', join(dir, 'never-ct.nii.gz')]],
    ['match', ['--points', points, '--out', join(dir, 'never-ct.csv')]],
  ] as const) {
    assertOneLineError(
      diffreg(command, ...pair, ...model, ...out),
      /^diffreg: --unet: only with the diffusion model's features; the descriptor of this pair is mind$/,
    );
    assert.ok(!existsSync(out[out.length - 1]), `${command} wrote nothing`);
  }
});

test('--search local without --radius searches within the documented default, 20 mm', (t) => {
  const model = fixtureModel(t);
  if (!model) return;
  assert.match(
    diffreg('match', '--help').stdout,
    /--radius MM +search radius in mm \(default 6 registered, 20 local\)/,
  );
  const out = join(dir, 'matches-default-radius.csv');
  // The diffusion descriptor: on this CT-like image the default (MIND-SSC) would not load the model.
  const base = [
    ...['match', '--fixed', image, '--moving', image, '--points', points, '--out', out, ...model],
    ...['--descriptor', 'diffusion'],
  ];
  // Integer matches: the sub-voxel step may move a match at the window's edge half a voxel further.
  const r = diffreg(...base, '--no-consistency', '--no-subvoxel', '--search', 'local');
  assert.equal(r.status, 0, r.stderr);
  for (const d of matchDistances(out)) assert.ok(d <= 20 + 1e-6, `${d} mm`);
  // Options whose bounds depend on the model are checked once it is loaded, in the CLI's names.
  assertOneLineError(
    diffreg(...base, '--timestep', '5000'),
    /^diffreg: --timestep: expected an integer in \[0, 999\], got 5000$/,
  );
  assertOneLineError(
    diffreg(...base, '--levels', '7'),
    /^diffreg: --levels: expected levels 0 to \d \(the model has \d\), got "7"$/,
  );
  assertOneLineError(
    diffreg(...base, '--descriptor', 'diffusion', '--level-weights', '1,1,1,1,1,1,1'),
    /^diffreg: --level-weights: expected \d weights, one per level \([\d,]+\), got 7$/,
  );
});

test('issue 19: options, outputs and images are checked before any input is read or model loaded', async () => {
  // Missing checkpoints: a check that comes too late answers "checkpoint file not found" instead.
  const nope = ['--unet', join(dir, 'nope.pt'), '--autoencoder', join(dir, 'nope.pt')];
  const matchInputs = ['match', '--fixed', image, '--moving', image, '--points', points];
  const match = [...matchInputs, ...nope];
  const register = ['register', '--fixed', image, '--moving', image, ...nope];
  const field = join(dir, 'field.nii.gz');
  const link = join(dir, 'link-to-image.nii.gz');
  symlinkSync(image, link);
  const aFile = join(dir, 'a-file');
  writeFileSync(aFile, 'not a folder');
  const flat = join(dir, 'flat.nii.gz');
  const badConfig = join(dir, 'bad-config.json');
  writeFileSync(badConfig, JSON.stringify({ diffusion_unet_def: { num_channels: 64 }, autoencoder_def: {} }));
  const cases: [string[], RegExp][] = [
    // 1. outputs colliding with each other or with an input (also through ./ and a symlink)
    [
      [...register, '--out-field', field, '--out-warped', field],
      /^diffreg: --out-warped: .*field\.nii\.gz is also --out-field; give each output its own name$/,
    ],
    [
      [...register, '--out-field', field, '--out-warped', link],
      /^diffreg: --out-warped: .*link-to-image\.nii\.gz is the input given as --moving; choose another name$/,
    ],
    [
      [...match, '--out', join(dir, '.', 'points.csv')],
      /^diffreg: --out: .*points\.csv is the input given as --points; choose another name$/,
    ],
    [
      ['train', '--data', dir, '--run', join(dir, 'run'), '--out', join(dir, 'run')],
      /^diffreg: --out: .*run is also --run; give each output its own name$/,
    ],
    // 2. a negative number as a separate argument reaches the option's own check
    [
      [...match, '--out', join(dir, 'm.csv'), '--search', 'local', '--radius', '-5'],
      /^diffreg: --radius: expected a finite number > 0, got -5$/,
    ],
    // 3. a model config with wrong types; an output whose parent is a file
    [
      [...match, '--out', join(dir, 'm.csv'), '--model-config', badConfig],
      /^diffreg: .*bad-config\.json: diffusion_unet_def\.num_channels: wrong type of value 64$/,
    ],
    [
      [...register, '--out-field', join(aFile, 'field.nii.gz')],
      /^diffreg: --out-field: cannot create .*a-file\/field\.nii\.gz: .*a-file is a file, not a folder$/,
    ],
    [['demo', '--out', aFile], /^diffreg: --out: .*a-file is a file, not a folder$/],
    [
      ['demo', '--out', join(dir, 'demo'), '--descriptor', 'sift'],
      /^diffreg: --descriptor: expected one of auto, diffusion, mind, patches, fused, classical, got "sift"$/,
    ],
    // 4. output formats and register's options before any computation
    [
      [...register, '--out-field', field, '--out-warped', join(dir, 'warped.png')],
      /^diffreg: --out-warped: expected a file name ending in \.nii, \.nii\.gz, \.mha, \.mhd, got ".*warped\.png"$/,
    ],
    [[...match, '--out', join(dir, 'm.xml')], /^diffreg: --out: expected a file name ending in \.csv, /],
    // register --method resolves names through the registry; each method takes only its own options
    [
      [...register, '--out-field', field, '--method', 'nope'],
      /^diffreg: method "nope": unknown \(methods: identity, elastix-affine, .*meddift-register/,
    ],
    [
      [...register, '--out-field', field, '--method', 'meddift-match'],
      /^diffreg: --method: meddift-match matches points; use diffreg match$/,
    ],
    [
      [
        'register',
        '--fixed',
        image,
        '--moving',
        image,
        '--out-field',
        field,
        '--method',
        'elastix-bspline',
        '--smoothness',
        '2',
      ],
      /^diffreg: --smoothness: not an option of method elastix-bspline$/,
    ],
    [
      [...register, '--out-field', field, '--method', 'mind-register'],
      /^diffreg: --unet: method mind-register uses no diffusion model$/,
    ],
    [
      [...register, '--out-field', field, '--lattice-voxels', '5'],
      /^diffreg: --lattice-voxels: expected an integer in \[512, 16777216\], got 5$/,
    ],
    [
      [...register, '--out-field', field, '--search-radius', '0'],
      /^diffreg: --search-radius: expected an integer in \[1, 12\], got 0$/,
    ],
    [
      [...register, '--out-field', field, '--search-lattice-voxels', '300000'],
      /^diffreg: --search-lattice-voxels: expected an integer in \[512, 262144\], got 300000$/,
    ],
    [
      [...register, '--out-field', field, '--refine', '2.5'],
      /^diffreg: --refine: expected an integer in \[0, 10000\], got 2\.5$/,
    ],
    [
      [...register, '--out-field', field, '--descriptor', 'sift'],
      /^diffreg: --descriptor: expected one of auto, diffusion, mind, patches, fused, classical, got "sift"$/,
    ],
    [
      [...register, '--out-field', field, '--method', 'elastix-bspline', '--descriptor', 'mind'],
      /^diffreg: method elastix-bspline: takes no --descriptor \(only the feature methods do\)$/,
    ],
    // --descriptor picks the feature method: mind-register uses no model, so --unet is refused
    [
      [...register, '--out-field', field, '--descriptor', 'mind'],
      /^diffreg: --unet: method mind-register uses no diffusion model$/,
    ],
    [
      [...register, '--out-field', field, '--descriptor', 'classical'],
      /^diffreg: --unet: method classical-register uses no diffusion model$/,
    ],
    [
      [...register, '--out-field', field, '--channels', '2.5'],
      /^diffreg: --channels: expected an integer in \[1, 1024\], got 2\.5$/,
    ],
    // 5. options that would be ignored
    [
      [...match, '--out', join(dir, 'm.csv'), '--search', 'global', '--radius', '5'],
      /^diffreg: --radius: only with --search registered or local$/,
    ],
    [
      [...matchInputs, '--out', join(dir, 'm.csv'), '--model-config', badConfig],
      /^diffreg: --model-config: only with --unet and --autoencoder \(MAISI checkpoints\)$/,
    ],
    [
      [...register, '--out-field', field, '--moving-labels', image],
      /^diffreg: --moving-labels: needs --out-labels/,
    ],
    // 7. a 2-D image
    [
      ['register', '--fixed', flat, '--moving', image, '--out-field', field, ...nope],
      /^diffreg: .*flat\.nii\.gz: 24x24x1 voxels is not a 3-D volume: at least 4 voxels along every axis/,
    ],
  ];
  await writeVolume(
    flat,
    new Volume({ data: new Int16Array(24 * 24), dims: [24, 24, 1], spacing: [1, 1, 3] }),
  );
  for (const [args, pattern] of cases) assertOneLineError(diffreg(...args), pattern);
  assert.deepEqual(
    readdirSync(dir).filter((f) => /^(field|m|warped)\.|\.tmp$/.test(f)),
    [],
  );
});

test('register --method voxelmorph: the shipped bootstrap network gives a field on the fixed grid', async (t) => {
  if (!existsSync(join(repoRoot, 'models', 'diffusereg', 'model.json'))) {
    t.skip('models/diffusereg is not installed');
    return;
  }
  // An MR-like pair: a bright ellipsoid and the same one shifted by 2 voxels along i.
  const dims: [number, number, number] = [48, 40, 12];
  const pair = [0, 2].map((shift) => {
    const data = new Float32Array(dims[0] * dims[1] * dims[2]);
    for (let k = 0; k < dims[2]; k++)
      for (let j = 0; j < dims[1]; j++)
        for (let i = 0; i < dims[0]; i++) {
          const r = ((i - 24 - shift) / 10) ** 2 + ((j - 20) / 8) ** 2 + ((k - 6) / 4) ** 2;
          data[i + dims[0] * (j + dims[1] * k)] = r < 1 ? 400 : 50;
        }
    return new Volume({ data, dims, spacing: [1.5, 1.5, 8] });
  });
  const [fixed, moving] = ['vm-fixed.nii.gz', 'vm-moving.nii.gz'].map((f) => join(dir, f));
  await writeVolume(fixed, pair[0]);
  await writeVolume(moving, pair[1]);
  const field = join(dir, 'vm-field.nii.gz');
  const r = diffreg(
    'register',
    '--method',
    'voxelmorph',
    '--fixed',
    fixed,
    '--moving',
    moving,
    '--out-field',
    field,
    '--json',
  );
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  assert.equal(summary.method, 'voxelmorph');
  const written = await readVolume(field);
  assert.deepEqual(written.dims, dims);
  assert.equal(written.components, 3);
  // Inside the fixed ellipsoid the moving one lies 2 voxels (3 mm) further along +x.
  const mean = [0, 0, 0];
  let count = 0;
  const n = written.size;
  pair[0].data.forEach((v, i) => {
    if (v < 400) return;
    count++;
    for (let c = 0; c < 3; c++) mean[c] += written.data[c * n + i];
  });
  const [ux, uy, uz] = mean.map((m) => m / count);
  assert.ok(ux > 1 && ux < 5 && Math.abs(uy) < 1 && Math.abs(uz) < 1, `mean u ${[ux, uy, uz].join(', ')} mm`);
  // A CT-like pair is registered with a warning: the weights know cardiac MR only.
  const ct = diffreg(
    'register',
    '--method',
    'voxelmorph',
    '--fixed',
    image,
    '--moving',
    image,
    '--out-field',
    join(dir, 'vm-ct.nii.gz'),
  );
  assert.equal(ct.status, 0, ct.stderr);
  assert.match(ct.stderr, /warning: voxelmorph's weights were trained on cardiac cine MR; this CT pair/);
});

test('register --method diffusereg: a sampled field with a watch folder, or one line while no denoiser is shipped', async (t) => {
  const modelJson = join(repoRoot, 'models', 'diffusereg', 'model.json');
  if (!existsSync(modelJson)) {
    t.skip('models/diffusereg is not installed');
    return;
  }
  const [fixed, moving] = ['vm-fixed.nii.gz', 'vm-moving.nii.gz'].map((f) => join(dir, f));
  const field = join(dir, 'dr-field.nii.gz');
  const watch = join(dir, 'dr-watch');
  const args = [
    'register',
    '--method',
    'diffusereg',
    '--fixed',
    fixed,
    '--moving',
    moving,
    '--out-field',
    field,
  ];
  const sampling = ['--steps', '4', '--watch', watch, '--every', '2', '--json'];
  if (!JSON.parse(readFileSync(modelJson, 'utf8')).denoiser) {
    assertOneLineError(
      diffreg(...args, ...sampling),
      /^diffreg: diffusereg: the shipped model has no trained denoiser yet/,
    );
    return;
  }
  const r = diffreg(...args, ...sampling);
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  assert.deepEqual([summary.method, summary.sampler, summary.steps], ['diffusereg', 'ddim', 4]);
  const written = await readVolume(field);
  assert.deepEqual(written.dims, [48, 40, 12]);
  // With the default refinement the ellipsoid's 2-voxel (3 mm) shift along +x is found inside it.
  const fixedImage = await readVolume(fixed);
  const inside = [...fixedImage.data.keys()].filter((i) => fixedImage.data[i] > 200);
  const mean = [0, 1, 2].map(
    (c) => inside.reduce((a, i) => a + written.data[c * written.size + i], 0) / inside.length,
  );
  assert.ok(
    Math.abs(mean[0] - 3) < 0.75 && Math.abs(mean[1]) < 0.5 && Math.abs(mean[2]) < 0.5,
    `mean u ${mean.join(', ')} mm`,
  );
  assertOneLineError(
    diffreg(...args, '--refine', '-1'),
    /^diffreg: --refine: expected an integer in \[0, 10000\], got -1$/,
  );
  assert.deepEqual(readdirSync(watch).sort(), [
    'step-0002-field.nii.gz',
    'step-0002-warped.nii.gz',
    'step-0004-field.nii.gz',
    'step-0004-warped.nii.gz',
    'strip.png',
  ]);
  // Two samples: their spread per voxel, in mm.
  const spread = join(dir, 'dr-uncertainty.nii.gz');
  const two = diffreg(
    ...args,
    '--steps',
    '2',
    '--samples',
    '2',
    '--refine',
    '0',
    '--out-uncertainty',
    spread,
  );
  assert.equal(two.status, 0, two.stderr);
  const u = await readVolume(spread);
  assert.equal(u.components, 1);
  assert.ok(u.data.some((v) => v > 0));
});

/**
 * The CLI's shared checks, called in-process: negative numbers as option values, the output check
 * (real paths, folders still to be created, collisions), and file-system errors as one-line messages.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { joinNegativeNumbers, type OptionSpec } from '../../src/cli/args.ts';
import { checkOutputs, realPath, systemError, VOLUME_EXTENSIONS } from '../../src/cli/outputs.ts';
import { DiffregError } from '../../src/util/errors.ts';

test('a negative number after a string option is its value; anything else is left to parseArgs', () => {
  const options: OptionSpec = { radius: { type: 'string' }, json: { type: 'boolean' } };
  assert.deepEqual(joinNegativeNumbers(options, ['--radius', '-5', '--json']), ['--radius=-5', '--json']);
  assert.deepEqual(joinNegativeNumbers(options, ['--radius', '-.5']), ['--radius=-.5']);
  assert.deepEqual(joinNegativeNumbers(options, ['--radius', '--json']), ['--radius', '--json']);
  assert.deepEqual(joinNegativeNumbers(options, ['--json', '-5']), ['--json', '-5']);
  assert.deepEqual(joinNegativeNumbers(options, ['--radius', '-x']), ['--radius', '-x']);
});

test('outputs: real paths, folders still to be created, and collisions', () => {
  const dir = mkdtempSync(join(tmpdir(), 'diffreg-outputs-'));
  const input = join(dir, 'moving.nii.gz');
  writeFileSync(input, '');
  symlinkSync(dir, join(dir, 'link'));
  // `x`, `./x`, a path through a symlinked folder and a relative path are one file.
  const real = realPath(input).real;
  for (const p of [join(dir, '.', 'moving.nii.gz'), join(dir, 'link', 'moving.nii.gz'), relative('.', input)])
    assert.equal(realPath(p).real, real);
  assert.equal(realPath(join(dir, 'link', 'new', 'x.nii')).existing, realPath(dir).real);

  const volume = (option: string, path: string) => ({ option, path, extensions: VOLUME_EXTENSIONS });
  const values = { moving: input, timestep: '20' };
  // Folders that do not exist yet are created by the writers: fine when the nearest one is writable.
  checkOutputs([volume('out-field', join(dir, 'new', 'deeper', 'field.nii.gz'))], values, ['moving']);
  checkOutputs([{ option: 'out', path: join(dir, 'results') }], values, ['moving']);
  mkdirSync(join(dir, 'folder.nii'));
  const refused: [Parameters<typeof checkOutputs>[0], RegExp][] = [
    [[volume('out-warped', join(dir, 'link', 'moving.nii.gz'))], /is the input given as --moving/],
    [
      [volume('out-field', join(dir, 'f.nii')), volume('out-warped', join(dir, '.', 'f.nii'))],
      /^--out-warped: .* is also --out-field/,
    ],
    [[volume('out-field', join(dir, 'field.png'))], /^--out-field: expected a file name ending in \.nii, /],
    [[volume('out-field', join(dir, 'folder.nii'))], /folder\.nii is a folder; give a file name$/],
    [[{ option: 'out', path: input }], /moving\.nii\.gz is a file, not a folder$/],
    [
      [volume('out-field', join(input, 'f.nii'))],
      /cannot create .*: .*moving\.nii\.gz is a file, not a folder$/,
    ],
  ];
  for (const [outputs, pattern] of refused)
    assert.throws(
      () => checkOutputs(outputs, values, ['moving']),
      (e: Error) => {
        assert.ok(e instanceof DiffregError, String(e));
        assert.match(e.message, pattern);
        return true;
      },
    );
});

test('file-system failures become one line naming the path; other errors stay bugs', () => {
  // Tests run as root, whom permissions do not stop: the EACCES case is the error Node raises.
  const denied = Object.assign(new Error("EACCES: permission denied, open '/data/out/field.nii.gz'"), {
    code: 'EACCES',
    syscall: 'open',
    path: '/data/out/field.nii.gz',
  });
  assert.equal(systemError(denied)?.message, '/data/out/field.nii.gz: permission denied');
  const dir = mkdtempSync(join(tmpdir(), 'diffreg-fs-'));
  const file = join(dir, 'file');
  writeFileSync(file, '');
  const caught = (f: () => void) => {
    try {
      f();
    } catch (e) {
      return e;
    }
  };
  assert.equal(
    systemError(caught(() => writeFileSync(join(file, 'x.csv'), '')))?.message,
    `${join(file, 'x.csv')}: a part of the path is a file, not a folder`,
  );
  assert.equal(
    systemError(caught(() => mkdirSync(file, { recursive: true })))?.message,
    `${file}: a file is where a folder is needed`,
  );
  assert.equal(systemError(new TypeError('x is not a function')), undefined);
});

/**
 * The commands' outputs, checked before any input is read or model loaded, so that a wrong name or
 * folder fails in a second instead of after minutes of computation, and no input is ever overwritten.
 */
import { accessSync, constants, existsSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { DiffregError, fail } from '../util/errors.ts';
import { invalid } from '../util/is.ts';

/** What writeVolume can write (its extension test lives in io/volume-io.ts). */
export const VOLUME_EXTENSIONS = ['.nii', '.nii.gz', '.mha', '.mhd'] as const;

export interface Output {
  /** The option without dashes, for the messages. */
  option: string;
  path: string;
  /** Accepted endings of a file output; a folder output has none. */
  extensions?: readonly string[];
}

/**
 * The path with symlinks and `.`/`..` resolved, also for a file that does not exist yet (its nearest
 * existing folder is resolved), so `x`, `./x` and a link to x compare equal; and that nearest existing
 * ancestor, which is where writing starts (the atomic writers create missing folders below it).
 */
export function realPath(path: string): { real: string; existing: string } {
  let existing = resolve(path);
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  const real = realpathSync(existing);
  return { real: join(real, relative(existing, resolve(path))), existing: real };
}

function where(option: string, path: string, folder: boolean): string {
  const { real, existing } = realPath(path);
  if (real === existing) {
    const isFolder = statSync(real).isDirectory();
    if (folder && !isFolder) fail(`--${option}`, `${path} is a file, not a folder`);
    if (!folder && isFolder) fail(`--${option}`, `${path} is a folder; give a file name`);
  } else if (!statSync(existing).isDirectory()) {
    fail(`--${option}`, `cannot create ${path}: ${existing} is a file, not a folder`);
  }
  try {
    accessSync(existing, constants.W_OK);
  } catch (e) {
    fail(
      `--${option}`,
      `cannot write ${path} (${SYSTEM_ERRORS[(e as NodeJS.ErrnoException).code ?? ''] ?? 'not writable'})`,
    );
  }
  return real;
}

/** What a failed file-system call means for the user, by its error code. */
const SYSTEM_ERRORS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'read-only file system',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EEXIST: 'a file is where a folder is needed',
  EISDIR: 'a folder is where a file is needed',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  ENOENT: 'no such file or folder',
};

/**
 * A file-system failure that the checks above could not foresee (a folder made read-only, or a disk
 * filled, during the run) is the user's situation, not a bug: one line naming the path.
 */
export function systemError(e: unknown): DiffregError | undefined {
  const { code, path } = e as NodeJS.ErrnoException;
  const meaning = SYSTEM_ERRORS[code ?? ''];
  return meaning && path ? new DiffregError(`${path}: ${meaning}`) : undefined;
}

/**
 * Checks every output: a file name the writer knows, a place that is or can become a writable file
 * (or folder), and no output that is another output or one of the inputs (the options named by
 * `inputs`, read from `values`).
 */
export function checkOutputs(
  outputs: readonly Output[],
  values: Record<string, unknown>,
  inputs: readonly string[],
): void {
  const taken = new Map<string, string>();
  for (const option of inputs) {
    const path = values[option];
    if (typeof path === 'string' && existsSync(path))
      taken.set(realPath(path).real, `the input given as --${option}; choose another name`);
  }
  for (const { option, path, extensions } of outputs) {
    const lower = path.toLowerCase();
    if (extensions && !extensions.some((e) => lower.endsWith(e)))
      throw invalid(`--${option}`, `a file name ending in ${extensions.join(', ')}`, path);
    const real = where(option, path, !extensions);
    const other = taken.get(real);
    if (other) fail(`--${option}`, `${path} is ${other}`);
    taken.set(real, `also --${option}; give each output its own name`);
  }
}

/** Reading a JSON file given by the user, with one-line errors naming it. */
import { existsSync, readFileSync } from 'node:fs';
import { fail } from './errors.ts';

/** The parsed content of `path`; `what` names the file in the not-found message ("network config"). */
export function readJsonFile(path: string, what: string): unknown {
  if (!existsSync(path)) fail(path, `${what} file not found`);
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    fail(path, `not valid JSON (${(e as Error).message})`);
  }
}

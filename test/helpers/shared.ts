/**
 * Access to ../shared (evaluation data and reference fixtures) for tests. Tests that need it call
 * `requireShared(t, ...)`: when the folder is absent (a fresh clone elsewhere) the test is skipped
 * with a visible message instead of failing.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const sharedRoot = process.env.DIFFREG_SHARED ?? resolve(repoRoot, '..', 'shared');

export function sharedPath(...parts: string[]): string {
  return join(sharedRoot, ...parts);
}

/** Returns the path when present; otherwise skips the test with a message and returns undefined. */
export function requireShared(t: TestContext, ...parts: string[]): string | undefined {
  const p = sharedPath(...parts);
  if (existsSync(p)) return p;
  const message = `SKIPPED: needs ${p} (shared data/fixtures absent)`;
  console.log(`# ${message}`);
  t.skip(message);
  return undefined;
}

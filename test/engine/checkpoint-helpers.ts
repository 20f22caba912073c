/** Shared by the checkpoint tests: where the committed reference files are, and the error check. */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

export const refDir = join(dirname(fileURLToPath(import.meta.url)), 'fixtures-ref');

/** `run` must throw a DiffregError of one line that starts with "<subject>: " and matches `pattern`. */
export function assertOneLineError(run: () => unknown, subject: string, pattern: RegExp): void {
  assert.throws(run, (e: Error) => {
    assert.equal(e.name, 'DiffregError');
    assert.ok(e.message.startsWith(`${subject}: `), e.message);
    assert.ok(!e.message.includes('\n'), e.message);
    assert.match(e.message, pattern);
    return true;
  });
}

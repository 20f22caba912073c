/**
 * User-facing errors: one line naming the input and the problem. The CLI prints `message` alone
 * (no stack) and exits non-zero for these; any other Error is a bug and keeps its stack.
 */
export class DiffregError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DiffregError';
  }
}

/** Throws a DiffregError of the form "<subject>: <problem>". */
export function fail(subject: string, problem: string): never {
  throw new DiffregError(`${subject}: ${problem}`);
}

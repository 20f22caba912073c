/** Command-line parsing on node:util parseArgs, with diffreg's one-line errors. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { DiffregError } from '../util/errors.ts';
import { invalid } from '../util/is.ts';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export interface Command {
  name: string;
  summary: string;
  usage: string;
  options: OptionSpec;
  /** One line per option: [flag text, description]. */
  help: [string, string][];
  run(
    values: Record<string, string | boolean | (string | boolean)[] | undefined>,
    positionals: string[],
  ): Promise<number>;
}

export function parse(command: Command, argv: string[]) {
  try {
    return parseArgs({ args: argv, options: command.options, allowPositionals: true, strict: true });
  } catch (e) {
    const message = (e as Error).message.split('\n')[0].replace(/\. To specify a positional argument.*$/, '');
    throw new DiffregError(`${command.name}: ${message}`);
  }
}

export function helpText(c: Command): string {
  const width = Math.max(...c.help.map(([flag]) => flag.length));
  return [
    `diffreg ${c.name} — ${c.summary}`,
    '',
    `usage: ${c.usage}`,
    '',
    ...c.help.map(([f, d]) => `  ${f.padEnd(width)}  ${d}`),
  ].join('\n');
}

export function required(values: Record<string, unknown>, name: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new DiffregError(`--${name}: required`);
  return v;
}

export function optionalNumber(values: Record<string, unknown>, name: string): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n))
    throw invalid(`--${name}`, 'a number', v);
  return n;
}

export function optionalInteger(values: Record<string, unknown>, name: string): number | undefined {
  const n = optionalNumber(values, name);
  if (n !== undefined && (!Number.isInteger(n) || n < 1))
    throw invalid(`--${name}`, 'a positive integer', values[name]);
  return n;
}

/** "0123" or "0,1,2,3" → [0, 1, 2, 3]. */
export function levelList(values: Record<string, unknown>, name: string): number[] | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const s = String(v);
  const parts = s.includes(',') ? s.split(',') : s.split('');
  const out = parts.map((p) => Number(p.trim()));
  if (out.some((x) => !Number.isInteger(x)))
    throw invalid(`--${name}`, 'level digits such as 0123 or 0,1,2,3', v);
  return out;
}

export function numberList(values: Record<string, unknown>, name: string): number[] | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const out = String(v)
    .split(',')
    .map((p) => Number(p.trim()));
  if (out.some((x) => !Number.isFinite(x))) throw invalid(`--${name}`, 'comma-separated numbers', v);
  return out;
}

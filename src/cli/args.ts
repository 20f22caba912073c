/** Command-line parsing on node:util parseArgs, with diffreg's one-line errors. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { DiffregError } from '../util/errors.ts';
import { integer, invalid, number } from '../util/is.ts';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export interface Command {
  name: string;
  summary: string;
  usage: string;
  options: OptionSpec;
  /** One line per option: [flag text, description]. */
  help: [string, string][];
  /** How many positional arguments the command takes (default none). */
  positionals?: number;
  run(
    values: Record<string, string | boolean | (string | boolean)[] | undefined>,
    positionals: string[],
  ): Promise<number>;
}

/**
 * parseArgs refuses `--radius -5` as ambiguous (the value could be a mistyped option), so a value that
 * reads as a negative number is joined to its string option (`--radius=-5`) and meets the option's own
 * check, like `--radius=-5` does.
 */
export function joinNegativeNumbers(options: OptionSpec, argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].startsWith('--') ? argv[i].slice(2) : undefined;
    const next = argv[i + 1];
    if (name && options[name]?.type === 'string' && next !== undefined && /^-\.?\d/.test(next)) {
      out.push(`${argv[i]}=${next}`);
      i++;
    } else out.push(argv[i]);
  }
  return out;
}

export function parse(command: Command, argv: string[]) {
  try {
    return parseArgs({
      args: joinNegativeNumbers(command.options, argv),
      options: command.options,
      allowPositionals: true,
      strict: true,
    });
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

type Range = Parameters<typeof number>[2];

/** A number option, checked against `range` when given (messages in the form of util/is.ts). */
export function optionalNumber(
  values: Record<string, unknown>,
  name: string,
  range: Range = {},
): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n))
    throw invalid(`--${name}`, 'a number', v);
  return number(`--${name}`, n, range);
}

/** An integer option, at least 1 unless `range` says otherwise. */
export function optionalInteger(
  values: Record<string, unknown>,
  name: string,
  range: Parameters<typeof integer>[2] = { min: 1 },
): number | undefined {
  const n = optionalNumber(values, name);
  return n === undefined ? undefined : integer(`--${name}`, n, range);
}

/** "0123" or "0,1,2,3" → [0, 1, 2, 3], each level at most once. */
export function levelList(values: Record<string, unknown>, name: string): number[] | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const s = String(v).replace(/\s/g, '');
  const out = (s.includes(',') ? s.split(',') : s.split('')).map((p) => (/^\d+$/.test(p) ? Number(p) : NaN));
  if (out.length === 0 || out.some((x, i) => Number.isNaN(x) || out.indexOf(x) !== i))
    throw invalid(`--${name}`, 'distinct level digits such as 0123 or 0,1,2,3', v);
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

/**
 * Option checks with one uniform message, done in TypeScript before anything reaches native code
 * (the pattern of sharp's lib/is.js): "<name>: expected <what>, got <value>".
 */
import { DiffregError } from './errors.ts';

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(show).join(', ')}]`;
  return String(value);
}

export function invalid(name: string, expected: string, value: unknown): DiffregError {
  return new DiffregError(`${name}: expected ${expected}, got ${show(value)}`);
}

export function isNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

export function number(
  name: string,
  v: unknown,
  opts: { min?: number; max?: number; exclusiveMin?: boolean } = {},
): number {
  const { min, max, exclusiveMin } = opts;
  const lo = min === undefined ? '' : exclusiveMin ? ` > ${min}` : ` >= ${min}`;
  const hi = max === undefined ? '' : ` <= ${max}`;
  const what = `a finite number${lo}${lo && hi ? ' and' : ''}${hi}`;
  if (!isNumber(v)) throw invalid(name, what, v);
  if (min !== undefined && (exclusiveMin ? v <= min : v < min)) throw invalid(name, what, v);
  if (max !== undefined && v > max) throw invalid(name, what, v);
  return v;
}

export function integer(name: string, v: unknown, opts: { min?: number; max?: number } = {}): number {
  const { min, max } = opts;
  const range =
    min !== undefined && max !== undefined
      ? ` in [${min}, ${max}]`
      : min !== undefined
        ? ` >= ${min}`
        : max !== undefined
          ? ` <= ${max}`
          : '';
  if (!Number.isInteger(v)) throw invalid(name, `an integer${range}`, v);
  const n = v as number;
  if ((min !== undefined && n < min) || (max !== undefined && n > max))
    throw invalid(name, `an integer${range}`, v);
  return n;
}

export function oneOf<T extends string>(name: string, v: unknown, choices: readonly T[]): T {
  if (typeof v !== 'string' || !choices.includes(v as T))
    throw invalid(name, `one of ${choices.join(', ')}`, v);
  return v as T;
}

export function bool(name: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw invalid(name, 'true or false', v);
  return v;
}

export function vec3(name: string, v: unknown): [number, number, number] {
  if (!Array.isArray(v) || v.length !== 3 || !v.every(isNumber))
    throw invalid(name, 'three finite numbers', v);
  return [v[0], v[1], v[2]];
}

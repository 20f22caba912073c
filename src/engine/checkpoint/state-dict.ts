/**
 * State dicts from either checkpoint format, and .pt → .safetensors conversion. A MAISI .pt holds
 * the state dict under a key (`unet_state_dict`) beside scalars such as `scale_factor`; those
 * scalars travel as safetensors metadata (JSON-encoded strings) when converting.
 */
import { fail } from '../../util/errors.ts';
import { DTYPE_SIZE, isRawTensor, numel, toFloat32, toTypedArray, type RawTensor } from './raw.ts';
import { readSafetensors, writeSafetensors } from './safetensors.ts';
import { readTorchCheckpoint } from './torch.ts';

export interface StateDict {
  /** Parameter name → tensor, in checkpoint order. */
  tensors: Map<string, RawTensor>;
  /**
   * .pt: the top-level entries beside the state dict (e.g. epoch, scale_factor).
   * .safetensors: the metadata, each value JSON-decoded when it is JSON (else the string).
   */
  rest: Map<string, unknown>;
  /** Where the state dict was found: the top-level key, or '' for the whole file. */
  key: string;
}

/** A number from a Python scalar or a one-element tensor; undefined for anything else. */
export function scalarValue(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (!isRawTensor(v) || v.data.byteLength !== DTYPE_SIZE[v.dtype] || numel(v.shape) !== 1) return undefined;
  if (v.dtype === 'float16' || v.dtype === 'bfloat16') return toFloat32(v)[0];
  return Number(toTypedArray(v)[0]);
}

function listKeys(keys: Iterable<unknown>): string {
  const all = [...keys].map(String);
  const shown = all.slice(0, 12).join(', ');
  return all.length > 12 ? `${shown}, ... (${all.length} keys)` : shown;
}

/** The dict's entries as tensors, or undefined when it is not a non-empty dict of tensors. */
function tensorDict(v: unknown): Map<string, RawTensor> | undefined {
  if (!(v instanceof Map) || v.size === 0) return undefined;
  for (const [k, t] of v) if (typeof k !== 'string' || !isRawTensor(t)) return undefined;
  return v as Map<string, RawTensor>;
}

function fromTorch(path: string, key: string | undefined): StateDict {
  const top = readTorchCheckpoint(path);
  if (!(top instanceof Map))
    fail(path, `top level is ${Array.isArray(top) ? 'a list' : typeof top}, not a dict`);
  if (key === undefined) {
    const whole = tensorDict(top);
    if (whole) return { tensors: whole, rest: new Map(), key: '' };
    const found = [...top].filter(([, v]) => tensorDict(v)).map(([k]) => String(k));
    if (found.length === 0) fail(path, `no state dict of tensors found (keys: ${listKeys(top.keys())})`);
    if (found.length > 1) fail(path, `several state dicts (${found.join(', ')}); choose one with a key`);
    key = found[0];
  }
  if (!top.has(key)) fail(path, `no key '${key}' (keys: ${listKeys(top.keys())})`);
  const tensors = tensorDict(top.get(key));
  if (!tensors) fail(path, `'${key}' is not a dict of tensors`);
  const rest = new Map([...top].filter(([name]) => name !== key).map(([name, v]) => [String(name), v]));
  return { tensors, rest, key };
}

function decodeMetadata(metadata: Record<string, string>): Map<string, unknown> {
  return new Map(
    Object.entries(metadata).map(([k, s]) => {
      try {
        return [k, JSON.parse(s)];
      } catch {
        return [k, s];
      }
    }),
  );
}

/**
 * A safetensors file is one flat state dict. With `key`, tensors named `<key>.*` are taken (prefix
 * removed) when there are any; otherwise the whole file is that state dict (as convertCheckpoint writes it).
 */
function fromSafetensors(path: string, key: string | undefined): StateDict {
  const { tensors, metadata } = readSafetensors(path);
  const rest = decodeMetadata(metadata);
  if (key === undefined) return { tensors, rest, key: '' };
  const prefix = `${key}.`;
  const nested = [...tensors].filter(([name]) => name.startsWith(prefix));
  if (nested.length === 0) return { tensors, rest, key };
  return { tensors: new Map(nested.map(([name, t]) => [name.slice(prefix.length), t])), rest, key };
}

/**
 * The state dict of a `.safetensors` file or a torch.save `.pt`/`.pth` file. For a .pt holding a
 * dict, `key` names the entry with the state dict; without it the file's only dict of tensors is used.
 */
export function loadStateDict(path: string, opts: { key?: string } = {}): StateDict {
  return path.toLowerCase().endsWith('.safetensors')
    ? fromSafetensors(path, opts.key)
    : fromTorch(path, opts.key);
}

export interface ConvertResult {
  tensors: number;
  /** The metadata written (top-level scalars, JSON-encoded). */
  metadata: Record<string, string>;
  /** Top-level entries that are neither the state dict nor a scalar, so were not written. */
  skipped: string[];
}

/**
 * Writes the state dict of `inPath` (chosen by `key` as in loadStateDict) to `outPath` as
 * safetensors. Top-level scalars (numbers, strings, booleans, one-element tensors such as
 * MAISI's scale_factor) go into the metadata as JSON.
 */
export function convertCheckpoint(
  inPath: string,
  outPath: string,
  opts: { key?: string } = {},
): ConvertResult {
  const sd = loadStateDict(inPath, opts);
  const metadata: Record<string, string> = {};
  const skipped: string[] = [];
  for (const [name, v] of sd.rest) {
    const value = typeof v === 'string' || typeof v === 'boolean' || v === null ? v : scalarValue(v);
    if (value === undefined) skipped.push(name);
    // JSON has no bigint, NaN or Infinity: those are written as their decimal text.
    else if (typeof v === 'bigint' || (typeof value === 'number' && !Number.isFinite(value)))
      metadata[name] = String(v);
    else metadata[name] = JSON.stringify(value);
  }
  writeSafetensors(outPath, sd.tensors, metadata);
  return { tensors: sd.tensors.size, metadata, skipped };
}

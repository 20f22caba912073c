/** Free functions over several tensors (torch.cat, torch.where, ...) and the randomCrop helper. */
import { DiffregError } from '../util/errors.ts';
import { integer, invalid, oneOf } from '../util/is.ts';
import { intList } from './check.ts';
import { N } from './native.ts';
import { Tensor, randint, type Generator, type TensorLike } from './tensor.ts';

function handles(name: string, xs: readonly Tensor[]) {
  if (!Array.isArray(xs) || xs.length === 0 || !xs.every((x) => x instanceof Tensor)) {
    throw invalid(name, 'a non-empty list of tensors', xs);
  }
  return xs.map((x) => x.handle);
}

export function cat(xs: readonly Tensor[], dim = 0): Tensor {
  return new Tensor(N.cat(handles('cat', xs), integer('dim', dim)));
}

export function stack(xs: readonly Tensor[], dim = 0): Tensor {
  return new Tensor(N.stack(handles('stack', xs), integer('dim', dim)));
}

/** Elementwise `cond ? a : b` with broadcasting; a and b may be numbers. */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  const h = (v: TensorLike) => (v instanceof Tensor ? v.handle : v);
  return new Tensor(N.where(cond.handle, h(a), h(b)));
}

export function einsum(equation: string, ...xs: Tensor[]): Tensor {
  if (typeof equation !== 'string') throw invalid('einsum equation', 'a string', equation);
  return new Tensor(N.einsum(equation, handles('einsum operands', xs)));
}

export function meshgrid(xs: readonly Tensor[], o: { indexing?: 'ij' | 'xy' } = {}): Tensor[] {
  const indexing = oneOf('meshgrid indexing', o.indexing ?? 'ij', ['ij', 'xy'] as const);
  return N.meshgrid(handles('meshgrid', xs), indexing).map((h) => new Tensor(h));
}

/**
 * Crops the last `size.length` dimensions at one random offset, the same for every tensor given (an
 * image and its label map stay aligned). Returns views, in the form given (one tensor or a list).
 */
export function randomCrop(x: Tensor, size: number[], o?: { generator?: Generator }): Tensor;
export function randomCrop(x: Tensor[], size: number[], o?: { generator?: Generator }): Tensor[];
export function randomCrop(
  x: Tensor | Tensor[],
  size: number[],
  o: { generator?: Generator } = {},
): Tensor | Tensor[] {
  const xs = Array.isArray(x) ? x : [x];
  const crop = intList('randomCrop size', size, 1);
  const ref = xs[0].shape;
  const lead = ref.length - crop.length;
  if (lead < 0) throw invalid('randomCrop size', `at most ${ref.length} dimensions`, size);
  for (const t of xs) {
    const s = t.shape;
    if (s.length !== ref.length || crop.some((_, i) => s[lead + i] !== ref[lead + i])) {
      throw new DiffregError(
        `randomCrop: tensors differ in the cropped dimensions ([${s.join(', ')}] vs [${ref.join(', ')}])`,
      );
    }
  }
  const offsets = crop.map((c, i) => {
    const room = ref[lead + i] - c;
    if (room < 0) throw invalid('randomCrop size', `at most [${ref.slice(lead).join(', ')}]`, size);
    if (room === 0) return 0;
    const r = randint(0, room + 1, [1], { generator: o.generator });
    try {
      return r.item();
    } finally {
      r.dispose();
    }
  });
  const out = xs.map((t) => {
    let v = t;
    for (let i = 0; i < crop.length; i++) {
      const next = v.narrow(lead + i, offsets[i], crop[i]);
      if (v !== t) v.dispose();
      v = next;
    }
    return v === t ? t.alias() : v;
  });
  return Array.isArray(x) ? out : out[0];
}

/**
 * Multi-head attention with an output projection, for self-attention (queries, keys and values from
 * one token set) and cross-attention (queries from one set, keys and values from another), with an
 * optional additive bias per head (relative positions) and an optional additive mask per group of
 * sequences (shifted windows). Swin, SwinUNETR, TransMorph and LDM-Morph's LGCA are built from it.
 */
import { F, nn, tidy, type Tensor } from '../../engine/index.ts';
import { fail } from '../../util/errors.ts';
import { integer } from '../../util/is.ts';

export interface AttentionInputs {
  /** Keys and values come from here (cross-attention); queries from the forward input. */
  context?: Tensor;
  /** Added to every sequence's scores: (heads, L, S). */
  bias?: Tensor;
  /**
   * Added per sequence group: (G, L, S) with the batch B·G ordered group-fastest, as window
   * partitioning orders windows (batch slowest).
   */
  mask?: Tensor;
  /**
   * Queries from the last `queryTokens` tokens only (all tokens still give keys and values); the
   * output has those rows. The same as attending with all and keeping those rows, at L/S the cost.
   */
  queryTokens?: number;
}

export class MultiHeadAttention extends nn.Module {
  readonly heads: number;
  readonly headDim: number;
  readonly qkv: nn.Linear | null;
  readonly q: nn.Linear | null;
  readonly kv: nn.Linear | null;
  readonly proj: nn.Linear;

  /** `contextDim` set: cross-attention (separate q and kv projections). */
  constructor(dim: number, heads: number, opts: { contextDim?: number; qkvBias?: boolean } = {}) {
    super();
    this.heads = integer('attention heads', heads, { min: 1 });
    if (dim % heads !== 0) fail('attention', `dimension ${dim} is not divisible by ${heads} heads`);
    this.headDim = dim / heads;
    const bias = opts.qkvBias ?? true;
    const cross = opts.contextDim !== undefined;
    this.qkv = this.register('qkv', cross ? null : new nn.Linear(dim, 3 * dim, { bias }));
    this.q = this.register('q', cross ? new nn.Linear(dim, dim, { bias }) : null);
    this.kv = this.register('kv', cross ? new nn.Linear(opts.contextDim as number, 2 * dim, { bias }) : null);
    this.proj = this.register('proj', new nn.Linear(dim, dim));
  }

  /** (B, S, C) → (B, L, C), L = queryTokens or S. */
  forward(x: Tensor, inputs: AttentionInputs = {}): Tensor {
    return tidy(() => {
      const [b, s] = x.shape;
      const l = integer('attention queryTokens', inputs.queryTokens ?? s, { min: 1, max: s });
      const xq = l === s ? x : x.narrow(1, s - l, l);
      const heads = (t: Tensor, parts: number) =>
        t.reshape(b, t.shape[1], parts, this.heads, this.headDim).permute(2, 0, 3, 1, 4);
      let q: Tensor, k: Tensor, v: Tensor;
      if (this.qkv && l === s) {
        [q, k, v] = heads(this.qkv.forward(x), 3).unbind(0);
      } else if (this.qkv) {
        // qkv's rows are [q | k | v]: project the query rows of the last L tokens only.
        const { weight, bias } = this.qkv;
        const dim = this.heads * this.headDim;
        q = heads(F.linear(xq, weight.narrow(0, 0, dim), bias?.narrow(0, 0, dim)), 1).squeeze(0);
        const kv = F.linear(x, weight.narrow(0, dim, 2 * dim), bias?.narrow(0, dim, 2 * dim));
        [k, v] = heads(kv, 2).unbind(0);
      } else {
        if (!inputs.context) fail('attention', 'cross-attention needs a context');
        q = heads((this.q as nn.Linear).forward(xq), 1).squeeze(0);
        [k, v] = heads((this.kv as nn.Linear).forward(inputs.context), 2).unbind(0);
      }
      const out = F.scaledDotProductAttention(q, k, v, { attnMask: additiveMask(b, inputs) });
      return this.proj.forward(out.permute(0, 2, 1, 3).reshape(b, l, -1));
    });
  }
}

/** bias (heads, L, S) and mask (G, L, S) combined into one mask broadcastable to (B, heads, L, S). */
function additiveMask(batch: number, { bias, mask }: AttentionInputs): Tensor | null {
  if (!mask) return bias ? bias.unsqueeze(0) : null;
  const [g, l, s] = mask.shape;
  if (batch % g !== 0) fail('attention mask', `${g} groups do not divide the batch of ${batch}`);
  const grouped = mask
    .unsqueeze(0)
    .expand(batch / g, g, l, s)
    .reshape(batch, 1, l, s);
  return bias ? grouped.add(bias.unsqueeze(0)) : grouped;
}

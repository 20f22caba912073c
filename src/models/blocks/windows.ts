/**
 * Window attention's bookkeeping (Swin transformers, 2-D and 3-D): the window clamped to small token
 * grids, cutting a channels-last feature map into non-overlapping windows and back (padded to whole
 * windows and rolled for shifted windows), the additive mask that keeps shifted windows from attending
 * across the seams of the cyclic shift, and the relative-position index into a learned bias table.
 *
 * Layout: features are channels-last, (B, H, W, C) or (B, D, H, W, C); windows come out as
 * (B·nW, N, C) with N = the product of the window sizes, windows in row-major order of their grid
 * position (batch slowest), tokens row-major within a window — the order of Swin's reference code, so
 * that a mask built for the window grid lines up with the partitioned tensor.
 */
import { F, nn, Tensor, tidy, zeros } from '../../engine/index.ts';
import { fail } from '../../util/errors.ts';
import type { MultiHeadAttention } from './attention.ts';

/** Swin's additive mask value: large enough that softmax gives ~0, small enough to stay finite. */
export const MASKED = -100;

/**
 * Swin's rule for token grids no larger than the window along an axis: the window becomes the grid
 * on that axis and is not shifted there (shifting a window that covers the axis only wraps it).
 */
export function clampWindow(grid: readonly number[], window: readonly number[]) {
  const clamped = window.map((w, a) => Math.min(w, grid[a]));
  return {
    window: clamped,
    shift: clamped.map((w, a) => (grid[a] <= window[a] ? 0 : Math.floor(w / 2))),
  };
}

/** The token grid padded at the end of each axis to a multiple of the window. */
export function paddedGrid(grid: readonly number[], window: readonly number[]): number[] {
  return grid.map((g, a) => Math.ceil(g / window[a]) * window[a]);
}

/** x (B, ...spatial, C) zero-padded at the end of each spatial axis by `after` (x itself when all are 0). */
export function padSpatialEnd(x: Tensor, after: readonly number[]): Tensor {
  if (after.every((n) => n === 0)) return x;
  // F.pad lists (before, after) pairs from the last axis: channels, then the spatial axes reversed.
  return F.pad(x, [0, 0, ...[...after].reverse().flatMap((n) => [0, n])]);
}

function checkGrid(spatial: readonly number[], window: readonly number[]): number[] {
  if (window.length !== spatial.length || (window.length !== 2 && window.length !== 3))
    fail('window', `expected 2 or 3 sizes matching the feature map's ${spatial.length} spatial axes`);
  return spatial.map((s, i) => {
    if (s % window[i] !== 0)
      fail('window', `size ${window[i]} does not divide the feature map's axis ${i} (${s}); pad first`);
    return s / window[i];
  });
}

/** (B, ...spatial, C) → (B·nW, N, C). */
export function windowPartition(x: Tensor, window: readonly number[]): Tensor {
  const [b, ...rest] = x.shape;
  const c = rest.pop() as number;
  const grid = checkGrid(rest, window);
  return tidy(() => {
    // (B, g0, w0, g1, w1, [g2, w2,] C) → (B, g0, g1, [g2,] w0, w1, [w2,] C)
    const split = x.reshape(b, ...grid.flatMap((g, i) => [g, window[i]]), c);
    const d = grid.length;
    const order = [0, ...grid.map((_, i) => 1 + 2 * i), ...grid.map((_, i) => 2 + 2 * i), 1 + 2 * d];
    return split.permute(...order).reshape(
      -1,
      window.reduce((p, w) => p * w, 1),
      c,
    );
  });
}

/** The inverse of windowPartition: (B·nW, N, C) → (B, ...spatial, C). */
export function windowReverse(
  windows: Tensor,
  window: readonly number[],
  spatial: readonly number[],
): Tensor {
  const grid = checkGrid(spatial, window);
  const c = windows.shape[windows.shape.length - 1];
  const d = grid.length;
  return tidy(() => {
    const split = windows.reshape(-1, ...grid, ...window, c);
    // (B, g0, g1, [g2,] w0, w1, [w2,] C) → (B, g0, w0, g1, w1, [g2, w2,] C)
    const order = [0, ...grid.flatMap((_, i) => [1 + i, 1 + d + i]), 1 + 2 * d];
    return split.permute(...order).reshape(-1, ...spatial, c);
  });
}

/**
 * The additive mask (nW, N, N) of shifted-window attention: after the feature map is rolled by −shift,
 * windows at the far edge hold tokens from both ends of the map; tokens from different regions of the
 * unshifted map must not attend to each other (MASKED), tokens of the same region may (0).
 */
export function shiftedWindowMask(
  spatial: readonly number[],
  window: readonly number[],
  shift: readonly number[],
): Tensor {
  checkGrid(spatial, window);
  const d = spatial.length;
  // Each axis has three regions: [0, s−w), [s−w, s−shift), [s−shift, s); a voxel's region id combines them.
  const region = (axis: number, i: number) => {
    const s = spatial[axis];
    return i < s - window[axis] ? 0 : i < s - shift[axis] ? 1 : 2;
  };
  const total = spatial.reduce((p, s) => p * s, 1);
  const ids = new Float32Array(total);
  const index = new Array<number>(d).fill(0);
  for (let flat = 0; flat < total; flat++) {
    let rem = flat;
    for (let a = d - 1; a >= 0; a--) {
      index[a] = rem % spatial[a];
      rem = Math.floor(rem / spatial[a]);
    }
    ids[flat] = index.reduce((id, i, a) => id * 3 + region(a, i), 0);
  }
  return tidy(() => {
    const windows = windowPartition(Tensor.fromArray(ids, [1, ...spatial, 1]), window).squeeze(-1); // (nW, N)
    const differs = windows.unsqueeze(1).ne(windows.unsqueeze(2));
    return zeros(differs.shape).maskedFill(differs, MASKED);
  });
}

/** (N, N) index into a ((2w0−1)·(2w1−1)·…) bias table: the relative offset of token j from token i. */
export function relativePositionIndex(window: readonly number[]): Tensor {
  const n = window.reduce((p, w) => p * w, 1);
  const coords = Array.from({ length: n }, (_, flat) => {
    const c: number[] = [];
    for (let a = window.length - 1; a >= 0; a--) {
      c[a] = flat % window[a];
      flat = Math.floor(flat / window[a]);
    }
    return c;
  });
  const index = new BigInt64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      // Offsets shifted to be ≥ 0, then flattened row-major over the (2w−1)-sized axes.
      index[i * n + j] = BigInt(
        coords[i].reduce((id, ci, a) => id * (2 * window[a] - 1) + (ci - coords[j][a] + window[a] - 1), 0),
      );
    }
  }
  return Tensor.fromArray(index, [n, n]);
}

/** A learned bias per head and relative offset inside a window (Swin's relative_position_bias_table). */
export class RelativePositionBias extends nn.Module {
  readonly table: Tensor;
  readonly index: Tensor;
  readonly heads: number;

  constructor(window: readonly number[], heads: number) {
    super();
    this.heads = heads;
    const size = window.reduce((p, w) => p * (2 * w - 1), 1);
    // Swin initialises the table with a truncated normal of std 0.02.
    this.table = this.registerParameter(
      'relative_position_bias_table',
      nn.init.truncNormal_(zeros([size, heads]), { std: 0.02 }),
    );
    this.index = this.registerBuffer('relative_position_index', relativePositionIndex(window), {
      persistent: false,
    });
  }

  /** The bias (heads, N, N). */
  forward(): Tensor {
    const n = this.index.shape[0];
    return tidy(() =>
      this.table.indexSelect(0, this.index.flatten()).reshape(n, n, this.heads).permute(2, 0, 1),
    );
  }
}

/** A token grid and the (clamped) window that tiles it. */
export interface WindowGeometry {
  grid: number[];
  window: number[];
}

/**
 * The windows of one block: the grid padded at the end to whole windows (zero tokens, as Swin pads),
 * rolled by −shift, cut into windows, and back. A parameter-free module, so that its shifted-window
 * mask is a (non-persistent) buffer and follows the network's dtype and device.
 */
export class ShiftedWindows extends nn.Module {
  readonly grid: number[];
  readonly padded: number[];
  readonly window: number[];
  readonly shift: number[];
  /** The shifted-window mask (nW, N, N) on the padded grid; null when nothing is shifted. */
  readonly mask: Tensor | null;
  /** The spatial axes of (B, ...spatial, C). */
  readonly #axes: number[];
  /** Zero tokens at the end of each axis, up to the padded grid. */
  readonly #padding: number[];

  constructor(geometry: WindowGeometry, shift: number[]) {
    super();
    this.grid = geometry.grid;
    this.window = geometry.window;
    this.padded = paddedGrid(this.grid, this.window);
    this.shift = shift;
    this.#axes = this.grid.map((_, a) => a + 1);
    this.#padding = this.padded.map((p, a) => p - this.grid[a]);
    const shifted = shift.some((s) => s > 0);
    const mask = shifted ? tidy(() => shiftedWindowMask(this.padded, this.window, shift)) : null;
    this.mask = this.registerBuffer('mask', mask, { persistent: false });
  }

  /** (B, ...grid, C) → (B·nW, N, C): padded, rolled, partitioned. */
  partition(x: Tensor): Tensor {
    return tidy(() => {
      const padded = padSpatialEnd(x, this.#padding);
      const unshift = this.shift.map((s) => -s);
      const rolled = this.mask ? padded.roll(unshift, this.#axes) : padded;
      return windowPartition(rolled, this.window);
    });
  }

  /** The inverse of partition: (B·nW, N, C) → (B, ...grid, C). */
  reverse(windows: Tensor): Tensor {
    return tidy(() => {
      const map = windowReverse(windows, this.window, this.padded);
      const unrolled = this.mask ? map.roll(this.shift, this.#axes) : map;
      if (this.#padding.every((n) => n === 0)) return unrolled;
      return this.grid.reduce((t, g, a) => t.narrow(a + 1, 0, g), unrolled);
    });
  }

  /** Attention of x's tokens to those of `context` (x itself when absent) inside each window. */
  attend(attn: MultiHeadAttention, bias: RelativePositionBias, x: Tensor, context?: Tensor): Tensor {
    return tidy(() => {
      const windows = this.partition(x);
      const out = attn.forward(windows, {
        context: context && this.partition(context),
        bias: bias.forward(),
        mask: this.mask ?? undefined,
      });
      return this.reverse(out);
    });
  }
}

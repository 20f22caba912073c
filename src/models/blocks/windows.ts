/**
 * Window attention's bookkeeping (Swin transformers, 2-D and 3-D): cutting a channels-last feature map
 * into non-overlapping windows and back, the additive mask that keeps shifted windows from attending
 * across the seams of the cyclic shift, and the relative-position index into a learned bias table.
 *
 * Layout: features are channels-last, (B, H, W, C) or (B, D, H, W, C); windows come out as
 * (B·nW, N, C) with N = the product of the window sizes, windows in row-major order of their grid
 * position (batch slowest), tokens row-major within a window — the order of Swin's reference code, so
 * that a mask built for the window grid lines up with the partitioned tensor.
 */
import { nn, Tensor, tidy, zeros } from '../../engine/index.ts';
import { fail } from '../../util/errors.ts';

/** Swin's additive mask value: large enough that softmax gives ~0, small enough to stay finite. */
export const MASKED = -100;

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

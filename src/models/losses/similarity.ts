/**
 * Image similarity losses of unsupervised registration, for 2-D (B, C, w, h) and 3-D (B, C, w, h, d)
 * tensors: local normalised cross-correlation (VoxelMorph) and structural similarity (SSIM, as
 * DiffuseReg's 3-D SSIM). Both rest on local means over a window — uniform or Gaussian, separable —
 * taken over the voxels of the window that lie inside the grid, so borders are not pulled toward the
 * zero padding and an affine intensity change gives correlation 1 up to the boundary.
 */
import { cat, F, localNcc, ones, scalarWithGradient, tensor, tidy, type Tensor } from '../../engine/index.ts';
import { fail } from '../../util/errors.ts';
import { spatialAxes } from './spatial.ts';

export interface WindowOptions {
  /** Window edge in voxels (odd), one for all axes or one per axis. */
  window?: number | readonly number[];
  /** 'uniform' (box) or 'gaussian' weights. */
  kernel?: 'uniform' | 'gaussian';
  /** Standard deviation of the Gaussian kernel, in voxels (default 1.5, as pytorch-ssim). */
  sigma?: number;
}

function windowSizes(window: number | readonly number[], nd: number): number[] {
  const sizes = typeof window === 'number' ? Array<number>(nd).fill(window) : [...window];
  if (sizes.length !== nd || !sizes.every((w) => Number.isInteger(w) && w >= 1 && w % 2 === 1)) {
    fail('window', `expected an odd number of voxels or ${nd} of them, got ${JSON.stringify(window)}`);
  }
  return sizes;
}

/** Weighted means of each channel of x over the window around every voxel (inside the grid only). */
function localMeans(x: Tensor, o: Required<WindowOptions>): Tensor {
  const nd = spatialAxes('local mean input', x);
  const sizes = windowSizes(o.window, nd);
  const conv = nd === 3 ? F.conv3d : F.conv2d;
  const spatial = x.shape.slice(2);
  return tidy(() => {
    const separable = (t: Tensor) =>
      sizes.reduce((acc, w, a) => {
        const r = (w - 1) / 2;
        const weights = Array.from({ length: w }, (_, i) =>
          o.kernel === 'gaussian' ? Math.exp(-((i - r) ** 2) / (2 * o.sigma ** 2)) : 1,
        );
        const shape = [1, 1, ...sizes.map((_, b) => (b === a ? w : 1))];
        const padding = sizes.map((_, b) => (b === a ? r : 0));
        return conv(acc, tensor(weights).reshape(shape), null, { padding });
      }, t);
    const sums = separable(x.reshape([-1, 1, ...spatial]));
    const weightInside = separable(ones([1, 1, ...spatial]));
    return sums.div(weightInside).reshape(x.shape);
  });
}

/** The NCC window's default edge in voxels (VoxelMorph's). */
const NCC_WINDOW = 9;
const SSIM_WINDOW: Required<WindowOptions> = { window: 9, kernel: 'gaussian', sigma: 1.5 };

/** One line when the two images of a similarity differ in shape. */
function checkSameShape(a: Tensor, b: Tensor): void {
  if (a.shape.join() !== b.shape.join()) {
    fail('similarity', `images differ in shape: [${a.shape.join(', ')}] vs [${b.shape.join(', ')}]`);
  }
}

/** Local means of a, b, a², b², ab in one pass of the window. */
function localMoments(a: Tensor, b: Tensor, o: Required<WindowOptions>) {
  checkSameShape(a, b);
  const n = a.shape[0];
  const m = localMeans(cat([a, b, a.square(), b.square(), a.mul(b)], 0), o);
  const [ma, mb, maa, mbb, mab] = [0, 1, 2, 3, 4].map((k) => m.narrow(0, k * n, n));
  return {
    ma,
    mb,
    varA: maa.sub(ma.square()),
    varB: mbb.sub(mb.square()),
    cov: mab.sub(ma.mul(mb)),
  };
}

/**
 * Local NCC loss, VoxelMorph's sign: −mean over voxels of cov²/(var_a·var_b + eps) in a box window
 * (default 9 voxels per axis). In [−1, 0]; −1 when b is an affine intensity change of a. The loss and
 * its gradient come from one fused kernel (engine localNcc), joined to autograd by scalarWithGradient.
 */
export function nccLoss(
  a: Tensor,
  b: Tensor,
  o: { window?: number | readonly number[] } = {},
  eps = 1e-5,
): Tensor {
  const nd = spatialAxes('similarity input', a);
  checkSameShape(a, b);
  const sizes = windowSizes(o.window ?? NCC_WINDOW, nd);
  return tidy(() => {
    // 2-D images as volumes one voxel deep.
    const volumes = (x: Tensor) => x.reshape(-1, ...x.shape.slice(2), ...(nd === 2 ? [1] : []));
    const { loss, gradA, gradB } = localNcc(volumes(a), volumes(b), nd === 2 ? [...sizes, 1] : sizes, eps);
    return scalarWithGradient(loss, [
      [a, gradA],
      [b, gradB],
    ]);
  });
}

/**
 * Mean SSIM (Wang et al. 2004) with a Gaussian window (default 9 voxels, σ 1.5), constants
 * (0.01·L)² and (0.03·L)² for intensity range L (default 1). 1 for identical images.
 */
export function ssim(a: Tensor, b: Tensor, o: WindowOptions = {}, range = 1): Tensor {
  const c1 = (0.01 * range) ** 2;
  const c2 = (0.03 * range) ** 2;
  return tidy(() => {
    const { ma, mb, varA, varB, cov } = localMoments(a, b, { ...SSIM_WINDOW, ...o });
    const luminance = ma.mul(mb).mul(2).add(c1).div(ma.square().add(mb.square()).add(c1));
    const structure = cov.mul(2).add(c2).div(varA.add(varB).add(c2));
    return luminance.mul(structure).mean();
  });
}

/** 1 − SSIM (DiffuseReg's image term). */
export function ssimLoss(a: Tensor, b: Tensor, o: WindowOptions = {}, range = 1): Tensor {
  return tidy(() => ssim(a, b, o, range).neg().add(1));
}

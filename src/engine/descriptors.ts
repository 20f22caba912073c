/**
 * Classical voxel descriptors of a whole image as fused native kernels (native/ops_descriptors.cc):
 * MIND-SSC and dilated intensity patches. The image is (W, H, D) or (1, 1, W, H, D) float; `dilation`
 * is the neighbour distance in voxels per axis, 0 for an axis without neighbours (across the thick
 * slices of a stack). Borders replicate. No gradient: descriptors are computed once per image.
 *
 *   const mind = mindSsc(image, [1, 1, 1]);           // (12, W, H, D)
 *   const patches = intensityPatches(image, [2, 2, 0]); // (9, W, H, D)
 */
import { intList } from './check.ts';
import { invalid } from '../util/is.ts';
import { N } from './native.ts';
import { tidy } from './scope.ts';
import { Tensor } from './tensor.ts';

function nativeArgs(image: Tensor, dilation: number | readonly number[]): [Tensor, number[]] {
  const volume =
    image.ndim === 5 && image.shape[0] === 1 && image.shape[1] === 1
      ? image.reshape(...image.shape.slice(2))
      : image;
  if (volume.ndim !== 3)
    throw invalid('descriptor image', 'a (W, H, D) or (1, 1, W, H, D) tensor', image.toString());
  const d = typeof dilation === 'number' ? [dilation, dilation, dilation] : [...dilation];
  intList('descriptor dilation', d, 0);
  if (d.length !== 3) throw invalid('descriptor dilation', 'three integers >= 0', dilation);
  return [volume.float().contiguous(), d];
}

/**
 * MIND-SSC (Heinrich et al. 2013): (12, W, H, D), or (4, …) with one axis of dilation 0. The neighbours
 * are ±dilation along each axis (+ first, axes in order); a channel per pair of neighbours on different
 * axes: their squared difference averaged over the 3×3×3 box, divided by the local variance (the
 * channels' mean, clamped to [0.001, 1000] times its image mean), exp(−·), over the channel maximum.
 */
export function mindSsc(image: Tensor, dilation: number | readonly number[] = 1): Tensor {
  return tidy(() => {
    const [volume, d] = nativeArgs(image, dilation);
    if (d.filter((v) => v > 0).length < 2)
      throw invalid('descriptor dilation', 'a value > 0 along at least two axes for MIND-SSC', dilation);
    return new Tensor(N.mind_ssc(volume.handle, d));
  });
}

/**
 * The image at the offsets (a, b, c)·dilation, a, b, c ∈ {−1, 0, 1} (only 0 along an axis of dilation
 * 0), a slowest, minus their mean: (27, W, H, D), or (9, …) / (3, …). Their cosine similarity is the
 * patches' normalised cross-correlation.
 */
export function intensityPatches(image: Tensor, dilation: number | readonly number[] = 2): Tensor {
  return tidy(() => {
    const [volume, d] = nativeArgs(image, dilation);
    return new Tensor(N.dilated_patches(volume.handle, d));
  });
}

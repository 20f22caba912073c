/**
 * Applies layers one after another and frees each intermediate as soon as the next step has used it.
 * Inside `tidy` intermediates would live until the block returns; for full-resolution activations of
 * 2 GB each that multiplies peak memory, so the long chains of the MAISI blocks go through here.
 */
import type { Tensor } from './tensor.ts';

export function pipe(x: Tensor, ...steps: ((t: Tensor) => Tensor)[]): Tensor {
  let current = x;
  for (const step of steps) {
    const next = step(current);
    if (current !== x && next !== current) current.dispose();
    current = next;
  }
  return current;
}

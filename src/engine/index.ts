/**
 * diffreg's tensor engine: libtorch (ATen + autograd) through our N-API addon, with a PyTorch-shaped
 * TypeScript API. Usage in brief:
 *
 *   import { F, nn, optim, tidy, noGrad, randn, tensor, zeros, manualSeed, Generator } from '../engine/index.ts';
 *
 *   manualSeed(0);                                   // or pass { generator: new Generator(0) } per call
 *   const x = randn([1, 4, 16, 16, 16]);             // float32 unless { dtype } says otherwise
 *   const y = tidy(() => F.conv3d(x, w, b, { padding: 1 }).silu().mean());  // intermediates freed here
 *   y.item(); x.dispose(); y.dispose();              // explicit release (a finalizer is only a safety net)
 *
 * Tensors: `x.add(y)`, `x.mul(2)`, `x.reshape(2, -1)`, `x.permute(0, 2, 1)`, `x.sum(-1, true)`,
 * `x.max(1) → { values, indices }`, `x.slice(dim, start, end, step)`, in-place ops end in `_` and return
 * `this`. Free functions: `cat`, `stack`, `where`, `einsum`, `meshgrid`, `randomCrop`. Functional ops
 * (torch.nn.functional) live in `F`: conv1d/2d/3d, convTranspose*, linear, matmul, groupNorm, layerNorm,
 * instanceNorm, interpolate, gridSample, affineGrid, pad, pools, scaledDotProductAttention, dropout,
 * losses; heavy ones have `...Async` twins returning Promises (event loop keeps running), as has
 * `loss.backwardAsync()`. An async op holds its own references to its inputs (disposing them meanwhile
 * is safe) but must not race with in-place writes to them.
 *
 * Memory: every method returns a new handle. Inside `tidy(fn)` every tensor created is disposed when fn
 * returns, except the returned ones (also inside arrays/objects), which move to the enclosing scope.
 * `t.keep()` exempts a tensor; module parameters and optimiser state are kept automatically. A
 * forgotten tensor is freed when V8 collects its handle (native sizes are reported to V8), but
 * dispose/tidy free memory at once. `Tensor.fromArray(a, shape, { copy: false })` shares the typed
 * array's memory; `toTypedArray()`/`toBytes()` always copy.
 *
 * Modules (`nn`): subclass `nn.Module`, register children/parameters/buffers by their PyTorch names,
 * in the order PyTorch registers them (that order is the state-dict order):
 *
 *   class Block extends nn.Module {
 *     readonly norm: nn.GroupNorm; readonly conv: nn.Conv3d;
 *     constructor(c: number) {
 *       super();
 *       this.norm = this.register('norm', new nn.GroupNorm(32, c));
 *       this.conv = this.register('conv', new nn.Conv3d(c, c, 3, { padding: 1 }));
 *     }
 *     forward(x: Tensor): Tensor { return tidy(() => this.conv.forward(this.norm.forward(x).silu())); }
 *   }
 *   block.stateDict()  // Map: 'norm.weight', 'norm.bias', 'conv.weight', 'conv.bias'
 *   block.loadStateDict(map, { strict: true })  // one Error naming missing/unexpected/mismatched keys
 *
 * Training: `const opt = new optim.AdamW(model.parameters(), { lr: 1e-4 })`; per step:
 * `opt.zeroGrad(); const loss = tidy(() => ...); loss.backward(); opt.step(); loss.dispose()`.
 * Autograd: `requiresGrad_()`, `backward()`, `.grad`, `noGrad(fn)`, `enableGrad(fn)`, `grad(outs, ins)`.
 * Threads: all available cores by default, DIFFREG_THREADS or `setNumThreads(n)` to change.
 * Errors from libtorch arrive as Error (code 'ERR_TORCH') with libtorch's message; options are checked
 * first with diffreg's uniform "<name>: expected <what>, got <value>" DiffregError.
 */
export {
  Tensor,
  Generator,
  defaultGenerator,
  manualSeed,
  tensor,
  zeros,
  ones,
  empty,
  full,
  arange,
  linspace,
  eye,
  randn,
  rand,
  randint,
  randperm,
  zerosLike,
  onesLike,
  fullLike,
  randnLike,
  type Device,
  type TensorLike,
  type TensorOptions,
  type RandomOptions,
  type BackwardOptions,
  type ShapeArgs,
} from './tensor.ts';
export { DTYPES, isFloating, type DType, type TypedArray } from './dtype.ts';
export { cat, stack, where, einsum, meshgrid, randomCrop } from './ops.ts';
export { tidy, dispose } from './scope.ts';
export { pipe } from './pipe.ts';
export { noGrad, enableGrad, isGradEnabled, grad, scalarWithGradient, type GradOptions } from './autograd.ts';
export { setNumThreads, getNumThreads, memoryStats, releaseFreeMemory, engineInfo } from './runtime.ts';
export {
  searchLevel,
  cosineTopK,
  cosineScores,
  nearestRows,
  type SearchLevel,
  type CosineSearchOptions,
} from './search.ts';
export {
  ssdCostVolume,
  coupledArgmin,
  warpedSsd,
  type SubLattice,
  sampleTrilinear,
  sampleTrilinearBackward,
  selfCompose,
  selfComposeBackward,
  displacedPositions,
} from './registration.ts';
export { mindSsc, intensityPatches } from './descriptors.ts';
export { localNcc, foldingHinge } from './losses.ts';
export * as F from './functional.ts';
export * as nn from './nn/index.ts';
export * as optim from './optim/index.ts';

/** torch.nn for diffreg: Module and containers, standard layers, initialisers (`nn.init`). */
export {
  Module,
  ModuleList,
  ModuleDict,
  Sequential,
  type Layer,
  type LoadResult,
  type RawTensorLike,
  type StateDictInput,
} from './module.ts';
export * from './layers.ts';
export * as init from './init.ts';

/** Checkpoint formats: safetensors read/write, torch.save (.pt) reading, state dicts. No tensor engine needed. */
export { DTYPE_SIZE, isRawTensor, numel, toFloat32, toTypedArray } from './raw.ts';
export type { DType, RawTensor, TypedArrayOf } from './raw.ts';
export {
  parseSafetensors,
  readSafetensors,
  readSafetensorsHeader,
  serializeSafetensors,
  writeSafetensors,
} from './safetensors.ts';
export type { SafetensorsContent, SafetensorsEntry, SafetensorsHeader } from './safetensors.ts';
export { readTorchCheckpoint } from './torch.ts';
export { convertCheckpoint, loadStateDict, scalarValue } from './state-dict.ts';
export type { ConvertResult, StateDict } from './state-dict.ts';

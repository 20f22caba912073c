/**
 * Reader for torch.save files (the zip format of torch >= 1.6): `<prefix>/data.pkl` is a pickle
 * whose tensors point, through persistent ids, at raw storage records `<prefix>/data/<key>`.
 * Only the globals a checkpoint needs are allowed; anything else is refused, never executed.
 */
import { fail } from '../../util/errors.ts';
import { readRange, withFile, type OpenFile } from './files.ts';
import { dataGlobal, PyGlobal, unpickle } from './pickle.ts';
import { DTYPE_SIZE, isRawTensor, numel, type DType, type RawTensor } from './raw.ts';
import { readZipDirectory, readZipEntry, type ZipEntry } from './zip.ts';

const STORAGE_DTYPES: Readonly<Record<string, DType>> = {
  FloatStorage: 'float32',
  DoubleStorage: 'float64',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

class StorageType extends PyGlobal {
  constructor(
    subject: string,
    name: string,
    readonly dtype: DType,
  ) {
    super(name, () => fail(subject, `pickle calls storage class ${name}`));
  }
}

/** A storage record viewed with one dtype (tensors sharing it share `bytes`). */
class Storage {
  constructor(
    readonly key: string,
    readonly dtype: DType,
    readonly bytes: Uint8Array,
  ) {}
}

function isCount(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

/**
 * Copies the strided view into contiguous row-major bytes. Trailing axes already laid out
 * contiguously collapse into one run, so a contiguous view is returned as a subarray without copying.
 */
function gather(src: Uint8Array, es: number, offset: number, size: number[], stride: number[]): Uint8Array {
  let run = 1;
  let k = size.length;
  while (k > 0 && (size[k - 1] === 1 || stride[k - 1] === run)) run *= size[--k];
  if (k === 0) return src.subarray(offset * es, (offset + run) * es);
  const runBytes = run * es;
  const out = new Uint8Array(numel(size) * es);
  const idx = new Array<number>(k).fill(0);
  let at = offset * es;
  for (let o = 0; o < out.byteLength; o += runBytes) {
    if (runBytes <= 16) for (let b = 0; b < runBytes; b++) out[o + b] = src[at + b];
    else out.set(src.subarray(at, at + runBytes), o);
    for (let a = k - 1; a >= 0; a--) {
      at += stride[a] * es;
      if (++idx[a] < size[a]) break;
      at -= stride[a] * size[a] * es;
      idx[a] = 0;
    }
  }
  return out;
}

function rebuildTensor(subject: string, args: readonly unknown[]): RawTensor {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof Storage)) fail(subject, 'tensor rebuild without a storage');
  if (!isCount(offset) || !Array.isArray(size) || !Array.isArray(stride) || size.length !== stride.length) {
    fail(subject, `tensor in storage '${storage.key}' has an invalid offset, size or stride`);
  }
  if (!size.every(isCount) || !stride.every(isCount)) {
    fail(subject, `tensor in storage '${storage.key}' has a negative or non-integer size or stride`);
  }
  const shape = [...(size as number[])];
  const es = DTYPE_SIZE[storage.dtype];
  if (numel(shape) === 0) return { dtype: storage.dtype, shape, data: new Uint8Array(0) };
  let last = offset;
  shape.forEach((s, a) => (last += (s - 1) * (stride[a] as number)));
  if ((last + 1) * es > storage.bytes.byteLength) {
    fail(subject, `tensor [${shape}] at offset ${offset} runs past the end of storage '${storage.key}'`);
  }
  return { dtype: storage.dtype, shape, data: gather(storage.bytes, es, offset, shape, stride as number[]) };
}

/** The whitelist: state-dict containers, tensor rebuilds, storage classes and torch.device. */
function findGlobal(subject: string, module: string, name: string): PyGlobal {
  const full = `${module}.${name}`;
  const data = dataGlobal(subject, module, name);
  if (data) return data;
  if (full === 'collections.OrderedDict') {
    // Pickled as OrderedDict() followed by SETITEMS.
    return new PyGlobal(full, (args) =>
      args.length ? fail(subject, 'OrderedDict with arguments') : new Map(),
    );
  }
  if (full === 'torch._utils._rebuild_tensor_v2')
    return new PyGlobal(full, (args) => rebuildTensor(subject, args));
  if (full === 'torch._utils._rebuild_parameter' || full === 'torch._utils._rebuild_parameter_with_state') {
    return new PyGlobal(full, (args) =>
      isRawTensor(args[0]) ? args[0] : fail(subject, `${full} without a tensor`),
    );
  }
  if (full === 'torch.device') {
    // torch.device('cuda', 0) or torch.device('cuda:0'): kept as its string form.
    return new PyGlobal(full, (args) => args.filter((a) => a !== null).join(':'));
  }
  if (module === 'torch' && name.endsWith('Storage')) {
    const dtype = STORAGE_DTYPES[name];
    if (!dtype) fail(subject, `unsupported tensor storage type ${full}`);
    return new StorageType(subject, full, dtype);
  }
  fail(
    subject,
    `refusing pickle global '${full}' (only tensors, storages, OrderedDict and plain data are allowed)`,
  );
}

/** The data.pkl record; the prefix (the file stem at save time) varies, so any folder is accepted. */
function findPickle(subject: string, entries: ZipEntry[]): ZipEntry {
  const depth = (e: ZipEntry): number => e.name.split('/').length;
  const candidates = entries.filter((e) => e.name === 'data.pkl' || e.name.endsWith('/data.pkl'));
  if (candidates.length) return candidates.reduce((a, b) => (depth(b) < depth(a) ? b : a));
  if (entries.some((e) => e.name.endsWith('constants.pkl') || e.name.includes('/code/'))) {
    fail(subject, 'is a TorchScript archive (torch.jit.save); save the state_dict with torch.save instead');
  }
  fail(subject, 'zip archive without a data.pkl record: not a torch.save checkpoint');
}

function readArchive(file: OpenFile): unknown {
  const { path } = file;
  const magic = readRange(file, 0, Math.min(4, file.size), 'file signature');
  const isZip =
    magic.byteLength === 4 && magic[0] === 0x50 && magic[1] === 0x4b && magic[2] === 3 && magic[3] === 4;
  if (!isZip) {
    if (magic[0] === 0x80) fail(path, 'legacy torch.save format not supported; re-save with torch>=1.6');
    fail(path, 'not a PyTorch checkpoint (expected the zip archive torch.save writes)');
  }
  const entries = readZipDirectory(file);
  const byName = new Map(entries.map((e) => [e.name, e]));
  const pkl = findPickle(path, entries);
  const prefix = pkl.name.slice(0, -'data.pkl'.length);
  const order = byName.get(`${prefix}byteorder`);
  if (order) {
    const text = new TextDecoder().decode(readZipEntry(file, order)).trim();
    if (text !== 'little') fail(path, `byte order '${text}' not supported (only little-endian checkpoints)`);
  }

  const records = new Map<string, Uint8Array>();
  const storages = new Map<string, Storage>();
  const persistentLoad = (pid: unknown): Storage => {
    const [kind, type, key, , count] = Array.isArray(pid) ? pid : [];
    if (kind !== 'storage' || !(type instanceof StorageType) || typeof key !== 'string' || !isCount(count)) {
      fail(path, 'unsupported persistent id in data.pkl (expected a storage reference)');
    }
    const id = `${key}:${type.dtype}`;
    let storage = storages.get(id);
    if (storage) return storage;
    let bytes = records.get(key);
    if (!bytes) {
      const entry =
        byName.get(`${prefix}data/${key}`) ?? fail(path, `missing storage record '${prefix}data/${key}'`);
      bytes = readZipEntry(file, entry);
      records.set(key, bytes);
    }
    const need = count * DTYPE_SIZE[type.dtype];
    if (bytes.byteLength < need) {
      fail(path, `storage record '${prefix}data/${key}' holds ${bytes.byteLength} bytes, expected ${need}`);
    }
    storage = new Storage(key, type.dtype, bytes);
    storages.set(id, storage);
    return storage;
  };
  return unpickle(
    readZipEntry(file, pkl),
    { findGlobal: (m, n) => findGlobal(path, m, n), persistentLoad },
    path,
  );
}

/**
 * Reads a torch.save checkpoint into plain JS values: dicts and OrderedDicts as Maps (key order
 * kept), tensors as RawTensor (contiguous; views of a shared storage share its bytes), Python
 * scalars as JS values. Each storage record is read once, straight from the file.
 */
export function readTorchCheckpoint(path: string): unknown {
  return withFile(path, readArchive);
}

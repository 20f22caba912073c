/**
 * The zip and pickle layers of the torch.save reader: deflated and zip64 archives (built here, since
 * torch writes neither for small files), torch 2.x records, the pickle VM on Python-written pickles
 * of protocols 2–5, refused globals, and the one-line errors for damaged or foreign files.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateRawSync } from 'node:zlib';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadStateDict, readTorchCheckpoint } from '../../src/engine/checkpoint/index.ts';
import { withFile } from '../../src/engine/checkpoint/files.ts';
import { dataGlobal, unpickle, type PickleHooks } from '../../src/engine/checkpoint/pickle.ts';
import { readZipDirectory, readZipEntry } from '../../src/engine/checkpoint/zip.ts';
import { fail } from '../../src/util/errors.ts';
import { assertOneLineError, refDir } from './checkpoint-helpers.ts';

const views = join(refDir, 'views.pt');
const dir = mkdtempSync(join(tmpdir(), 'diffreg-zip-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Entry {
  name: string;
  data: Uint8Array;
}

/** A zip archive per APPNOTE: local headers and data, central directory, (zip64) end records. */
function buildZip(entries: Entry[], opts: { deflate?: boolean; zip64?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let at = 0;
  const u16 = (v: number): Buffer => Buffer.from(Uint16Array.of(v).buffer);
  const u32 = (v: number): Buffer => Buffer.from(Uint32Array.of(v).buffer);
  const u64 = (v: number): Buffer => Buffer.from(BigUint64Array.of(BigInt(v)).buffer);
  const big = (v: number): Buffer => u32(opts.zip64 ? 0xffffffff : v);
  for (const e of entries) {
    const name = Buffer.from(e.name);
    const body = opts.deflate ? deflateRawSync(e.data) : Buffer.from(e.data);
    const common = [
      u16(opts.zip64 ? 45 : 20),
      u16(0),
      u16(opts.deflate ? 8 : 0),
      u16(0),
      u16(0x21),
      u32(crc32(e.data)),
    ];
    const localExtra = opts.zip64
      ? Buffer.concat([u16(1), u16(16), u64(e.data.byteLength), u64(body.byteLength)])
      : Buffer.alloc(0);
    const local = [
      u32(0x04034b50),
      ...common,
      big(body.byteLength),
      big(e.data.byteLength),
      u16(name.length),
    ];
    parts.push(Buffer.concat([...local, u16(localExtra.length), name, localExtra, body]));
    const extra = opts.zip64
      ? Buffer.concat([u16(1), u16(24), u64(e.data.byteLength), u64(body.byteLength), u64(at)])
      : Buffer.alloc(0);
    const head = [
      u32(0x02014b50),
      u16(45),
      ...common,
      big(body.byteLength),
      big(e.data.byteLength),
      u16(name.length),
    ];
    central.push(
      Buffer.concat([...head, u16(extra.length), u16(0), u16(0), u16(0), u32(0), big(at), name, extra]),
    );
    at += parts[parts.length - 1].byteLength;
  }
  const dirBytes = Buffer.concat(central);
  const tail: Buffer[] = [];
  if (opts.zip64) {
    const n = u64(entries.length);
    const end64 = [
      u32(0x06064b50),
      u64(44),
      u16(45),
      u16(45),
      u32(0),
      u32(0),
      n,
      n,
      u64(dirBytes.length),
      u64(at),
    ];
    tail.push(...end64, u32(0x07064b50), u32(0), u64(at + dirBytes.length), u32(1));
  }
  const count = u16(opts.zip64 ? 0xffff : entries.length);
  tail.push(u32(0x06054b50), u16(0), u16(0), count, count, big(dirBytes.length), big(at), u16(0));
  return Buffer.concat([...parts, dirBytes, ...tail]);
}

const viewsEntries = (): Entry[] =>
  withFile(views, (file) =>
    readZipDirectory(file).map((e) => ({ name: e.name, data: readZipEntry(file, e) })),
  );

function save(name: string, bytes: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

test('deflated, zip64 and torch 2.x style archives read the same as the stored original', (t) => {
  const original = readTorchCheckpoint(views);
  const entries = viewsEntries();
  const torch2 = [
    ...entries.map((e) => ({ name: e.name.replace(/^views\//, 'archive/'), data: e.data })),
    { name: 'archive/byteorder', data: Buffer.from('little') },
    { name: 'archive/.data/serialization_id', data: Buffer.from('1234567890') },
  ];
  // Checkpoints saved on a GPU name the location 'cuda:0' in each storage reference.
  const cpu = Buffer.from('X\x03\x00\x00\x00cpu', 'latin1');
  const cuda = Buffer.from('X\x06\x00\x00\x00cuda:0', 'latin1');
  const onGpu = entries.map((e) => {
    if (!e.name.endsWith('data.pkl')) return e;
    const text = Buffer.from(e.data).toString('latin1');
    assert.ok(text.includes(cpu.toString('latin1')));
    return {
      name: e.name,
      data: Buffer.from(text.split(cpu.toString('latin1')).join(cuda.toString('latin1')), 'latin1'),
    };
  });
  const variants = {
    'cuda.pt': buildZip(onGpu),
    'deflate.pt': buildZip(entries, { deflate: true }),
    'zip64.pt': buildZip(entries, { zip64: true }),
    'zip64-deflate.pt': buildZip(entries, { zip64: true, deflate: true }),
    'torch2.pt': buildZip(torch2),
  };
  for (const [name, bytes] of Object.entries(variants))
    assert.deepEqual(readTorchCheckpoint(save(name, bytes)), original, name);
  // The hand-built archives are standard zips: Python's zipfile agrees on names and CRCs.
  const check =
    'import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nassert z.testzip() is None\nprint(len(z.namelist()))';
  const run = spawnSync('python3', ['-c', check, join(dir, 'zip64-deflate.pt')], { encoding: 'utf8' });
  if (run.error) {
    t.diagnostic('python3 not found: skipped the zipfile cross-check');
    return;
  }
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout.trim(), String(entries.length));
});

function expectError(path: string, pattern: RegExp): void {
  assertOneLineError(() => readTorchCheckpoint(path), path, pattern);
}

test('damaged and foreign files fail with one line naming the file', () => {
  const bytes = readFileSync(views);
  expectError(save('half.pt', bytes.subarray(0, bytes.length >> 1)), /truncated or damaged zip archive/);
  expectError(save('cut-end.pt', bytes.subarray(0, bytes.length - 10)), /truncated or damaged zip archive/);
  expectError(save('garbage.pt', Buffer.from('hello, this is not a checkpoint')), /not a PyTorch checkpoint/);
  expectError(save('empty.pt', new Uint8Array(0)), /not a PyTorch checkpoint/);
  expectError(
    save('legacy.pt', Buffer.from('80028a0a6cfc9c46f9206a a8 50 19 2e'.replace(/ /g, ''), 'hex')),
    /legacy torch\.save format not supported; re-save with torch>=1\.6$/,
  );
  const corrupt = Buffer.from(bytes);
  const first = withFile(views, (file) => readZipDirectory(file).find((e) => e.name === 'views/data/0')!);
  const dataAt =
    first.localOffset +
    30 +
    corrupt.readUInt16LE(first.localOffset + 26) +
    corrupt.readUInt16LE(first.localOffset + 28);
  corrupt[dataAt] ^= 0xff;
  expectError(save('crc.pt', corrupt), /zip entry 'views\/data\/0' is corrupt \(CRC mismatch\)/);
  expectError(join(dir, 'absent.pt'), /file not found$/);
  expectError(dir, /is not a regular file$/);

  const entries = viewsEntries();
  const pkl = entries.filter((e) => e.name.endsWith('data.pkl'));
  expectError(save('no-storage.pt', buildZip(pkl)), /missing storage record 'views\/data\/0'/);
  expectError(
    save('no-pkl.pt', buildZip(entries.filter((e) => !e.name.endsWith('data.pkl')))),
    /without a data\.pkl record/,
  );
  const script = [
    { name: 'm/constants.pkl', data: Uint8Array.of(0x80, 2, 0x29, 0x2e) },
    ...pkl.map((e) => ({ ...e, name: 'm/code/m.py' })),
  ];
  expectError(save('script.pt', buildZip(script)), /is a TorchScript archive/);
  const big = [...entries, { name: 'views/byteorder', data: Buffer.from('big') }];
  expectError(save('big.pt', buildZip(big)), /byte order 'big' not supported/);
});

test('pickles that name anything beyond tensors and plain data are refused, not run', () => {
  // os.system('ls') in protocol 2 (GLOBAL) and builtins.eval('1') in protocol 4 (STACK_GLOBAL).
  const system = Buffer.from('\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03.', 'latin1');
  const evil = save('evil.pt', buildZip([{ name: 'evil/data.pkl', data: system }]));
  expectError(
    evil,
    /refusing pickle global 'os\.system' \(only tensors, storages, OrderedDict and plain data are allowed\)$/,
  );
  const evalPickle = Buffer.from('\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c\x011\x85R.', 'latin1');
  expectError(
    save('eval.pt', buildZip([{ name: 'e/data.pkl', data: evalPickle }])),
    /refusing pickle global 'builtins\.eval'/,
  );
  const complex = Buffer.from('\x80\x02ctorch\nComplexFloatStorage\n.', 'latin1');
  expectError(
    save('complex.pt', buildZip([{ name: 'c/data.pkl', data: complex }])),
    /unsupported tensor storage type torch\.ComplexFloatStorage/,
  );
});

const hooks: PickleHooks = {
  findGlobal: (module, name) => dataGlobal('p', module, name) ?? fail('p', `global ${module}.${name}`),
  persistentLoad: () => fail('p', 'persistent id'),
};
const run = (hex: string): unknown => unpickle(Buffer.from(hex, 'hex'), hooks, 'p');
const bin = (latin1: string): unknown => unpickle(Buffer.from(latin1, 'latin1'), hooks, 'p');

test('pickle VM: one Python object written with protocols 2, 3, 4 and 5 decodes the same', () => {
  // pickle.dumps(obj, protocol=p) of
  // {'a': [1, -2, 2**100, -(2**70), None, True, False, 1.5, 'é', b'xy', b'', {3}, frozenset(), ('t',), (1, 2), (1, 2, 3), ()],
  //  'b': bytearray(b'z'), 7: 2**31, 'shared': (l, l)} with l = [0]
  const pickles = [
    '80027d71002858010000006171015d7102284b014afeffffff8a0d000000000000000000000000108a090000000000000000c04e8889473ff80000000000005802000000c3a97103635f636f646563730a656e636f64650a710458020000007879710558060000006c6174696e317106867107527108635f5f6275696c74696e5f5f0a62797465730a71092952710a635f5f6275696c74696e5f5f0a7365740a710b5d710c4b036185710d52710e635f5f6275696c74696e5f5f0a66726f7a656e7365740a710f5d711085711152711258010000007471138571144b014b028671154b014b024b0387711629655801000000627117635f5f6275696c74696e5f5f0a6279746561727261790a7118680458010000007a7119680686711a52711b85711c52711d4b078a0500000080005806000000736861726564711e5d711f4b0061681f867120752e',
    '80037d71002858010000006171015d7102284b014afeffffff8a0d000000000000000000000000108a090000000000000000c04e8889473ff80000000000005802000000c3a9710343027879710443007105636275696c74696e730a7365740a71065d71074b0361857108527109636275696c74696e730a66726f7a656e7365740a710a5d710b85710c52710d580100000074710e85710f4b014b028671104b014b024b0387711129655801000000627112636275696c74696e730a6279746561727261790a711343017a71148571155271164b078a050000008000580600000073686172656471175d71184b00616818867119752e',
    '800495a5000000000000007d94288c0161945d94284b014afeffffff8a0d000000000000000000000000108a090000000000000000c04e8889473ff80000000000008c02c3a99443027879944300948f94284b03902891948c01749485944b014b0286944b014b024b03879429658c0162948c086275696c74696e73948c0962797465617272617994939443017a94859452944b078a0500000080008c06736861726564945d944b006168148694752e',
    '8005958f000000000000007d94288c0161945d94284b014afeffffff8a0d000000000000000000000000108a090000000000000000c04e8889473ff80000000000008c02c3a99443027879944300948f94284b03902891948c01749485944b014b0286944b014b024b03879429658c0162949601000000000000007a944b078a0500000080008c06736861726564945d944b0061680f8694752e',
  ];
  const list: unknown[] = [1, -2, 2n ** 100n, -(2n ** 70n), null, true, false, 1.5, 'é'];
  list.push(
    Uint8Array.of(0x78, 0x79),
    new Uint8Array(0),
    new Set([3]),
    new Set(),
    ['t'],
    [1, 2],
    [1, 2, 3],
    [],
  );
  const expected = new Map<unknown, unknown>([
    ['a', list],
    ['b', Uint8Array.of(0x7a)],
    [7, 2 ** 31],
    ['shared', [[0], [0]]],
  ]);
  for (const hex of pickles) {
    const value = run(hex) as Map<unknown, unknown>;
    assert.deepEqual(value, expected, hex.slice(0, 4));
    const shared = value.get('shared') as unknown[];
    assert.equal(shared[0], shared[1], 'memo keeps object identity');
  }
});

test('pickle VM: stack, memo and string opcodes; malformed pickles fail cleanly', () => {
  assert.deepEqual(bin('\x80\x02(K\x01K\x02d.'), new Map([[1, 2]]));
  assert.deepEqual(bin('\x80\x02(K\x01K\x02l.'), [1, 2]);
  assert.deepEqual(bin('\x80\x02(K\x012t.'), [1, 1]);
  assert.equal(bin('\x80\x02K\x01K\x020.'), 1);
  assert.equal(bin('\x80\x02K\x05(K\x01K\x021.'), 5);
  assert.equal(bin('\x80\x02\x8b\x02\x00\x00\x00\xff\x7f.'), 32767);
  assert.equal(bin('\x80\x02\x8a\x00.'), 0);
  assert.equal(bin('\x80\x02J\x00\x00\x00\x80.'), -(2 ** 31));
  assert.equal(bin('\x80\x04\x8d\x02\x00\x00\x00\x00\x00\x00\x00hi.'), 'hi');
  assert.deepEqual(bin('\x80\x03B\x03\x00\x00\x00abc.'), Uint8Array.of(0x61, 0x62, 0x63));
  assert.equal(bin('\x80\x02U\x03abc.'), 'abc');
  assert.equal(bin('\x80\x02T\x02\x00\x00\x00ok.'), 'ok');
  assert.deepEqual(bin('\x80\x02K\x09r\x05\x00\x00\x00j\x05\x00\x00\x00\x86.'), [9, 9]);
  const errors: [string, RegExp][] = [
    ['\x80\x02K', /^p: pickle data ends early \(pickle byte 3\)$/],
    ['\x80\x02I1\n.', /^p: unsupported pickle opcode 0x49 \(pickle byte 2\)$/],
    ['\x80\x02.', /pickle stack underflow/],
    ['\x80\x02h\x03.', /pickle memo 3 undefined/],
    ['\x80\x02K\x01K\x02R.', /pickle calls a non-callable value/],
    ['\x80\x06.', /pickle protocol above 5/],
    ['\x80\x02e.', /pickle MARK missing/],
  ];
  for (const [pickle, pattern] of errors)
    assert.throws(() => bin(pickle), { name: 'DiffregError', message: pattern });
});

test('loadStateDict: a checkpoint without a dict of tensors is refused by name', () => {
  const pt = (name: string, pickle: string): string =>
    save(name, buildZip([{ name: 'x/data.pkl', data: Buffer.from(pickle, 'latin1') }]));
  const list = pt('list.pt', '\x80\x02]K\x01a.');
  assertOneLineError(() => loadStateDict(list), list, /top level is a list, not a dict$/);
  const scalars = pt(
    'scalars.pt',
    '\x80\x02}(X\x05\x00\x00\x00epochK\x01X\x04\x00\x00\x00lossG?\xf0\x00\x00\x00\x00\x00\x00u.',
  );
  assertOneLineError(
    () => loadStateDict(scalars),
    scalars,
    /no state dict of tensors found \(keys: epoch, loss\)$/,
  );
});

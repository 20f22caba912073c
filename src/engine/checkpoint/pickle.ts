/**
 * A small pickle VM for the binary opcodes of protocols 2–5. It never runs code: GLOBAL names go to
 * the caller's `findGlobal`, which returns a JS stand-in or refuses, and REDUCE/NEWOBJ can only call
 * those stand-ins. Python values map to JS: dict → Map (insertion order kept), list → array,
 * tuple → frozen array, set → Set, int → number (bigint beyond 2^53), bytes → Uint8Array.
 */
import { fail } from '../../util/errors.ts';

/** A whitelisted Python callable (class or function) as named by a GLOBAL opcode. */
export class PyGlobal {
  constructor(
    readonly name: string,
    readonly call: (args: readonly unknown[]) => unknown,
  ) {}
}

export interface PickleHooks {
  /** Returns the stand-in for `module.name`; must throw for anything not allowed. */
  findGlobal(module: string, name: string): PyGlobal;
  /** Resolves a BINPERSID id (torch: a storage reference). */
  persistentLoad(pid: unknown): unknown;
}

/** bytes as protocol 2 spells them: _codecs.encode(text of code points < 256, 'latin1'). */
function latin1Bytes(args: readonly unknown[]): Uint8Array | undefined {
  const [text, encoding] = args;
  if (typeof text !== 'string' || !['latin1', 'latin-1', 'iso-8859-1'].includes(String(encoding)))
    return undefined;
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 255) return undefined;
    out[i] = c;
  }
  return out;
}

/**
 * The pure-data builtins protocol 2 uses for values it has no opcode for (bytes, bytearray, set,
 * frozenset); safe because they only build values. Undefined for any other name.
 */
export function dataGlobal(subject: string, module: string, name: string): PyGlobal | undefined {
  if (module !== 'builtins' && module !== '__builtin__' && module !== '_codecs') return undefined;
  const full = `${module}.${name}`;
  const bad = (): never => fail(subject, `pickle calls ${full} with unexpected arguments`);
  switch (full) {
    case '_codecs.encode':
      return new PyGlobal(full, (args) => latin1Bytes(args) ?? bad());
    case 'builtins.bytes':
    case '__builtin__.bytes':
    case 'builtins.bytearray':
    case '__builtin__.bytearray':
      return new PyGlobal(full, (args) =>
        args.length === 0 ? new Uint8Array(0) : args[0] instanceof Uint8Array ? args[0].slice() : bad(),
      );
    case 'builtins.set':
    case '__builtin__.set':
    case 'builtins.frozenset':
    case '__builtin__.frozenset':
      return new PyGlobal(full, (args) =>
        args.length === 0 ? new Set() : Array.isArray(args[0]) ? new Set(args[0]) : bad(),
      );
  }
  return undefined;
}

function tuple(items: unknown[]): readonly unknown[] {
  return Object.freeze(items);
}

/** Little-endian two's-complement integer (LONG1/LONG4) as number when exact, else bigint. */
function decodeLong(b: Uint8Array): number | bigint {
  if (b.byteLength === 0) return 0;
  let v = 0n;
  for (let i = b.byteLength - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
  if (b[b.byteLength - 1] & 0x80) v -= 1n << BigInt(8 * b.byteLength);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** Runs the pickle in `bytes`; `subject` (e.g. "model.pt: data.pkl") prefixes every error. */
export function unpickle(input: Uint8Array, hooks: PickleHooks, subject: string): unknown {
  // A plain view: Buffer.slice would share memory where bytes values need copies.
  const bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  const d = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder('utf-8');
  let pos = 0;
  let stack: unknown[] = [];
  const marks: unknown[][] = [];
  const memo = new Map<number, unknown>();

  const bad = (problem: string): never => fail(subject, `${problem} (pickle byte ${pos})`);
  const need = (n: number): number => {
    if (pos + n > bytes.byteLength) bad('pickle data ends early');
    const at = pos;
    pos += n;
    return at;
  };
  const u8 = (): number => bytes[need(1)];
  const u16 = (): number => d.getUint16(need(2), true);
  const i32 = (): number => d.getInt32(need(4), true);
  const u32 = (): number => d.getUint32(need(4), true);
  const u64 = (): number => {
    const v = d.getBigUint64(need(8), true);
    return v > BigInt(bytes.byteLength) ? bad('pickle length field too large') : Number(v);
  };
  const take = (n: number): Uint8Array => {
    if (n < 0) bad('negative pickle length');
    const at = need(n);
    return bytes.subarray(at, at + n);
  };
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) bad('pickle data ends early');
    const s = utf8.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  // A function, not `stack.push(...)`: popMark() inside the argument replaces `stack`.
  const push = (v: unknown): void => {
    stack.push(v);
  };
  const pop = (): unknown => (stack.length ? stack.pop() : bad('pickle stack underflow'));
  const top = (): unknown => (stack.length ? stack[stack.length - 1] : bad('pickle stack underflow'));
  const popMark = (): unknown[] => {
    const items = stack;
    stack = marks.pop() ?? bad('pickle MARK missing');
    return items;
  };
  const callable = (v: unknown): PyGlobal =>
    v instanceof PyGlobal ? v : bad('pickle calls a non-callable value');
  const dictAt = (v: unknown): Map<unknown, unknown> =>
    v instanceof Map ? v : bad('pickle sets items on a non-dict');
  const listAt = (v: unknown): unknown[] =>
    Array.isArray(v) && !Object.isFrozen(v) ? v : bad('pickle appends to a non-list');
  const setItems = (map: Map<unknown, unknown>, kv: unknown[]): void => {
    for (let i = 0; i + 1 < kv.length; i += 2) map.set(kv[i], kv[i + 1]);
  };
  const get = (i: number): unknown => (memo.has(i) ? memo.get(i) : bad(`pickle memo ${i} undefined`));
  const global = (module: string, name: string): void => {
    push(hooks.findGlobal(module, name));
  };

  while (true) {
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) bad('pickle protocol above 5');
        break;
      case 0x95: // FRAME: framing only matters to streaming readers
        u64();
        break;
      case 0x2e: // STOP
        return pop();
      case 0x28: // MARK
        marks.push(stack);
        stack = [];
        break;
      case 0x30: // POP
        if (stack.length) stack.pop();
        else popMark();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        push(top());
        break;
      case 0x4e: // NONE
        push(null);
        break;
      case 0x88: // NEWTRUE
        push(true);
        break;
      case 0x89: // NEWFALSE
        push(false);
        break;
      case 0x4a: // BININT
        push(i32());
        break;
      case 0x4b: // BININT1
        push(u8());
        break;
      case 0x4d: // BININT2
        push(u16());
        break;
      case 0x8a: // LONG1
        push(decodeLong(take(u8())));
        break;
      case 0x8b: // LONG4
        push(decodeLong(take(i32())));
        break;
      case 0x47: // BINFLOAT (big-endian)
        push(d.getFloat64(need(8), false));
        break;
      case 0x58: // BINUNICODE
        push(utf8.decode(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        push(utf8.decode(take(u8())));
        break;
      case 0x8d: // BINUNICODE8
        push(utf8.decode(take(u64())));
        break;
      case 0x54: // BINSTRING: Python 2 str, decoded as torch.load does (utf-8)
        push(utf8.decode(take(i32())));
        break;
      case 0x55: // SHORT_BINSTRING
        push(utf8.decode(take(u8())));
        break;
      case 0x42: // BINBYTES
        push(take(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        push(take(u8()).slice());
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        push(take(u64()).slice());
        break;
      case 0x5d: // EMPTY_LIST
        push([]);
        break;
      case 0x61: {
        // APPEND
        const v = pop();
        listAt(top()).push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        listAt(top()).push(...items);
        break;
      }
      case 0x6c: // LIST
        push(popMark());
        break;
      case 0x29: // EMPTY_TUPLE
        push(tuple([]));
        break;
      case 0x85: // TUPLE1
        push(tuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        push(tuple([pop(), b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        push(tuple([pop(), b, c]));
        break;
      }
      case 0x74: // TUPLE
        push(tuple(popMark()));
        break;
      case 0x7d: // EMPTY_DICT
        push(new Map());
        break;
      case 0x64: {
        // DICT
        const map = new Map();
        setItems(map, popMark());
        push(map);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        dictAt(top()).set(k, v);
        break;
      }
      case 0x75: {
        // SETITEMS
        const kv = popMark();
        setItems(dictAt(top()), kv);
        break;
      }
      case 0x8f: // EMPTY_SET
        push(new Set());
        break;
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const set = top();
        if (!(set instanceof Set)) bad('pickle adds items to a non-set');
        for (const v of items) (set as Set<unknown>).add(v);
        break;
      }
      case 0x91: // FROZENSET
        push(new Set(popMark()));
        break;
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line();
        global(module, line());
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string')
          bad('pickle STACK_GLOBAL needs two strings');
        global(module as string, name as string);
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = callable(pop());
        if (!Array.isArray(args)) bad(`pickle calls ${fn.name} without an argument tuple`);
        push(fn.call(args as unknown[]));
        break;
      }
      case 0x81: {
        // NEWOBJ: cls.__new__(cls, *args)
        const args = pop();
        const cls = callable(pop());
        push(cls.call(args as unknown[]));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = callable(pop());
        if (!(kwargs instanceof Map) || kwargs.size) bad(`pickle passes keyword arguments to ${cls.name}`);
        push(cls.call(args as unknown[]));
        break;
      }
      case 0x62: {
        // BUILD: only attribute state on a dict (OrderedDict._metadata of a state_dict), which is dropped
        pop();
        if (!(top() instanceof Map)) bad('pickle BUILD on an unsupported object');
        break;
      }
      case 0x51: // BINPERSID
        push(hooks.persistentLoad(pop()));
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
        push(get(u8()));
        break;
      case 0x6a: // LONG_BINGET
        push(get(u32()));
        break;
      default:
        pos--;
        bad(`unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')}`);
    }
  }
}

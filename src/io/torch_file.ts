// PyTorch `torch.save` files (.pt, .bin, .ckpt) read as data, never as code. Textual inversion
// embeddings and some weights are shipped this way, and a pickle is a program: unpickling one with
// Python's own loader can run anything. So this file has its own zip reader (every offset checked)
// and a restricted unpickler that knows the opcodes torch writes and a short whitelist of globals,
// each rebuilt here by plain TypeScript. Any other global is refused by name before anything uses
// it. GPU-free, and free of Node APIs, so it runs in browsers too.
//
// The zip format (torch >= 1.6, the default since) holds <archive>/data.pkl (the pickled object),
// <archive>/data/<key> (one raw blob per storage), <archive>/byteorder and <archive>/version.
// The legacy format before it (a bare pickle stream) is detected and refused.
import { TorchFileError } from '../errors.ts';
import type { HostTensor } from './safetensors.ts';
import { fromF16Array } from './f16.ts';

// ---------------------------------------------------------------- values

/** A storage's element type, as torch names it (torch.float32, ...). */
export type TorchDType = 'float64' | 'float32' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

/** A tensor from the file, its values converted to f32 (integers and bools too: see `data`). */
export class TorchTensor {
  constructor(
    /** The dtype in the file. */
    readonly dtype: TorchDType,
    readonly shape: number[],
    /**
     * The values in row-major order, converted to f32: exact for f16/bf16, rounded to nearest for
     * f64 and for integers past 2^24, 0/1 for bools. A fresh array, not a view of the file.
     */
    readonly data: Float32Array,
    readonly requiresGrad: boolean,
    /** Saved as an nn.Parameter (torch._utils._rebuild_parameter). */
    readonly parameter: boolean,
  ) {}
}

/**
 * An instance of one of the few classes the reader rebuilds as data (nn.ParameterDict, which the
 * original textual inversion code saves): the class's Python name and the state BUILD gave it
 * (for a torch module, its `__dict__` as a Map: `_parameters`, `_buffers`, `training`, ...).
 */
export class TorchObject {
  state: PickleValue = null;
  constructor(readonly className: string) {}
}

/**
 * What readTorchFile returns. Python dicts and OrderedDicts are Maps (keys keep their order and
 * type; a plain object would reorder integer-like keys and could be polluted through
 * `__proto__`), lists are arrays, tuples are frozen arrays, sets are Sets, ints are numbers (a
 * bigint past ±2^53), bytes are Uint8Arrays, None is null.
 */
export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | TorchTensor
  | TorchObject
  | readonly PickleValue[]
  | Map<PickleValue, PickleValue>
  | Set<PickleValue>;

/** What the first bytes say a file is (readTorchFile accepts only 'torch-zip'). */
export type TorchFileFormat = 'torch-zip' | 'zip' | 'legacy-torch' | 'pickle' | 'safetensors' | 'unknown';

// ---------------------------------------------------------------- errors and bytes

function fail(code: TorchFileError['code'], where: string, message: string): never {
  throw new TorchFileError(code, `${where}: ${message}`);
}

function u16(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8);
}

function u32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

/** A little-endian u64 as a number; past 2^53 it cannot be an offset into a JS array anyway. */
function u64(b: Uint8Array, at: number, where: string, what: string): number {
  const lo = u32(b, at);
  const hi = u32(b, at + 4);
  if (hi >= 0x200000) fail('zip', where, `${what} (${(BigInt(hi) << 32n) | BigInt(lo)}) is too large`);
  return hi * 2 ** 32 + lo;
}

let crcTable: Uint32Array | null = null;

function crc32(b: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = crcTable[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && u32(bytes, 0) === 0x04034b50;
}

const LEGACY_MAGIC = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/** The format of a file from its first bytes (and, for a zip, whether it holds a torch data.pkl). */
export function detectTorchFormat(bytes: Uint8Array): TorchFileFormat {
  if (isZip(bytes)) {
    try {
      findArchive(readZip(bytes, ''), '');
      return 'torch-zip';
    } catch {
      return 'zip';
    }
  }
  if (LEGACY_MAGIC.every((v, i) => bytes[i] === v)) return 'legacy-torch';
  if (bytes[0] === 0x80 && bytes.length > 1 && bytes[1]! >= 2 && bytes[1]! <= 5) return 'pickle';
  // A pre-1.0 torch.save file is a tar archive; it is legacy too.
  if (bytes.length > 262 && String.fromCharCode(...bytes.subarray(257, 262)) === 'ustar') return 'legacy-torch';
  if (bytes.length >= 9 && bytes[8] === 0x7b && u32(bytes, 4) === 0) return 'safetensors';
  return 'unknown';
}

// ---------------------------------------------------------------- zip

interface ZipEntry {
  name: string;
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  /** Where the entry's data begins (after its local header) and ends. */
  start: number;
  end: number;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

function findEocd(b: Uint8Array, where: string): number {
  // The end record is 22 bytes plus a comment of at most 65535; search back from the end for the
  // last signature whose comment length reaches the end of the file exactly.
  const lowest = Math.max(0, b.length - 22 - 0xffff);
  for (let at = b.length - 22; at >= lowest; at--) {
    if (u32(b, at) === EOCD && at + 22 + u16(b, at + 20) === b.length) return at;
  }
  return fail('zip', where, 'not a complete zip archive (no end of central directory record); the file may be truncated');
}

/** The central directory of a zip archive, with every offset checked against the file. */
function readZip(b: Uint8Array, where: string): Map<string, ZipEntry> {
  if (b.length < 22) fail('zip', where, `too small for a zip archive (${b.length} bytes)`);
  const eocd = findEocd(b, where);
  let count = u16(b, eocd + 10);
  let cdSize = u32(b, eocd + 12);
  let cdOffset = u32(b, eocd + 16);
  if (u16(b, eocd + 4) !== 0 && u16(b, eocd + 4) !== 0xffff) fail('zip', where, 'multi-part zip archives are not supported');
  // torch writes ZIP64 records always; other writers only past 4 GiB or 65535 entries.
  if (eocd >= 20 && u32(b, eocd - 20) === ZIP64_LOCATOR) {
    const at = u64(b, eocd - 12, where, 'the ZIP64 end record offset');
    if (at + 56 > eocd || u32(b, at) !== ZIP64_EOCD) fail('zip', where, `the ZIP64 end record (at ${at}) is missing or out of range`);
    count = u64(b, at + 32, where, 'the entry count');
    cdSize = u64(b, at + 40, where, 'the central directory size');
    cdOffset = u64(b, at + 48, where, 'the central directory offset');
  } else if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    fail('zip', where, 'the zip archive needs ZIP64 records but has none');
  }
  if (cdOffset + cdSize > eocd) fail('zip', where, `the central directory (${cdSize} bytes at ${cdOffset}) runs past its end record (at ${eocd})`);

  const entries = new Map<string, ZipEntry>();
  const names = new TextDecoder('utf-8');
  let at = cdOffset;
  for (let i = 0; i < count; i++) {
    if (at + 46 > cdOffset + cdSize || u32(b, at) !== CENTRAL) fail('zip', where, `central directory entry ${i} (at ${at}) is malformed`);
    const flags = u16(b, at + 8);
    const method = u16(b, at + 10);
    const crc = u32(b, at + 16);
    let compressedSize = u32(b, at + 20);
    let size = u32(b, at + 24);
    const nameLen = u16(b, at + 28);
    const extraLen = u16(b, at + 30);
    const commentLen = u16(b, at + 32);
    let local = u32(b, at + 42);
    const next = at + 46 + nameLen + extraLen + commentLen;
    if (next > cdOffset + cdSize) fail('zip', where, `central directory entry ${i} runs past the directory`);
    const nameBytes = b.subarray(at + 46, at + 46 + nameLen);
    const name = names.decode(nameBytes);
    // ZIP64 extra field (id 1): 8-byte values for those fields that hold 0xffffffff, in this order.
    const extra = b.subarray(at + 46 + nameLen, at + 46 + nameLen + extraLen);
    for (let e = 0; e + 4 <= extra.length; ) {
      const id = u16(extra, e);
      const len = u16(extra, e + 2);
      if (e + 4 + len > extra.length) fail('zip', where, `entry '${name}': malformed extra field`);
      if (id === 1) {
        let p = e + 4;
        const take = (what: string): number => {
          if (p + 8 > e + 4 + len) fail('zip', where, `entry '${name}': the ZIP64 field lacks the ${what}`);
          const v = u64(extra, p, where, `entry '${name}': the ${what}`);
          p += 8;
          return v;
        };
        if (size === 0xffffffff) size = take('size');
        if (compressedSize === 0xffffffff) compressedSize = take('compressed size');
        if (local === 0xffffffff) local = take('local header offset');
      }
      e += 4 + len;
    }
    if (flags & 1) fail('zip', where, `entry '${name}' is encrypted`);
    if (local + 30 > cdOffset || u32(b, local) !== LOCAL) fail('zip', where, `entry '${name}': no local header at ${local}`);
    const localNameLen = u16(b, local + 26);
    const start = local + 30 + localNameLen + u16(b, local + 28);
    const localName = b.subarray(local + 30, local + 30 + localNameLen);
    if (localNameLen !== nameLen || localName.some((v, k) => v !== nameBytes[k])) fail('zip', where, `entry '${name}': its local header names another file`);
    const end = start + compressedSize;
    if (end > cdOffset) fail('zip', where, `entry '${name}' (${compressedSize} bytes at ${start}) runs past the file's data`);
    if (method === 0 && compressedSize !== size) fail('zip', where, `entry '${name}' is stored with ${compressedSize} bytes but says it holds ${size}`);
    if (entries.has(name)) fail('zip', where, `entry '${name}' appears twice`);
    entries.set(name, { name, method, crc, compressedSize, size, start, end });
    at = next;
  }
  return entries;
}

/** The archive folder: the one `<folder>/data.pkl` (torch names it 'archive', or the saved file's stem). */
function findArchive(entries: Map<string, ZipEntry>, where: string): string {
  const found = [...entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (found.length === 0) {
    return fail('not-torch', where, 'a zip archive without <folder>/data.pkl: not a torch.save file (a TorchScript or other archive?)');
  }
  if (found.length > 1) return fail('zip', where, `several pickles (${found.join(', ')}); a torch.save archive has one`);
  return found[0]!.slice(0, -'data.pkl'.length);
}

/** Inflates the deflated entries among `names` with the runtime's DecompressionStream. */
async function inflateEntries(bytes: Uint8Array, entries: Map<string, ZipEntry>, where: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const e of entries.values()) {
    if (e.method !== 8) continue;
    if (typeof DecompressionStream === 'undefined') {
      fail('compressed', where, `entry '${e.name}' is deflated and this runtime has no DecompressionStream; re-save the file with torch.save (which stores entries uncompressed)`);
    }
    const data = new Uint8Array(e.size);
    let filled = 0;
    try {
      const stream = new Blob([bytes.slice(e.start, e.end)]).stream().pipeThrough(new DecompressionStream('deflate-raw'));
      const reader = stream.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        // A deflate stream that inflates past its stated size is corrupt or a bomb: stop at once.
        if (filled + value.length > e.size) {
          await reader.cancel();
          fail('zip', where, `entry '${e.name}' inflates past its stated ${e.size} bytes`);
        }
        data.set(value, filled);
        filled += value.length;
      }
    } catch (err) {
      if (err instanceof TorchFileError) throw err;
      fail('zip', where, `entry '${e.name}' could not be inflated: ${(err as Error).message}`);
    }
    if (filled !== e.size) fail('zip', where, `entry '${e.name}' inflates to ${filled} bytes, not its stated ${e.size}`);
    out.set(e.name, data);
  }
  return out;
}

class Archive {
  constructor(
    private readonly bytes: Uint8Array,
    private readonly entries: Map<string, ZipEntry>,
    private readonly inflated: Map<string, Uint8Array>,
    readonly prefix: string,
    readonly where: string,
  ) {}

  has(name: string): boolean {
    return this.entries.has(this.prefix + name);
  }

  /** An entry's bytes (a view for stored entries), its CRC checked. */
  read(name: string): Uint8Array {
    const full = this.prefix + name;
    const e = this.entries.get(full);
    if (!e) return fail('zip', this.where, `the archive has no '${full}'`);
    let data: Uint8Array;
    if (e.method === 0) data = this.bytes.subarray(e.start, e.end);
    else if (e.method === 8) {
      const d = this.inflated.get(full);
      if (!d) return fail('compressed', this.where, `entry '${full}' is deflated; read the file with readTorchFileAsync, or re-save it with torch.save (which stores entries uncompressed)`);
      data = d;
    } else return fail('compressed', this.where, `entry '${full}' uses zip compression method ${e.method}; only stored and deflated entries are supported`);
    if (crc32(data) !== e.crc) fail('zip', this.where, `entry '${full}' fails its CRC check: the file is corrupt`);
    return data;
  }
}

function openArchive(bytes: Uint8Array, where: string): { entries: Map<string, ZipEntry>; prefix: string } {
  if (isZip(bytes)) {
    const entries = readZip(bytes, where);
    return { entries, prefix: findArchive(entries, where) };
  }
  const format = detectTorchFormat(bytes);
  if (format === 'legacy-torch') {
    fail('legacy', where, 'legacy torch.save format (before PyTorch 1.6), which Fresco does not read; re-save it with a current torch.save or convert it to .safetensors');
  }
  if (format === 'pickle') fail('not-torch', where, 'a bare pickle stream, not a torch.save zip archive; convert it to .safetensors');
  if (format === 'safetensors') fail('not-torch', where, 'this is a .safetensors file, not a torch.save file; read it as safetensors');
  return fail('not-torch', where, 'not a torch.save file (it is neither a zip archive nor a legacy torch pickle)');
}

// ---------------------------------------------------------------- tensors

interface StorageType {
  dtype: TorchDType;
  size: number;
}

const STORAGES: Record<string, StorageType> = {
  FloatStorage: { dtype: 'float32', size: 4 },
  HalfStorage: { dtype: 'float16', size: 2 },
  BFloat16Storage: { dtype: 'bfloat16', size: 2 },
  DoubleStorage: { dtype: 'float64', size: 8 },
  LongStorage: { dtype: 'int64', size: 8 },
  IntStorage: { dtype: 'int32', size: 4 },
  ShortStorage: { dtype: 'int16', size: 2 },
  CharStorage: { dtype: 'int8', size: 1 },
  ByteStorage: { dtype: 'uint8', size: 1 },
  BoolStorage: { dtype: 'bool', size: 1 },
};

/** A storage blob: `numel` elements of `type` from `<archive>/data/<key>`. */
class Storage {
  constructor(
    readonly key: string,
    readonly type: StorageType,
    readonly numel: number,
    readonly bytes: Uint8Array,
  ) {}
}

const HOST_LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** `count` elements of the storage from element `offset`, as f32 (bytes swapped when the file's order is not the host's). */
function convert(s: Storage, offset: number, count: number, swap: boolean): Float32Array {
  const n = s.type.size;
  const raw = s.bytes.slice(offset * n, (offset + count) * n); // a copy, aligned for typed views
  if (swap && n > 1) {
    for (let i = 0; i < raw.length; i += n) raw.subarray(i, i + n).reverse();
  }
  const buf = raw.buffer;
  switch (s.type.dtype) {
    case 'float32':
      return new Float32Array(buf);
    case 'float64':
      return Float32Array.from(new Float64Array(buf));
    case 'float16':
      return fromF16Array(new Uint16Array(buf));
    case 'bfloat16': {
      // bf16 is the top half of an f32.
      const src = new Uint16Array(buf);
      const out = new Float32Array(count);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) bits[i] = src[i]! << 16;
      return out;
    }
    case 'int64': {
      const src = new BigInt64Array(buf);
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = Number(src[i]!);
      return out;
    }
    case 'int32':
      return Float32Array.from(new Int32Array(buf));
    case 'int16':
      return Float32Array.from(new Int16Array(buf));
    case 'int8':
      return Float32Array.from(new Int8Array(buf));
    case 'uint8':
      return Float32Array.from(raw);
    case 'bool':
      return Float32Array.from(raw, (v) => (v !== 0 ? 1 : 0));
  }
}

// ---------------------------------------------------------------- the restricted unpickler

/** A whitelisted global: what GLOBAL / STACK_GLOBAL push. Only REDUCE / NEWOBJ can use one. */
class Global {
  constructor(readonly qualname: string) {}
}

// Functions that REDUCE may call (each rebuilt below in TypeScript), storage types for persistent
// ids, and classes NEWOBJ may instantiate as data. Python 2 module names (__builtin__) are what
// protocol 2 writes for builtins.
const FUNCTIONS = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
  'torch._tensor._rebuild_from_type_v2',
  '__builtin__.set',
  'builtins.set',
  '__builtin__.frozenset',
  'builtins.frozenset',
  // Protocol 2 has no bytes opcode: Python 3 writes bytes as _codecs.encode(text, 'latin1'), and
  // b'' as bytes().
  '_codecs.encode',
  '__builtin__.bytes',
  'builtins.bytes',
]);
const CLASSES = new Set(['torch.nn.modules.container.ParameterDict']);
// Types _rebuild_from_type_v2 may name: it rebuilds the tensor, then casts it to this type.
const TENSOR_TYPES = new Set(['torch.Tensor', 'torch._tensor.Tensor', 'torch.nn.parameter.Parameter']);

function allowedGlobal(qualname: string): boolean {
  if (FUNCTIONS.has(qualname) || CLASSES.has(qualname) || TENSOR_TYPES.has(qualname)) return true;
  return qualname.startsWith('torch.') && Object.prototype.hasOwnProperty.call(STORAGES, qualname.slice(6));
}

const ALLOWED_TEXT = 'collections.OrderedDict, torch._utils._rebuild_tensor(_v2) / _rebuild_parameter(_with_state), torch.<Float|Half|BFloat16|Double|Long|Int|Short|Char|Byte|Bool>Storage, nn.ParameterDict, set, bytes';

type StackItem = PickleValue | Global | Storage;

function describe(v: StackItem): string {
  if (v === null) return 'None';
  if (v instanceof Global) return v.qualname;
  if (v instanceof Storage) return 'a storage';
  if (v instanceof TorchTensor) return 'a tensor';
  if (v instanceof TorchObject) return v.className;
  if (v instanceof Map) return 'a dict';
  if (v instanceof Set) return 'a set';
  if (v instanceof Uint8Array) return 'bytes';
  if (Array.isArray(v)) return Object.isFrozen(v) ? 'a tuple' : 'a list';
  return typeof v;
}

class Unpickler {
  private pos = 0;
  private stack: StackItem[] = [];
  private marks: number[] = [];
  private memo = new Map<number, StackItem>();
  private storages = new Map<string, Storage>();
  // Tuples that hold a global or a storage (a persistent id, REDUCE's arguments): they may sit on
  // the stack, but never inside the data that comes back.
  private readonly notData = new WeakSet<object>();
  private readonly utf8 = new TextDecoder('utf-8', { fatal: true });
  private readonly swap: boolean;
  private readonly where: string;

  constructor(
    private readonly pkl: Uint8Array,
    private readonly archive: Archive,
  ) {
    this.where = `${archive.where} (${archive.prefix}data.pkl)`;
    let little = true;
    if (archive.has('byteorder')) {
      const order = new TextDecoder().decode(archive.read('byteorder')).trim();
      if (order !== 'little' && order !== 'big') this.fail('tensor', `byteorder says '${order}'; expected 'little' or 'big'`);
      little = order === 'little';
    }
    // Files without a byteorder entry predate it and are little-endian (what torch.load assumes).
    this.swap = little !== HOST_LITTLE;
  }

  private fail(code: TorchFileError['code'], message: string): never {
    return fail(code, this.where, message);
  }

  private need(n: number, what: string): number {
    const at = this.pos;
    if (n > this.pkl.length - at) this.fail('pickle', `truncated pickle: ${what} at byte ${at - 1} needs ${n} bytes`);
    this.pos += n;
    return at;
  }

  private byte(): number {
    return this.pkl[this.need(1, 'an argument')]!;
  }

  private u16(): number {
    return u16(this.pkl, this.need(2, 'an argument'));
  }

  private u32(): number {
    return u32(this.pkl, this.need(4, 'an argument'));
  }

  private u64(): number {
    const at = this.need(8, 'an argument');
    return u64(this.pkl, at, this.where, 'a pickle length');
  }

  private bytesOf(n: number, what: string): Uint8Array {
    const at = this.need(n, what);
    return this.pkl.subarray(at, at + n);
  }

  private text(n: number): string {
    try {
      return this.utf8.decode(this.bytesOf(n, 'a string'));
    } catch (e) {
      if (e instanceof TorchFileError) throw e;
      return this.fail('pickle', `a string at byte ${this.pos - n} is not valid UTF-8`);
    }
  }

  private line(): string {
    const end = this.pkl.indexOf(0x0a, this.pos);
    if (end < 0) this.fail('pickle', `truncated pickle: no end of line after byte ${this.pos}`);
    const s = new TextDecoder('latin1').decode(this.pkl.subarray(this.pos, end));
    this.pos = end + 1;
    return s;
  }

  private pop(): StackItem {
    const base = this.marks.length ? this.marks[this.marks.length - 1]! : 0;
    if (this.stack.length <= base) this.fail('pickle', `stack underflow at byte ${this.pos - 1}`);
    return this.stack.pop()!;
  }

  private top(): StackItem {
    const base = this.marks.length ? this.marks[this.marks.length - 1]! : 0;
    if (this.stack.length <= base) this.fail('pickle', `stack underflow at byte ${this.pos - 1}`);
    return this.stack[this.stack.length - 1]!;
  }

  private popMark(): StackItem[] {
    if (!this.marks.length) this.fail('pickle', `no mark to pop at byte ${this.pos - 1}`);
    return this.stack.splice(this.marks.pop()!);
  }

  /** A value that may be stored in a container or returned: not a bare global or storage. */
  private value(v: StackItem, what: string): PickleValue {
    if (v instanceof Global || v instanceof Storage || (Array.isArray(v) && this.notData.has(v))) {
      this.fail('pickle', `${what} is ${describe(v)}${v instanceof Global || v instanceof Storage ? '' : ' holding a global or storage'}, which is not data`);
    }
    return v as PickleValue;
  }

  private tuple(items: StackItem[]): PickleValue {
    if (items.some((v) => v instanceof Global || v instanceof Storage || (Array.isArray(v) && this.notData.has(v)))) this.notData.add(items);
    return Object.freeze(items) as unknown as PickleValue;
  }

  private global(module: string, name: string): Global {
    const qualname = `${module}.${name}`;
    if (!allowedGlobal(qualname)) {
      this.fail(
        'global',
        `the pickle asks for the Python global '${qualname}', which Fresco refuses (nothing was run): a torch file of ` +
          `weights needs only ${ALLOWED_TEXT}. A file that needs anything else may carry code; convert it to .safetensors from a trusted source`,
      );
    }
    return new Global(qualname);
  }

  private int(v: StackItem, what: string, min = 0): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) this.fail('tensor', `${what} is ${typeof v === 'number' ? v : describe(v)}; expected an integer >= ${min}`);
    return v;
  }

  private ints(v: StackItem, what: string): number[] {
    if (!Array.isArray(v)) return this.fail('tensor', `${what} is ${describe(v)}; expected a tuple of integers`);
    return v.map((x, i) => this.int(x, `${what}[${i}]`));
  }

  private persistentLoad(pid: StackItem): Storage {
    if (!Array.isArray(pid) || pid.length !== 5 || pid[0] !== 'storage') {
      return this.fail('tensor', `a persistent id is ${describe(pid)}; expected ('storage', type, key, location, numel)`);
    }
    const [, type, key, , numel] = pid as StackItem[];
    if (!(type instanceof Global) || !type.qualname.startsWith('torch.') || !Object.prototype.hasOwnProperty.call(STORAGES, type.qualname.slice(6))) {
      return this.fail('tensor', `a storage's type is ${describe(type!)}; expected a torch.<Type>Storage`);
    }
    if (typeof key !== 'string') return this.fail('tensor', `a storage key is ${describe(key!)}; expected a string`);
    const st = STORAGES[type.qualname.slice(6)]!;
    const n = this.int(numel!, `storage '${key}''s element count`);
    const known = this.storages.get(key);
    if (known) {
      if (known.type !== st || known.numel !== n) this.fail('tensor', `storage '${key}' is referred to as two different storages`);
      return known;
    }
    const bytes = this.archive.read(`data/${key}`);
    if (bytes.length < n * st.size) this.fail('tensor', `storage '${key}' holds ${bytes.length} bytes, too few for ${n} ${st.dtype} elements`);
    const s = new Storage(key, st, n, bytes);
    this.storages.set(key, s);
    return s;
  }

  private rebuildTensor(args: readonly StackItem[], requiresGrad: boolean): TorchTensor {
    const [storage, offsetV, sizeV, strideV] = args;
    if (!(storage instanceof Storage)) return this.fail('tensor', `a tensor's storage is ${describe(storage ?? null)}`);
    const offset = this.int(offsetV ?? null, 'a storage offset');
    const shape = this.ints(sizeV ?? null, 'a tensor size');
    const stride = this.ints(strideV ?? null, 'a tensor stride');
    if (stride.length !== shape.length) this.fail('tensor', `a tensor has size [${shape.join(', ')}] but stride [${stride.join(', ')}]`);
    let numel = 1;
    for (const d of shape) {
      numel *= d;
      if (!Number.isSafeInteger(numel)) this.fail('tensor', `a tensor of size [${shape.join(', ')}] is too large`);
    }
    if (numel > 0) {
      // Contiguous: the row-major strides, except that a size-1 dimension's stride never matters.
      let want = 1;
      for (let i = shape.length - 1; i >= 0; i--) {
        if (shape[i] !== 1 && stride[i] !== want) {
          this.fail('tensor', `tensor of size [${shape.join(', ')}] in storage '${storage.key}' has stride [${stride.join(', ')}]: only contiguous tensors are supported (save tensor.contiguous() instead)`);
        }
        want *= shape[i]!;
      }
      if (offset + numel > storage.numel) {
        this.fail('tensor', `tensor of size [${shape.join(', ')}] at offset ${offset} runs past storage '${storage.key}' (${storage.numel} elements)`);
      }
    }
    const data = numel > 0 ? convert(storage, offset, numel, this.swap) : new Float32Array(0);
    return new TorchTensor(storage.type.dtype, shape, data, requiresGrad, false);
  }

  private emptyHooks(v: StackItem | undefined, what: string): void {
    if (v === undefined || v === null) return;
    if (!(v instanceof Map) || v.size !== 0) this.fail('tensor', `${what} is ${describe(v)} with entries; expected none`);
  }

  private bool(v: StackItem | undefined, what: string): boolean {
    if (typeof v !== 'boolean') this.fail('tensor', `${what} is ${describe(v ?? null)}; expected True or False`);
    return v;
  }

  private call(fn: StackItem, argsV: StackItem): StackItem {
    if (!(fn instanceof Global)) return this.fail('pickle', `REDUCE calls ${describe(fn)}, which is not a function`);
    if (!Array.isArray(argsV)) return this.fail('pickle', `REDUCE of ${fn.qualname} has arguments ${describe(argsV)}, not a tuple`);
    const args = argsV as StackItem[];
    const q = fn.qualname;
    switch (q) {
      case 'collections.OrderedDict': {
        const m = new Map<PickleValue, PickleValue>();
        if (args.length === 1 && Array.isArray(args[0])) {
          for (const pair of args[0] as StackItem[]) {
            if (!Array.isArray(pair) || pair.length !== 2) this.fail('pickle', 'OrderedDict() of something other than pairs');
            m.set(this.value(pair[0]!, 'a dict key'), this.value(pair[1]!, 'a dict value'));
          }
        } else if (args.length !== 0) this.fail('pickle', `OrderedDict() with ${args.length} arguments`);
        return m;
      }
      case '__builtin__.set':
      case 'builtins.set':
      case '__builtin__.frozenset':
      case 'builtins.frozenset': {
        if (args.length > 1 || (args.length === 1 && !Array.isArray(args[0]))) this.fail('pickle', `${q}() of ${args.map(describe).join(', ')}`);
        return new Set(((args[0] as StackItem[] | undefined) ?? []).map((v) => this.value(v, 'a set item')));
      }
      case '_codecs.encode': {
        const [text, encoding] = args;
        if (args.length !== 2 || typeof text !== 'string' || encoding !== 'latin1') this.fail('pickle', `_codecs.encode of ${args.map(describe).join(', ')}; expected a string and 'latin1'`);
        const out = new Uint8Array(text.length);
        for (let i = 0; i < text.length; i++) {
          const c = text.charCodeAt(i);
          if (c > 0xff) this.fail('pickle', `_codecs.encode(…, 'latin1') of a character past U+00FF`);
          out[i] = c;
        }
        return out;
      }
      case '__builtin__.bytes':
      case 'builtins.bytes':
        if (args.length !== 0) this.fail('pickle', `${q}() with arguments`);
        return new Uint8Array(0);
      case 'torch._utils._rebuild_tensor':
        if (args.length !== 4) this.fail('tensor', `_rebuild_tensor with ${args.length} arguments; expected 4`);
        return this.rebuildTensor(args, false);
      case 'torch._utils._rebuild_tensor_v2': {
        // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        if (args.length !== 6 && args.length !== 7) this.fail('tensor', `_rebuild_tensor_v2 with ${args.length} arguments; expected 6 or 7`);
        const requiresGrad = this.bool(args[4], 'requires_grad');
        this.emptyHooks(args[5], 'a tensor\'s backward hooks');
        // Metadata holds flags such as a negative or conjugate view, which change the values.
        this.emptyHooks(args[6], 'a tensor\'s metadata');
        return this.rebuildTensor(args, requiresGrad);
      }
      case 'torch._utils._rebuild_parameter':
      case 'torch._utils._rebuild_parameter_with_state': {
        // (data, requires_grad, backward_hooks[, state]); the state is Python attributes, not values.
        const [data, rg, hooks] = args;
        if (args.length !== (q.endsWith('_with_state') ? 4 : 3)) this.fail('tensor', `${q} with ${args.length} arguments`);
        if (!(data instanceof TorchTensor)) return this.fail('tensor', `a parameter's data is ${describe(data ?? null)}, not a tensor`);
        this.emptyHooks(hooks, 'a parameter\'s backward hooks');
        return new TorchTensor(data.dtype, data.shape, data.data, this.bool(rg, 'requires_grad'), true);
      }
      case 'torch._tensor._rebuild_from_type_v2': {
        // (func, type, args, state): a tensor with Python attributes; rebuilt by func, which must
        // itself be on the whitelist, as a plain tensor or a parameter. The attributes are dropped.
        const [inner, type, innerArgs] = args;
        if (args.length !== 4) this.fail('tensor', `_rebuild_from_type_v2 with ${args.length} arguments`);
        if (!(inner instanceof Global) || inner.qualname === q || !inner.qualname.startsWith('torch._utils._rebuild_')) {
          return this.fail('tensor', `_rebuild_from_type_v2 with the function ${describe(inner ?? null)}`);
        }
        if (!(type instanceof Global) || !TENSOR_TYPES.has(type.qualname)) return this.fail('tensor', `_rebuild_from_type_v2 to ${describe(type ?? null)}; only torch.Tensor and nn.Parameter`);
        const t = this.call(inner!, innerArgs!);
        if (!(t instanceof TorchTensor)) return this.fail('tensor', `_rebuild_from_type_v2's function gave ${describe(t)}`);
        return type.qualname === 'torch.nn.parameter.Parameter' ? new TorchTensor(t.dtype, t.shape, t.data, t.requiresGrad, true) : t;
      }
      default:
        return this.fail('pickle', `REDUCE cannot call ${q}`);
    }
  }

  private setItems(target: StackItem, items: StackItem[]): void {
    if (!(target instanceof Map)) this.fail('pickle', `SETITEM(S) on ${describe(target)}, not a dict`);
    if (items.length % 2) this.fail('pickle', 'SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) {
      const k = this.value(items[i]!, 'a dict key');
      if (k instanceof Map || k instanceof Set || (Array.isArray(k) && !Object.isFrozen(k))) this.fail('pickle', `a dict key is ${describe(k)}, which Python cannot hash`);
      target.set(k, this.value(items[i + 1]!, 'a dict value'));
    }
  }

  private append(target: StackItem, items: StackItem[]): void {
    if (!Array.isArray(target) || Object.isFrozen(target)) this.fail('pickle', `APPEND(S) on ${describe(target)}, not a list`);
    for (const v of items) (target as PickleValue[]).push(this.value(v, 'a list item'));
  }

  run(): PickleValue {
    const p = this.pkl;
    for (;;) {
      if (this.pos >= p.length) this.fail('pickle', 'truncated pickle: no STOP opcode');
      const at = this.pos;
      const op = p[this.pos++]!;
      switch (op) {
        case 0x80: {
          // PROTO
          const v = this.byte();
          if (v > 5) this.fail('pickle', `pickle protocol ${v} is not supported`);
          break;
        }
        case 0x95: // FRAME: a length hint only
          this.need(8, 'FRAME');
          break;
        case 0x2e: {
          // STOP
          const v = this.pop();
          if (this.stack.length || this.marks.length) this.fail('pickle', 'STOP with values left on the stack');
          return this.value(v, 'the pickled object');
        }
        case 0x28: // MARK
          this.marks.push(this.stack.length);
          break;
        case 0x30: // POP
          if (this.marks.length && this.stack.length === this.marks[this.marks.length - 1]) this.popMark();
          else this.pop();
          break;
        case 0x31: // POP_MARK
          this.popMark();
          break;
        case 0x32: // DUP
          this.stack.push(this.top());
          break;
        case 0x4e: // NONE
          this.stack.push(null);
          break;
        case 0x88: // NEWTRUE
          this.stack.push(true);
          break;
        case 0x89: // NEWFALSE
          this.stack.push(false);
          break;
        case 0x4a: {
          // BININT (signed i32)
          const v = this.u32();
          this.stack.push(v | 0);
          break;
        }
        case 0x4b: // BININT1
          this.stack.push(this.byte());
          break;
        case 0x4d: // BININT2
          this.stack.push(this.u16());
          break;
        case 0x8a: // LONG1
        case 0x8b: {
          // LONG4: little-endian two's complement of n bytes
          const n = op === 0x8a ? this.byte() : this.u32();
          // Building a bigint byte by byte is quadratic; no tensor file needs an integer this long.
          if (n > 1024) this.fail('pickle', `a ${n}-byte integer at byte ${at}; Fresco reads integers of up to 1024 bytes`);
          const b = this.bytesOf(n, 'LONG');
          let v = 0n;
          for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
          if (n > 0 && b[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
          this.stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
          break;
        }
        case 0x47: {
          // BINFLOAT: big-endian f64
          const b = this.bytesOf(8, 'BINFLOAT');
          this.stack.push(new DataView(b.buffer, b.byteOffset, 8).getFloat64(0, false));
          break;
        }
        case 0x58: // BINUNICODE
          this.stack.push(this.text(this.u32()));
          break;
        case 0x8c: // SHORT_BINUNICODE
          this.stack.push(this.text(this.byte()));
          break;
        case 0x8d: // BINUNICODE8
          this.stack.push(this.text(this.u64()));
          break;
        case 0x54: // BINSTRING (Python 2 str, read as latin-1)
        case 0x55: {
          // SHORT_BINSTRING
          const n = op === 0x54 ? this.u32() : this.byte();
          this.stack.push(new TextDecoder('latin1').decode(this.bytesOf(n, 'a string')));
          break;
        }
        case 0x42: // BINBYTES
          this.stack.push(this.bytesOf(this.u32(), 'bytes').slice());
          break;
        case 0x43: // SHORT_BINBYTES
          this.stack.push(this.bytesOf(this.byte(), 'bytes').slice());
          break;
        case 0x8e: // BINBYTES8
          this.stack.push(this.bytesOf(this.u64(), 'bytes').slice());
          break;
        case 0x7d: // EMPTY_DICT
          this.stack.push(new Map());
          break;
        case 0x64: {
          // DICT
          const m = new Map<PickleValue, PickleValue>();
          this.setItems(m, this.popMark());
          this.stack.push(m);
          break;
        }
        case 0x5d: // EMPTY_LIST
          this.stack.push([]);
          break;
        case 0x6c: {
          // LIST
          const items = this.popMark();
          this.stack.push(items.map((v) => this.value(v, 'a list item')));
          break;
        }
        case 0x29: // EMPTY_TUPLE
          this.stack.push(Object.freeze([]));
          break;
        case 0x74: // TUPLE
          this.stack.push(this.tuple(this.popMark()));
          break;
        case 0x85: // TUPLE1
        case 0x86: // TUPLE2
        case 0x87: {
          // TUPLE3
          const n = op - 0x84;
          const items: StackItem[] = [];
          for (let i = 0; i < n; i++) items.unshift(this.pop());
          this.stack.push(this.tuple(items));
          break;
        }
        case 0x73: {
          // SETITEM
          const v = this.pop();
          const k = this.pop();
          this.setItems(this.top(), [k, v]);
          break;
        }
        case 0x75: {
          // SETITEMS
          const items = this.popMark();
          this.setItems(this.top(), items);
          break;
        }
        case 0x61: {
          // APPEND
          const v = this.pop();
          this.append(this.top(), [v]);
          break;
        }
        case 0x65: {
          // APPENDS
          const items = this.popMark();
          this.append(this.top(), items);
          break;
        }
        case 0x8f: // EMPTY_SET
          this.stack.push(new Set());
          break;
        case 0x90: {
          // ADDITEMS
          const items = this.popMark();
          const s = this.top();
          if (!(s instanceof Set)) this.fail('pickle', `ADDITEMS on ${describe(s)}, not a set`);
          for (const v of items) s.add(this.value(v, 'a set item'));
          break;
        }
        case 0x91: // FROZENSET
          this.stack.push(new Set(this.popMark().map((v) => this.value(v, 'a set item'))));
          break;
        case 0x71: // BINPUT
          this.memo.set(this.byte(), this.top());
          break;
        case 0x72: // LONG_BINPUT
          this.memo.set(this.u32(), this.top());
          break;
        case 0x94: // MEMOIZE
          this.memo.set(this.memo.size, this.top());
          break;
        case 0x68: // BINGET
        case 0x6a: {
          // LONG_BINGET
          const k = op === 0x68 ? this.byte() : this.u32();
          if (!this.memo.has(k)) this.fail('pickle', `memo entry ${k} read at byte ${at} was never stored`);
          this.stack.push(this.memo.get(k)!);
          break;
        }
        case 0x63: {
          // GLOBAL: "module\nname\n"
          const module = this.line();
          this.stack.push(this.global(module, this.line()));
          break;
        }
        case 0x93: {
          // STACK_GLOBAL
          const name = this.pop();
          const module = this.pop();
          if (typeof module !== 'string' || typeof name !== 'string') this.fail('pickle', 'STACK_GLOBAL of something other than two strings');
          this.stack.push(this.global(module, name));
          break;
        }
        case 0x52: {
          // REDUCE
          const args = this.pop();
          const fn = this.pop();
          this.stack.push(this.call(fn, args));
          break;
        }
        case 0x81: {
          // NEWOBJ: cls.__new__(cls, *args), for the few classes rebuilt as data
          const args = this.pop();
          const cls = this.pop();
          if (!(cls instanceof Global) || !CLASSES.has(cls.qualname)) this.fail('pickle', `NEWOBJ of ${describe(cls)}, which Fresco does not rebuild`);
          if (!Array.isArray(args) || args.length) this.fail('pickle', `NEWOBJ of ${cls.qualname} with arguments`);
          this.stack.push(new TorchObject(cls.qualname));
          break;
        }
        case 0x62: {
          // BUILD: obj.__setstate__(state), for those objects only (state as data, never a call)
          const state = this.value(this.pop(), 'a BUILD state');
          const obj = this.top();
          if (!(obj instanceof TorchObject)) this.fail('pickle', `BUILD on ${describe(obj)}`);
          obj.state = state;
          break;
        }
        case 0x51: // BINPERSID
          this.stack.push(this.persistentLoad(this.pop()));
          break;
        default: {
          const ch = op >= 0x20 && op < 0x7f ? ` ('${String.fromCharCode(op)}')` : '';
          this.fail('pickle', `pickle opcode 0x${op.toString(16).padStart(2, '0')}${ch} at byte ${at} is not supported by Fresco's restricted reader`);
        }
      }
    }
  }
}

// ---------------------------------------------------------------- entry points

function unpickle(bytes: Uint8Array, entries: Map<string, ZipEntry>, prefix: string, inflated: Map<string, Uint8Array>, where: string): PickleValue {
  const archive = new Archive(bytes, entries, inflated, prefix, where);
  return new Unpickler(archive.read('data.pkl'), archive).run();
}

/**
 * Reads a torch.save file (zip format, PyTorch >= 1.6) as data: dicts are Maps, tensors
 * TorchTensors (see PickleValue). Nothing in the file is executed: only a whitelist of globals is
 * rebuilt, and any other (os.system, eval, a custom class) is a TorchFileError naming it. Refuses
 * the legacy pre-1.6 format, non-contiguous tensors, and deflated entries (for those use
 * readTorchFileAsync). `where` names the file in errors.
 */
export function readTorchFile(bytes: Uint8Array, where: string): PickleValue {
  const { entries, prefix } = openArchive(bytes, where);
  return unpickle(bytes, entries, prefix, new Map(), where);
}

/** readTorchFile, and also for archives whose entries are deflated (zip tools write those; torch.save does not). */
export async function readTorchFileAsync(bytes: Uint8Array, where: string): Promise<PickleValue> {
  const { entries, prefix } = openArchive(bytes, where);
  const inArchive = new Map([...entries].filter(([name]) => name.startsWith(prefix)));
  return unpickle(bytes, entries, prefix, await inflateEntries(bytes, inArchive, where), where);
}

/**
 * Every tensor in a value read by readTorchFile, by its path of dict keys and list indices joined
 * with '.' (as torch names state-dict entries): {'a': {'b': t}} gives 'a.b'. Objects (such as a
 * ParameterDict) are entered through their state: 'string_to_param._parameters.*'.
 */
export function torchTensors(value: PickleValue): Map<string, TorchTensor> {
  const out = new Map<string, TorchTensor>();
  // Iterative, and each container entered once: a pickle can nest deeply and refer to itself.
  const seen = new Set<object>();
  const todo: [PickleValue, string][] = [[value, '']];
  const join = (path: string, k: unknown) => (path ? `${path}.${String(k)}` : String(k));
  while (todo.length) {
    const [v, path] = todo.pop()!;
    if (v instanceof TorchTensor) {
      if (!out.has(path)) out.set(path, v);
      continue;
    }
    if (v === null || typeof v !== 'object' || v instanceof Uint8Array || v instanceof Set || seen.has(v)) continue;
    seen.add(v);
    const children: [PickleValue, string][] = [];
    if (v instanceof TorchObject) children.push([v.state, path]);
    else if (v instanceof Map) for (const [k, x] of v) children.push([x, join(path, k)]);
    else if (Array.isArray(v)) v.forEach((x: PickleValue, i: number) => children.push([x, join(path, i)]));
    todo.push(...children.reverse()); // depth first, in the file's order
  }
  return out;
}

/** A TorchTensor as an F32 HostTensor (what safetensors readers hand on), sharing its data. */
export function torchToHostTensor(t: TorchTensor, name: string): HostTensor {
  return { name, dtype: 'F32', shape: [...t.shape], bytes: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) };
}

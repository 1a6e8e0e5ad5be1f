// torch.save files read as data: the real files against what torch.load itself reads from them
// (tests/fixtures/torch-files/expected.json, written by make_torch_files.py with torch 2.13), and
// hand-built archives and pickles for everything that must be refused.
import { readFileSync } from 'node:fs';
import { deflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  detectTorchFormat,
  readTorchFile,
  readTorchFileAsync,
  torchTensors,
  torchToHostTensor,
  TorchObject,
  TorchTensor,
  type PickleValue,
} from '../../src/io/torch_file.ts';
import { readInversion } from '../../src/io/textual_inversion.ts';
import { parseSafetensors } from '../../src/io/safetensors.ts';
import { FrescoError, TorchFileError, type TorchFileErrorCode } from '../../src/errors.ts';

const FIXTURES = new URL('../fixtures/', import.meta.url);
const TORCH_FILES = new URL('torch-files/', FIXTURES);
const expected = JSON.parse(readFileSync(new URL('expected.json', TORCH_FILES), 'utf8')) as Record<string, unknown>;

function fixture(name: string): Uint8Array {
  return new Uint8Array(readFileSync(new URL(name, TORCH_FILES)));
}

// ---------------------------------------------------------------- the JSON form of a value

/** readTorchFile's value in make_torch_files.py's JSON form (enc there). */
function enc(v: PickleValue): unknown {
  if (v instanceof TorchTensor) {
    return { tensor: { dtype: v.dtype, shape: v.shape, requires_grad: v.requiresGrad, parameter: v.parameter, values: [...v.data] } };
  }
  if (v instanceof TorchObject) return { object: v.className, state: enc(v.state) };
  if (v instanceof Map) return { dict: [...v].map(([k, x]) => [enc(k), enc(x)]) };
  if (v instanceof Set) return { set: [...v].sort().map(enc) };
  if (v instanceof Uint8Array) return { bytes: [...v] };
  if (Array.isArray(v)) return Object.isFrozen(v) ? { tuple: v.map(enc) } : { list: v.map(enc) };
  if (typeof v === 'bigint') return { bigint: String(v) };
  return v;
}

/** Python's JSON side made comparable: non-finite values were written as strings, and floats as {float: x}. */
function fromPython(v: unknown): unknown {
  if (v === 'nan') return NaN;
  if (v === 'inf') return Infinity;
  if (v === '-inf') return -Infinity;
  if (Array.isArray(v)) return v.map(fromPython);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if ('float' in o && Object.keys(o).length === 1) return fromPython(o.float);
    if ('tensor' in o) {
      const t = o.tensor as Record<string, unknown>;
      return { tensor: { ...t, values: (t.values as unknown[]).map(fromPython) } };
    }
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, fromPython(x)]));
  }
  return v;
}

function expectTorchLoad(name: string, value: PickleValue): void {
  expect(expected[name], `${name} in expected.json`).toBeDefined();
  // toEqual compares numbers with Object.is: -0 is not 0, and NaN equals NaN.
  expect(enc(value)).toEqual(fromPython(expected[name]));
}

// ---------------------------------------------------------------- hand-built archives

let table: Uint32Array | null = null;
function crc32(b: Uint8Array): number {
  if (!table) {
    table = new Uint32Array(256).map((_, n) => {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      return c >>> 0;
    });
  }
  let c = ~0;
  for (const x of b) c = table[(c ^ x) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

interface Entry {
  name: string;
  data: Uint8Array;
  /** 8: deflate the data here. */
  method?: number;
  /** Overrides of what the headers say. */
  size?: number;
  crc?: number;
  flags?: number;
}

class Bytes {
  private out: number[] = [];
  u8(...v: number[]): this {
    this.out.push(...v);
    return this;
  }
  u16(v: number): this {
    return this.u8(v & 0xff, (v >>> 8) & 0xff);
  }
  u32(v: number): this {
    return this.u16(v & 0xffff).u16(v >>> 16);
  }
  u64(v: number): this {
    return this.u32(v % 2 ** 32).u32(Math.floor(v / 2 ** 32));
  }
  bytes(b: ArrayLike<number>): this {
    for (let i = 0; i < b.length; i++) this.out.push(b[i]!);
    return this;
  }
  get length(): number {
    return this.out.length;
  }
  build(): Uint8Array {
    return Uint8Array.from(this.out);
  }
}

const enc8 = (s: string) => new TextEncoder().encode(s);

/** A zip archive as Python's zipfile writes it (no ZIP64 end records); `zip64Extra` puts the sizes and offsets in ZIP64 extra fields. */
function makeZip(entries: Entry[], opts: { zip64Extra?: boolean } = {}): Uint8Array {
  const b = new Bytes();
  const central = new Bytes();
  for (const e of entries) {
    const stored = e.method === 8 ? new Uint8Array(deflateRawSync(e.data)) : e.data;
    const name = enc8(e.name);
    const crc = e.crc ?? crc32(e.data);
    const size = e.size ?? e.data.length;
    const offset = b.length;
    b.u32(0x04034b50).u16(20).u16(e.flags ?? 0).u16(e.method ?? 0).u16(0).u16(0x21).u32(crc).u32(stored.length).u32(size).u16(name.length).u16(0).bytes(name).bytes(stored);
    const big = opts.zip64Extra;
    central.u32(0x02014b50).u16(45).u16(45).u16(e.flags ?? 0).u16(e.method ?? 0).u16(0).u16(0x21).u32(crc);
    central.u32(big ? 0xffffffff : stored.length).u32(big ? 0xffffffff : size).u16(name.length).u16(big ? 28 : 0).u16(0).u16(0).u16(0).u32(0);
    central.u32(big ? 0xffffffff : offset).bytes(name);
    if (big) central.u16(1).u16(24).u64(size).u64(stored.length).u64(offset);
  }
  const cd = central.build();
  const cdOffset = b.length;
  b.bytes(cd);
  b.u32(0x06054b50).u16(0).u16(0).u16(entries.length).u16(entries.length).u32(cd.length).u32(cdOffset).u16(0);
  return b.build();
}

/** A torch archive around a pickle and storage blobs. */
function torchZip(pkl: Uint8Array, blobs: Record<string, Uint8Array> = {}, opts: { prefix?: string; byteorder?: string; method?: number } = {}): Uint8Array {
  const p = opts.prefix ?? 'archive';
  const entries: Entry[] = [{ name: `${p}/data.pkl`, data: pkl, method: opts.method }];
  if (opts.byteorder !== undefined) entries.push({ name: `${p}/byteorder`, data: enc8(opts.byteorder) });
  for (const [k, v] of Object.entries(blobs)) entries.push({ name: `${p}/data/${k}`, data: v, method: opts.method });
  entries.push({ name: `${p}/version`, data: enc8('3\n') });
  return makeZip(entries);
}

// Pickle opcodes, written out by hand.
const op = {
  proto2: [0x80, 2],
  mark: [0x28],
  stop: [0x2e],
  dict: [0x7d],
  list: [0x5d],
  tuple0: [0x29],
  tuple: [0x74],
  tuple1: [0x85],
  tuple2: [0x86],
  setitem: [0x73],
  setitems: [0x75],
  append: [0x61],
  reduce: [0x52],
  build: [0x62],
  persid: [0x51],
  newobj: [0x81],
  none: [0x4e],
  true: [0x88],
  false: [0x89],
  pop: [0x30],
  dup: [0x32],
};
const str = (s: string) => {
  const t = enc8(s);
  return [0x58, t.length & 0xff, (t.length >> 8) & 0xff, (t.length >> 16) & 0xff, t.length >>> 24, ...t];
};
const int = (n: number) => (n >= 0 && n < 256 ? [0x4b, n] : [0x4a, n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff]);
const glob = (module: string, name: string) => [0x63, ...enc8(`${module}\n${name}\n`)];
const put = (i: number) => [0x71, i];
const get = (i: number) => [0x68, i];
const pkl = (...parts: number[][]) => Uint8Array.from(parts.flat());
const ints = (xs: number[]) => [...op.mark, ...xs.flatMap(int), ...op.tuple];

/** The ops torch writes for a tensor: _rebuild_tensor_v2(persistent id, offset, size, stride, False, OrderedDict()). */
function tensorOps(o: { type?: string; key?: string; numel: number; offset?: number; shape: number[]; stride: number[]; hooks?: number[] }): number[] {
  return [
    ...glob('torch._utils', '_rebuild_tensor_v2'),
    ...op.mark,
    ...[...op.mark, ...str('storage'), ...glob('torch', o.type ?? 'FloatStorage'), ...str(o.key ?? '0'), ...str('cpu'), ...int(o.numel), ...op.tuple],
    ...op.persid,
    ...int(o.offset ?? 0),
    ...ints(o.shape),
    ...ints(o.stride),
    ...op.false,
    ...(o.hooks ?? [...glob('collections', 'OrderedDict'), ...op.tuple0, ...op.reduce]),
    ...op.tuple,
    ...op.reduce,
  ];
}

/** {'x': tensor} as a full pickle. */
const dictOf = (value: number[]) => pkl(op.proto2, op.dict, str('x'), value, op.setitem, op.stop);

const f32Blob = (xs: number[]) => new Uint8Array(Float32Array.from(xs).buffer);

function refused(fn: () => unknown, code: TorchFileErrorCode, ...mentions: string[]): TorchFileError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, 'an error').toBeInstanceOf(TorchFileError);
  const e = err as TorchFileError;
  expect(e).toBeInstanceOf(FrescoError);
  expect(e.name).toBe('TorchFileError');
  expect({ code: e.code, message: e.message }).toMatchObject({ code });
  for (const m of mentions) expect(e.message).toContain(m);
  return e;
}

const read = (bytes: Uint8Array) => readTorchFile(bytes, 'test.pt');

// ---------------------------------------------------------------- tests

describe('torch.save files: what torch.load reads', () => {
  it.each(['parameter-f16.pt', 'dtypes.pt', 'paramdict.pt', 'protocol4.pt', 'bigendian.pt'])('%s', (name) => {
    expectTorchLoad(name, readTorchFile(fixture(name), name));
  });

  it.each(['tiny-cat.bin', 'tiny-obj.pt'])('textual inversion %s', (name) => {
    expectTorchLoad(`../textual-inversion-tiny/${name}`, readTorchFile(new Uint8Array(readFileSync(new URL(`textual-inversion-tiny/${name}`, FIXTURES))), name));
  });

  it('deflated entries: readTorchFileAsync inflates them, readTorchFile says to use it', async () => {
    expectTorchLoad('deflate.pt', await readTorchFileAsync(fixture('deflate.pt'), 'deflate.pt'));
    refused(() => readTorchFile(fixture('deflate.pt'), 'deflate.pt'), 'compressed', 'deflate.pt', 'deflate/data.pkl', 'readTorchFileAsync');
    // And the async reader reads stored files too.
    expectTorchLoad('dtypes.pt', await readTorchFileAsync(fixture('dtypes.pt'), 'dtypes.pt'));
  });

  it('diffusers learned_embeds.bin and A1111 .pt embeddings, as the textual inversion reader takes them', () => {
    const dir = new URL('textual-inversion-tiny/', FIXTURES);
    const cat = readTorchFile(new Uint8Array(readFileSync(new URL('tiny-cat.bin', dir))), 'tiny-cat.bin');
    const catTensors = torchTensors(cat);
    expect([...catTensors.keys()]).toEqual(['<tiny-cat>']);
    const inv = readInversion(new Map([...catTensors].map(([k, t]) => [k, torchToHostTensor(t, k)])), 'tiny-cat.bin');
    expect(inv.token).toBe('<tiny-cat>');
    expect([inv.text_encoder.n, inv.text_encoder.dim]).toEqual([1, 64]);
    expect(inv.text_encoder.values).toEqual(catTensors.get('<tiny-cat>')!.data);

    const obj = readTorchFile(new Uint8Array(readFileSync(new URL('tiny-obj.pt', dir))), 'tiny-obj.pt') as Map<PickleValue, PickleValue>;
    expect(obj.get('name')).toBe('<tiny-obj>');
    expect(obj.get('step')).toBe(500);
    expect((obj.get('string_to_token') as Map<PickleValue, PickleValue>).get('*')).toBe(265);
    const param = (obj.get('string_to_param') as Map<PickleValue, PickleValue>).get('*') as TorchTensor;
    expect([param.dtype, param.shape]).toEqual(['float32', [2, 64]]);
    expect([...torchTensors(obj).keys()]).toEqual(['string_to_param.*']);

    // The same generator wrote tiny-style.safetensors: a sanity check that the values are of its scale.
    const style = parseSafetensors(new Uint8Array(readFileSync(new URL('tiny-style.safetensors', dir))), 'tiny-style.safetensors');
    expect(style.get('<tiny-style>')!.shape).toEqual([3, 64]);
    const rms = Math.sqrt(param.data.reduce((s, x) => s + x * x, 0) / param.data.length);
    expect(rms).toBeGreaterThan(0.25);
    expect(rms).toBeLessThan(1);
  });

  it('views of one storage, the archive named after the file, and the original ParameterDict format', () => {
    const v = readTorchFile(fixture('dtypes.pt'), 'dtypes.pt') as Map<PickleValue, PickleValue>;
    const base = v.get('base') as TorchTensor;
    expect((v.get('row1') as TorchTensor).data).toEqual(base.data.subarray(4, 8));
    expect((v.get('rows12') as TorchTensor).data).toEqual(base.data.subarray(4));
    // A fresh array per tensor, not a view of the file or of each other.
    expect((v.get('row1') as TorchTensor).data.buffer).not.toBe(base.data.buffer);

    const pd = readTorchFile(fixture('paramdict.pt'), 'paramdict.pt');
    expect([...torchTensors(pd).keys()]).toEqual(['string_to_token.*', 'string_to_param._parameters.*']);
    const obj = (pd as Map<PickleValue, PickleValue>).get('string_to_param') as TorchObject;
    expect(obj.className).toBe('torch.nn.modules.container.ParameterDict');
    const p = ((obj.state as Map<PickleValue, PickleValue>).get('_parameters') as Map<PickleValue, PickleValue>).get('*') as TorchTensor;
    expect([p.parameter, p.requiresGrad, p.shape]).toEqual([true, true, [1, 8]]);
  });

  it('detectTorchFormat', () => {
    expect(detectTorchFormat(fixture('dtypes.pt'))).toBe('torch-zip');
    expect(detectTorchFormat(fixture('legacy.pt'))).toBe('legacy-torch');
    expect(detectTorchFormat(new Uint8Array(readFileSync(new URL('textual-inversion-tiny/tiny-style.safetensors', FIXTURES))))).toBe('safetensors');
    expect(detectTorchFormat(makeZip([{ name: 'readme.txt', data: enc8('hi') }]))).toBe('zip');
    expect(detectTorchFormat(pkl(op.proto2, op.none, op.stop))).toBe('pickle');
    expect(detectTorchFormat(enc8('hello world'))).toBe('unknown');
    expect(detectTorchFormat(new Uint8Array(0))).toBe('unknown');
  });
});

describe('torch.save files: code is refused, never run', () => {
  it('a pickle that calls os.system (torch.save of an object whose __reduce__ is os.system)', () => {
    refused(() => readTorchFile(fixture('evil-os-system.pt'), 'evil-os-system.pt'), 'global', 'evil-os-system.pt', "'posix.system'", 'nothing was run');
  });

  it('a pickle that calls eval', () => {
    refused(() => readTorchFile(fixture('evil-eval.pt'), 'evil-eval.pt'), 'global', "'__builtin__.eval'");
  });

  it.each([
    ['os', 'system'],
    ['builtins', 'exec'],
    ['__builtin__', 'getattr'],
    ['subprocess', 'Popen'],
    ['torch.storage', '_load_from_bytes'],
    ['torch', 'load'],
    ['torch._utils', '_rebuild_device_tensor_from_numpy'],
    ['torch', 'ComplexFloatStorage'],
    ['collections', 'defaultdict'],
    ['numpy.core.multiarray', '_reconstruct'],
  ])('GLOBAL %s.%s is refused where it is named, before any REDUCE', (module, name) => {
    // The pickle stops right after the global: the refusal comes from the lookup itself.
    refused(() => read(torchZip(pkl(op.proto2, glob(module, name)))), 'global', `'${module}.${name}'`);
    // STACK_GLOBAL (protocol 4) the same way.
    refused(() => read(torchZip(pkl([0x80, 4], str(module), str(name), [0x93]))), 'global', `'${module}.${name}'`);
  });

  it('a whitelisted name used in the wrong place is refused too', () => {
    // NEWOBJ of a function, REDUCE of a storage type, a storage type as data.
    refused(() => read(torchZip(pkl(op.proto2, glob('collections', 'OrderedDict'), op.tuple0, op.newobj, op.stop))), 'pickle', 'NEWOBJ of collections.OrderedDict');
    refused(() => read(torchZip(pkl(op.proto2, glob('torch', 'FloatStorage'), op.tuple0, op.reduce, op.stop))), 'pickle', 'REDUCE cannot call torch.FloatStorage');
    refused(() => read(torchZip(dictOf(glob('torch', 'FloatStorage')))), 'pickle', 'not data');
    refused(() => read(torchZip(pkl(op.proto2, glob('torch', 'FloatStorage'), op.stop))), 'pickle', 'not data');
    // A tuple holding a global, tucked inside a list.
    refused(() => read(torchZip(pkl(op.proto2, op.list, glob('torch', 'FloatStorage'), op.tuple1, op.append, op.stop))), 'pickle', 'holding a global');
    // BUILD (which would be __setstate__) on anything but a rebuilt object.
    refused(() => read(torchZip(pkl(op.proto2, op.dict, op.dict, op.build, op.stop))), 'pickle', 'BUILD on a dict');
    // _rebuild_from_type_v2 only to tensor types.
    refused(
      () => read(torchZip(pkl(op.proto2, glob('torch._tensor', '_rebuild_from_type_v2'), op.mark, glob('collections', 'OrderedDict'), glob('collections', 'OrderedDict'), op.tuple0, op.dict, op.tuple, op.reduce, op.stop))),
      'tensor',
      '_rebuild_from_type_v2',
    );
  });
});

describe('torch.save files: formats and tensors refused', () => {
  it('the legacy format', () => {
    refused(() => readTorchFile(fixture('legacy.pt'), 'legacy.pt'), 'legacy', 'legacy.pt', 'legacy torch.save format', '.safetensors');
  });

  it('other files', () => {
    refused(() => read(new Uint8Array(readFileSync(new URL('textual-inversion-tiny/tiny-style.safetensors', FIXTURES)))), 'not-torch', 'a .safetensors file');
    refused(() => read(pkl(op.proto2, op.none, op.stop)), 'not-torch', 'bare pickle');
    refused(() => read(enc8('not a model')), 'not-torch');
    refused(() => read(makeZip([{ name: 'model/weights.bin', data: enc8('x') }])), 'not-torch', 'data.pkl');
    refused(() => read(makeZip([{ name: 'a/data.pkl', data: pkl(op.proto2, op.none, op.stop) }, { name: 'b/data.pkl', data: pkl(op.proto2, op.none, op.stop) }])), 'zip', 'several pickles');
  });

  it('a non-contiguous tensor (a transposed view, as torch.save keeps it)', () => {
    refused(() => readTorchFile(fixture('noncontiguous.pt'), 'noncontiguous.pt'), 'tensor', 'size [3, 2]', 'stride [1, 3]', 'contiguous');
  });

  it('strides of size-1 dimensions do not matter, as in torch', () => {
    const v = read(torchZip(dictOf(tensorOps({ numel: 7, offset: 2, shape: [1, 4, 1], stride: [99, 1, 5] })), { 0: f32Blob([0, 1, 2, 3, 4, 5, 6]) }));
    const t = (v as Map<PickleValue, PickleValue>).get('x') as TorchTensor;
    expect([t.shape, [...t.data]]).toEqual([[1, 4, 1], [2, 3, 4, 5]]);
  });

  it('tensors that do not fit their storage', () => {
    const blob = { 0: f32Blob([1, 2, 3, 4]) };
    refused(() => read(torchZip(dictOf(tensorOps({ numel: 4, offset: 1, shape: [4], stride: [1] })), blob)), 'tensor', 'runs past storage');
    refused(() => read(torchZip(dictOf(tensorOps({ numel: 8, shape: [8], stride: [1] })), blob)), 'tensor', '16 bytes, too few for 8 float32');
    refused(() => read(torchZip(dictOf(tensorOps({ numel: 4, shape: [2, 2], stride: [1] })), blob)), 'tensor', 'stride [1]');
    refused(() => read(torchZip(dictOf(tensorOps({ numel: 4, key: '7', shape: [4], stride: [1] })), blob)), 'zip', "no 'archive/data/7'");
    refused(() => read(torchZip(dictOf(tensorOps({ numel: 2, type: 'HalfStorage', shape: [2, 2 ** 31 - 1], stride: [2 ** 31 - 1, 1] })), blob)), 'tensor', 'runs past');
    // A persistent id that is not a storage.
    refused(() => read(torchZip(dictOf([...str('storage'), ...op.tuple1, ...op.persid]), blob)), 'tensor', "('storage', type, key, location, numel)");
    // Backward hooks with entries: hooks are functions.
    refused(() => read(torchZip(dictOf(tensorOps({ numel: 4, shape: [4], stride: [1], hooks: [...op.dict, ...int(1), ...int(2), ...op.setitem] })), blob)), 'tensor', 'backward hooks');
    // One storage key given two different types.
    const two = [...op.list, ...tensorOps({ numel: 4, shape: [4], stride: [1] }), ...op.append, ...tensorOps({ numel: 2, type: 'DoubleStorage', shape: [2], stride: [1] }), ...op.append];
    refused(() => read(torchZip(dictOf(two), blob)), 'tensor', 'two different storages');
  });

  it('byteorder', () => {
    const bytes = torchZip(dictOf(tensorOps({ numel: 2, type: 'HalfStorage', shape: [2], stride: [1] })), { 0: Uint8Array.of(0x3c, 0x00, 0xc0, 0x00) }, { byteorder: 'big' });
    expect([...((read(bytes) as Map<PickleValue, PickleValue>).get('x') as TorchTensor).data]).toEqual([1, -2]);
    refused(() => read(torchZip(dictOf(op.none), {}, { byteorder: 'middle' })), 'tensor', "byteorder says 'middle'");
  });
});

describe('torch.save files: malformed archives', () => {
  const good = () => fixture('parameter-f16.pt');

  it('truncated files', () => {
    const b = good();
    for (const n of [0, 10, 22, b.length >> 1, b.length - 1]) refused(() => read(b.subarray(0, n)), n < 4 ? 'not-torch' : 'zip');
  });

  it('a corrupt byte is caught by the CRC', () => {
    const b = good();
    // The first copy of the name is the local header's; its data follows the name and the extra field.
    const name = enc8('parameter-f16/data/0');
    const at = b.findIndex((_, i) => name.every((c, k) => b[i + k] === c));
    const data = at + name.length + (b[at - 2]! | (b[at - 1]! << 8));
    b[data + 3]! ^= 0x40;
    refused(() => read(b), 'zip', "'parameter-f16/data/0' fails its CRC check");
  });

  it('directory fields that point outside the file', () => {
    const pk = pkl(op.proto2, op.none, op.stop);
    const z = makeZip([{ name: 'archive/data.pkl', data: pk }]);
    const eocd = z.length - 22;
    const patch = (at: number, v: number) => {
      const c = z.slice();
      new DataView(c.buffer).setUint32(at, v, true);
      return c;
    };
    expect(read(z)).toBeNull();
    refused(() => read(patch(eocd + 16, 0xffffffff)), 'zip', 'needs ZIP64');
    refused(() => read(patch(eocd + 16, 3)), 'zip', 'malformed');
    refused(() => read(patch(eocd + 12, 5000)), 'zip', 'runs past');
    const cd = new DataView(z.buffer).getUint32(eocd + 16, true);
    refused(() => read(patch(cd + 42, 7)), 'zip', 'no local header');
    refused(() => read(patch(cd + 20, 1000)), 'zip', 'runs past');
    refused(() => read(patch(cd + 24, 9)), 'zip', 'says it holds 9');
    // A comment length that does not end at the end of the file.
    const c = z.slice();
    c[z.length - 2] = 5;
    refused(() => read(c), 'zip', 'end of central directory');
  });

  it('encrypted, unsupported compression, names that differ, duplicates', () => {
    const pk = pkl(op.proto2, op.none, op.stop);
    refused(() => read(makeZip([{ name: 'archive/data.pkl', data: pk, flags: 1 }])), 'zip', 'encrypted');
    refused(() => read(makeZip([{ name: 'archive/data.pkl', data: pk, method: 12 }])), 'compressed', 'method 12');
    refused(() => read(makeZip([{ name: 'archive/data.pkl', data: pk }, { name: 'archive/data.pkl', data: pk }])), 'zip', 'appears twice');
    const z = makeZip([{ name: 'archive/data.pkl', data: pk }]);
    z[30] = 'A'.charCodeAt(0); // the local header's copy of the name
    refused(() => read(z), 'zip', 'names another file');
  });

  it('ZIP64 extra fields (what writers use past 4 GiB) are read', () => {
    const z = makeZip([{ name: 'archive/data.pkl', data: dictOf(tensorOps({ numel: 2, shape: [2], stride: [1] })) }, { name: 'archive/data/0', data: f32Blob([3, 4]) }], { zip64Extra: true });
    expect([...((read(z) as Map<PickleValue, PickleValue>).get('x') as TorchTensor).data]).toEqual([3, 4]);
  });

  it('deflated entries that lie about their size', async () => {
    const pk = pkl(op.proto2, str('a'.repeat(200)), op.stop);
    expect(await readTorchFileAsync(torchZip(pk, {}, { method: 8 }), 'test.pt')).toBe('a'.repeat(200));
    const short = makeZip([{ name: 'archive/data.pkl', data: pk, method: 8, size: 50 }]);
    await expect(readTorchFileAsync(short, 'test.pt')).rejects.toThrow(/inflates past its stated 50 bytes/);
    const long = makeZip([{ name: 'archive/data.pkl', data: pk, method: 8, size: 500 }]);
    await expect(readTorchFileAsync(long, 'test.pt')).rejects.toThrow(/inflates to \d+ bytes, not its stated 500/);
    const garbage = makeZip([{ name: 'archive/data.pkl', data: pk, method: 8 }]);
    garbage.fill(0xff, 40, 60);
    await expect(readTorchFileAsync(garbage, 'test.pt')).rejects.toBeInstanceOf(TorchFileError);
  });
});

describe('torch.save files: the restricted unpickler', () => {
  it('opcodes torch and Python write, and data values', () => {
    const v = read(
      torchZip(
        pkl(
          op.proto2,
          op.list,
          put(0),
          op.mark,
          int(1),
          int(-5),
          [0x4d, 0x34, 0x12], // BININT2
          [0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1], // LONG1 2^64
          [0x8a, 1, 0xff], // LONG1 -1
          [0x8a, 0], // LONG1 0
          [0x47, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a], // BINFLOAT 0.1
          [0x8c, 2, 0xc3, 0xa9], // SHORT_BINUNICODE 'é'
          [0x55, 2, 0x68, 0xe9], // SHORT_BINSTRING 'hé' (latin-1)
          [0x43, 2, 7, 8], // SHORT_BINBYTES
          op.none,
          op.true,
          op.false,
          op.mark,
          str('k'),
          int(2),
          [0x64], // DICT
          op.mark,
          int(3),
          [0x6c], // LIST
          int(9),
          op.dup,
          op.pop,
          op.mark,
          int(1),
          [0x31], // POP_MARK
          [0x65], // APPENDS
          get(0),
          op.tuple1,
          [0x94], // MEMOIZE
          op.pop,
          op.stop,
        ),
      ),
    );
    expect(enc(v)).toEqual({
      list: [1, -5, 0x1234, { bigint: String(2n ** 64n) }, -1, 0, 0.1, 'é', 'hé', { bytes: [7, 8] }, null, true, false, { dict: [['k', 2]] }, { list: [3] }, 9],
    });
  });

  it('a list that holds itself reads, and torchTensors walks it once', () => {
    const v = read(torchZip(pkl(op.proto2, op.list, put(0), get(0), op.append, op.stop))) as PickleValue[];
    expect(v[0]).toBe(v);
    expect(torchTensors(v).size).toBe(0);
  });

  it('OrderedDict from pairs, sets, bytes', () => {
    const v = read(
      torchZip(
        pkl(
          op.proto2,
          op.list,
          glob('collections', 'OrderedDict'),
          op.list, op.mark, str('z'), int(1), op.tuple2, str('a'), int(2), op.tuple2, [0x65], // APPENDS
          op.tuple1,
          op.reduce,
          op.append,
          glob('__builtin__', 'set'), op.list, int(4), op.append, op.tuple1, op.reduce, op.append,
          glob('_codecs', 'encode'), str('\u00ff\u0000'), str('latin1'), op.tuple2, op.reduce, op.append,
          glob('__builtin__', 'bytes'), op.tuple0, op.reduce, op.append,
          op.stop,
        ),
      ),
    );
    expect(enc(v)).toEqual({ list: [{ dict: [['z', 1], ['a', 2]] }, { set: [4] }, { bytes: [255, 0] }, { bytes: [] }] });
  });

  it('malformed pickles', () => {
    const bad = (p: number[][], ...mentions: string[]) => refused(() => read(torchZip(pkl(...p))), 'pickle', 'test.pt (archive/data.pkl)', ...mentions);
    bad([op.proto2, [0x69]], "opcode 0x69 ('i')", 'not supported'); // INST
    bad([op.proto2, [0x82, 1]], 'opcode 0x82'); // EXT1
    bad([op.proto2, op.none], 'no STOP');
    bad([op.proto2, op.stop], 'stack underflow');
    bad([op.proto2, op.none, op.none, op.stop], 'values left');
    bad([op.proto2, get(3), op.stop], 'memo entry 3');
    bad([op.proto2, op.list, int(1), int(2), op.setitem, op.stop], 'SETITEM(S) on a list');
    bad([op.proto2, op.dict, int(1), op.append, op.stop], 'APPEND(S) on a dict');
    bad([op.proto2, op.tuple0, int(1), op.append, op.stop], 'on a tuple');
    bad([op.proto2, op.dict, op.list, int(1), op.setitem, op.stop], 'cannot hash');
    bad([op.proto2, op.dict, op.mark, int(1), op.setitems, op.stop], 'odd number');
    bad([op.proto2, int(1), op.tuple0, op.reduce, op.stop], 'not a function');
    bad([op.proto2, [0x58, 10, 0, 0, 0, 0x41]], 'truncated');
    bad([op.proto2, [0x58, 2, 0, 0, 0, 0xff, 0xfe], op.stop], 'not valid UTF-8');
    bad([[0x80, 6], op.none, op.stop], 'protocol 6');
    bad([op.proto2, [0x31], op.stop], 'no mark');
    bad([op.proto2, glob('_codecs', 'encode'), str('\u0100'), str('latin1'), op.tuple2, op.reduce, op.stop], 'past U+00FF');
    bad([op.proto2, glob('collections', 'OrderedDict'), int(1), op.tuple1, op.reduce, op.stop], 'OrderedDict() with 1 arguments');
    bad([op.proto2, [0x63, ...enc8('os')]], 'no end of line');
    bad([op.proto2, [0x8b, 0, 0, 1, 0]], '65536-byte integer');
  });

  it('mutated pickles give a value or a TorchFileError, never another exception', () => {
    // An A1111-like embedding, then 3000 copies with one to three bytes changed (a fixed LCG, so a
    // failure reproduces). The zip around each is rebuilt, so every mutation reaches the unpickler.
    const base = pkl(
      op.proto2, op.dict, put(0), op.mark,
      str('string_to_token'), op.dict, str('*'), [0x4d, 9, 1], op.setitem,
      str('string_to_param'), op.dict, str('*'), tensorOps({ numel: 6, shape: [2, 3], stride: [3, 1] }), op.setitem,
      str('name'), str('<x>'), str('step'), int(500), str('sd_checkpoint'), op.none,
      op.setitems, op.stop,
    );
    const blobs = { 0: f32Blob([1, 2, 3, 4, 5, 6]) };
    expect(enc((read(torchZip(base, blobs)) as Map<PickleValue, PickleValue>).get('name')!)).toBe('<x>');
    let seed = 12345;
    const rnd = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
    const codes = new Set<string>();
    for (let it = 0; it < 3000; it++) {
      const p = base.slice();
      for (let k = 0, n = 1 + rnd(3); k < n; k++) p[rnd(p.length)] = rnd(2) ? rnd(256) : p[rnd(p.length)]!;
      try {
        torchTensors(read(torchZip(p, blobs)));
        codes.add('ok');
      } catch (e) {
        if (!(e instanceof TorchFileError)) throw new Error(`mutation ${it}: ${String(e)}`);
        codes.add(e.code);
      }
    }
    expect([...codes].sort()).toEqual(expect.arrayContaining(['global', 'ok', 'pickle', 'tensor']));
  });

  it('requires_grad must be a bool and tensor sizes integers', () => {
    const blob = { 0: f32Blob([1, 2]) };
    refused(() => read(torchZip(dictOf([...glob('torch._utils', '_rebuild_tensor'), ...op.mark, ...[...op.mark, ...str('storage'), ...glob('torch', 'FloatStorage'), ...str('0'), ...str('cpu'), ...int(2), ...op.tuple], ...op.persid, ...int(0), ...op.mark, ...str('2'), ...op.tuple, ...ints([1]), ...op.tuple, ...op.reduce]), blob)), 'tensor', 'a tensor size[0]');
    refused(() => read(torchZip(dictOf([...glob('torch._utils', '_rebuild_parameter'), ...op.mark, ...int(1), ...op.true, ...op.dict, ...op.tuple, ...op.reduce]), blob)), 'tensor', "a parameter's data is number");
  });
});

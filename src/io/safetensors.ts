// The safetensors format (8-byte little-endian header length, JSON header, raw little-endian data),
// parsed with every field checked: a model folder from the web is untrusted input, and a bad offset
// must fail here with the file and tensor named, not later as garbage weights.
import { readFully, type ByteSource } from './byte_source.ts';
import { SafetensorsError, type SafetensorsErrorCode } from '../errors.ts';

export type DType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export interface HostTensor {
  name: string;
  dtype: DType;
  shape: number[];
  /** A view into the file's bytes, not a copy. */
  bytes: Uint8Array;
}

const DTYPE_SIZE: Record<DType, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

export function dtypeSize(dtype: DType): number {
  return DTYPE_SIZE[dtype];
}

function isDType(s: string): s is DType {
  return Object.prototype.hasOwnProperty.call(DTYPE_SIZE, s);
}

// A JSON header can legally be padded with spaces, but a header of hundreds of MiB is an attack or
// a corrupt length, and we should not try to decode it.
const MAX_HEADER_BYTES = 100 * 1024 * 1024;
const METADATA_KEY = '__metadata__';

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function shapeText(shape: readonly unknown[]): string {
  return `[${shape.join(', ')}]`;
}

export interface SafetensorsFile {
  tensors: Map<string, HostTensor>;
  metadata: Record<string, string>;
}

/** One tensor's place in its file: [begin, end) are absolute byte offsets. */
export interface TensorEntry {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

/** What a file's header says: every tensor's dtype, shape and absolute byte range. */
export interface SafetensorsHeader {
  entries: Map<string, TensorEntry>;
  metadata: Record<string, string>;
  /** Where the data area starts (8 + the header length). */
  dataStart: number;
  /** The end of the last tensor: the file is at least this long. */
  dataEnd: number;
}

type Fail = (code: SafetensorsErrorCode, msg: string) => never;

function failer(source: string): Fail {
  return (code, msg) => {
    throw new SafetensorsError(code, `${source}: ${msg}`);
  };
}

/** The header length from the first 8 bytes, checked against the limit and (when known) the file size. */
export function headerLength(first8: Uint8Array, fileSize: number | null, source: string): number {
  const fail = failer(source);
  if (first8.byteLength < 8 || (fileSize !== null && fileSize < 8)) fail('too-small', `${fileSize ?? first8.byteLength} bytes is too small for a safetensors file (needs at least 8)`);
  const n64 = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) fail('header-length', `header length ${n64} exceeds the ${MAX_HEADER_BYTES}-byte limit (corrupt or not a safetensors file)`);
  const n = Number(n64);
  if (fileSize !== null && n > fileSize - 8) fail('header-length', `header length ${n} runs past the end of the file (${fileSize - 8} bytes after the length field)`);
  return n;
}

/**
 * Parses and checks the JSON header (the `n` bytes after the length field). `fileSize`, when
 * known, bounds the tensors; a streamed file whose size is unknown is checked as it ends.
 */
export function parseSafetensorsHeader(json: Uint8Array, fileSize: number | null, source: string): SafetensorsHeader {
  const fail = failer(source);
  const n = json.byteLength;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(json);
  } catch {
    return fail('header-json', 'header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    return fail('header-json', `header is not valid JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(header)) fail('header-not-object', `header must be a JSON object, got ${Array.isArray(header) ? 'an array' : header === null ? 'null' : typeof header}`);
  const raw = header as Record<string, unknown>;

  const metadata: Record<string, string> = {};
  if (METADATA_KEY in raw) {
    const m = raw[METADATA_KEY];
    if (!isPlainObject(m)) fail('bad-metadata', `${METADATA_KEY} must be an object of strings`);
    for (const [k, v] of Object.entries(m as Record<string, unknown>)) {
      if (typeof v !== 'string') fail('bad-metadata', `${METADATA_KEY} entry '${k}' must be a string, got ${JSON.stringify(v)}`);
      metadata[k] = v as string;
    }
  }

  const dataStart = 8 + n;
  const dataSize = fileSize === null ? Infinity : fileSize - dataStart;
  const entries = new Map<string, TensorEntry>();
  let dataEnd = dataStart;

  for (const [name, e] of Object.entries(raw)) {
    if (name === METADATA_KEY) continue;
    const where = `tensor '${name}'`;
    if (!isPlainObject(e)) return fail('bad-entry', `${where}: entry must be an object with dtype, shape and data_offsets`);
    const { dtype, shape, data_offsets: offsets } = e;
    if (typeof dtype !== 'string') fail('bad-entry', `${where}: dtype must be a string, got ${JSON.stringify(dtype)}`);
    if (!isDType(dtype as string)) fail('unknown-dtype', `${where}: unsupported dtype '${dtype}' (supported: ${Object.keys(DTYPE_SIZE).join(', ')})`);
    if (!Array.isArray(shape) || !shape.every(isCount)) fail('bad-entry', `${where}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
      fail('bad-entry', `${where}: data_offsets must be [begin, end] non-negative integers, got ${JSON.stringify(offsets)}`);
    }
    const dt = dtype as DType;
    const dims = shape as number[];
    const [begin, end] = offsets as [number, number];
    if (begin > end) fail('bad-entry', `${where}: data_offsets [${begin}, ${end}] has begin > end`);
    if (end > dataSize) fail('out-of-range', `${where}: data_offsets [${begin}, ${end}] run past the data area (${dataSize} bytes)`);
    // A product that overflows the safe range cannot equal a byte count inside the file anyway.
    const want = dims.reduce((a, b) => a * b, 1) * DTYPE_SIZE[dt];
    if (want !== end - begin) {
      fail('size-mismatch', `${where}: shape ${shapeText(dims)} of ${dt} needs ${want} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`);
    }
    entries.set(name, { name, dtype: dt, shape: [...dims], begin: dataStart + begin, end: dataStart + end });
    dataEnd = Math.max(dataEnd, dataStart + end);
  }

  // Empty tensors occupy no bytes, so they cannot alias anything.
  const nonEmpty = [...entries.values()].filter((r) => r.end > r.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < nonEmpty.length; i++) {
    const prev = nonEmpty[i - 1]!;
    const cur = nonEmpty[i]!;
    if (cur.begin < prev.end) {
      const rel = (r: TensorEntry) => `[${r.begin - dataStart}, ${r.end - dataStart}]`;
      fail('overlap', `tensor '${cur.name}' ${rel(cur)} overlaps tensor '${prev.name}' ${rel(prev)}`);
    }
  }
  return { entries, metadata, dataStart, dataEnd };
}

/** Reads and checks a file's header: two small reads (the length, then the JSON), no tensor bytes. */
export async function readSafetensorsHeader(src: ByteSource): Promise<SafetensorsHeader> {
  const size = await src.size();
  const first = await src.read(0, 8);
  const n = headerLength(first, size ?? (first.byteLength < 8 ? first.byteLength : null), src.where);
  const json = await src.read(8, 8 + n);
  if (json.byteLength < n) failer(src.where)('header-length', `header length ${n} runs past the end of the file (${json.byteLength} bytes after the length field)`);
  return parseSafetensorsHeader(json, size, src.where);
}

/**
 * Streams the file once and gives each tensor of `wanted` to `onTensor` as soon as its last byte
 * has arrived: a view into the stream's chunk when one chunk holds it all, else one buffer the
 * size of the tensor. Neither outlives the call, so the largest host buffer is one tensor, never
 * the file. Tensors not wanted are skipped as they pass.
 */
export async function streamTensors(src: ByteSource, header: SafetensorsHeader, wanted: ReadonlySet<string>, onTensor: (t: HostTensor) => void | Promise<void>): Promise<void> {
  const todo = [...header.entries.values()].filter((e) => wanted.has(e.name)).sort((a, b) => a.begin - b.begin || a.end - b.end);
  if (todo.length === 0) return;
  let i = 0;
  // Empty tensors need no bytes.
  const flushEmpty = async () => {
    while (i < todo.length && todo[i]!.begin === todo[i]!.end) {
      const e = todo[i++]!;
      await onTensor({ name: e.name, dtype: e.dtype, shape: e.shape, bytes: new Uint8Array(0) });
    }
  };
  await flushEmpty();
  if (i === todo.length) return;
  let pos = todo[i]!.begin;
  let part: Uint8Array | null = null;
  let filled = 0;
  for await (const chunk of src.stream(pos)) {
    let off = 0;
    while (off < chunk.byteLength && i < todo.length) {
      const e = todo[i]!;
      if (pos < e.begin) {
        const skip = Math.min(e.begin - pos, chunk.byteLength - off);
        off += skip;
        pos += skip;
        continue;
      }
      const need = e.end - pos;
      const have = chunk.byteLength - off;
      if (!part && have >= need && pos === e.begin) {
        await onTensor({ name: e.name, dtype: e.dtype, shape: e.shape, bytes: chunk.subarray(off, off + need) });
      } else {
        part ??= new Uint8Array(e.end - e.begin);
        const take = Math.min(need, have);
        part.set(chunk.subarray(off, off + take), filled);
        filled += take;
        off += take;
        pos += take;
        if (filled < part.byteLength) continue;
        const bytes = part;
        part = null;
        filled = 0;
        i++;
        await onTensor({ name: e.name, dtype: e.dtype, shape: e.shape, bytes });
        await flushEmpty();
        continue;
      }
      off += need;
      pos += need;
      i++;
      await flushEmpty();
    }
    if (i === todo.length) break;
  }
  if (i < todo.length) {
    const e = todo[i]!;
    failer(src.where)('out-of-range', `the file ends at byte ${pos}, inside tensor '${e.name}' (bytes ${e.begin}..${e.end}): truncated or changed while reading`);
  }
}

/** Parses and validates a whole file; `source` (a path or URL) only goes into error messages. */
export function parseSafetensorsWithMetadata(bytes: Uint8Array, source: string): SafetensorsFile {
  const n = headerLength(bytes.subarray(0, 8), bytes.byteLength, source);
  const header = parseSafetensorsHeader(bytes.subarray(8, 8 + n), bytes.byteLength, source);
  const tensors = new Map<string, HostTensor>();
  for (const e of header.entries.values()) tensors.set(e.name, { name: e.name, dtype: e.dtype, shape: e.shape, bytes: bytes.subarray(e.begin, e.end) });
  return { tensors, metadata: header.metadata };
}

export function parseSafetensors(bytes: Uint8Array, source: string): Map<string, HostTensor> {
  return parseSafetensorsWithMetadata(bytes, source).tensors;
}

// Typed-array views use the host's byte order, and safetensors data is little-endian.
const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

type ViewCtor<T> = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): T; BYTES_PER_ELEMENT: number };

/** A typed view of the tensor's bytes, copying only when the offset is misaligned for the type. */
function typedView<T>(t: HostTensor, Ctor: ViewCtor<T>): T {
  if (!HOST_IS_LITTLE_ENDIAN) throw new SafetensorsError('bad-dtype', `tensor '${t.name}': big-endian hosts are not supported`);
  const size = Ctor.BYTES_PER_ELEMENT;
  const b = t.bytes.byteOffset % size === 0 ? t.bytes : t.bytes.slice();
  return new Ctor(b.buffer, b.byteOffset, b.byteLength / size);
}

let halfTable: Float32Array | null = null;

/** Every f16 value is exactly representable in f32, so one 64K-entry table converts them all. */
function halfToFloatTable(): Float32Array {
  if (halfTable) return halfTable;
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) table[h] = sign * mant * 2 ** -24;
    else if (exp === 31) table[h] = mant ? NaN : sign * Infinity;
    else table[h] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  halfTable = table;
  return table;
}

/**
 * The tensor as f32. An aligned F32 tensor comes back as a view that shares the file's memory (do
 * not write to it); every other dtype is converted into a fresh array. F16/BF16 are exact, F64 and
 * large I64 values round to nearest, BOOL becomes 0/1.
 */
export function toFloat32(t: HostTensor): Float32Array {
  switch (t.dtype) {
    case 'F32':
      return typedView(t, Float32Array);
    case 'F64':
      return Float32Array.from(typedView(t, Float64Array));
    case 'F16': {
      const table = halfToFloatTable();
      const src = typedView(t, Uint16Array);
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = table[src[i]!]!;
      return out;
    }
    case 'BF16': {
      // bf16 is the top half of an f32, so widening is a shift of the bit pattern.
      const src = typedView(t, Uint16Array);
      const out = new Float32Array(src.length);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
      return out;
    }
    case 'I64': {
      const src = typedView(t, BigInt64Array);
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = Number(src[i]!);
      return out;
    }
    case 'I32':
      return Float32Array.from(typedView(t, Int32Array));
    case 'I16':
      return Float32Array.from(typedView(t, Int16Array));
    case 'I8':
      return Float32Array.from(typedView(t, Int8Array));
    case 'U8':
      return Float32Array.from(t.bytes);
    case 'BOOL':
      return Float32Array.from(t.bytes, (v) => (v !== 0 ? 1 : 0));
  }
}

/** Integer tensors (timesteps, class labels) as plain numbers; throws past ±2^53 or on float dtypes. */
export function toInt64Numbers(t: HostTensor): number[] {
  switch (t.dtype) {
    case 'I64': {
      const out: number[] = [];
      for (const v of typedView(t, BigInt64Array)) {
        const x = Number(v);
        if (!Number.isSafeInteger(x)) {
          throw new SafetensorsError('bad-dtype', `tensor '${t.name}': value ${v} is outside the safe integer range of a JS number`);
        }
        out.push(x);
      }
      return out;
    }
    case 'I32':
      return Array.from(typedView(t, Int32Array));
    case 'I16':
      return Array.from(typedView(t, Int16Array));
    case 'I8':
      return Array.from(typedView(t, Int8Array));
    case 'U8':
      return Array.from(t.bytes);
    default:
      throw new SafetensorsError('bad-dtype', `tensor '${t.name}': expected an integer dtype, got ${t.dtype}`);
  }
}

/**
 * Node only: the whole file, or null when it does not exist. fs.readFile stops at 2 GiB and an f32
 * U-Net is bigger than that, so this reads in chunks into one buffer.
 */
export async function readFileBytes(path: string): Promise<Uint8Array | null> {
  const fs = await import('node:fs/promises');
  let fh;
  try {
    fh = await fs.open(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    const size = (await fh.stat()).size;
    return await readFully(fh, new Uint8Array(size), 0, path, size);
  } finally {
    await fh.close();
  }
}

/** Node only. The tensors' bytes are views into one buffer holding the whole file. */
export async function readSafetensorsFile(path: string): Promise<Map<string, HostTensor>> {
  const bytes = await readFileBytes(path);
  if (!bytes) throw new Error(`${path}: file not found`);
  return parseSafetensors(bytes, path);
}

/**
 * The length field and the JSON header, padded with spaces to a multiple of 8 (as the reference
 * implementation does) so the data area starts 8-byte aligned.
 */
export function encodeHeader(header: Record<string, unknown>): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20, 8);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

/**
 * Serializes tensors in insertion order, with the data area 8-byte aligned (as the reference
 * implementation pads it) so that every tensor can be viewed without a copy.
 */
export function writeSafetensors(
  tensors: Record<string, { dtype: DType; shape: number[]; data: ArrayBufferView }>,
  metadata?: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header[METADATA_KEY] = metadata;
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (name === METADATA_KEY) throw new SafetensorsError('bad-entry', `<write>: '${METADATA_KEY}' is reserved and cannot name a tensor`);
    if (!isDType(t.dtype)) throw new SafetensorsError('unknown-dtype', `<write>: tensor '${name}': unsupported dtype '${t.dtype}'`);
    const data = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    const want = t.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[t.dtype];
    if (data.byteLength !== want) {
      throw new SafetensorsError('size-mismatch', `<write>: tensor '${name}': shape ${shapeText(t.shape)} of ${t.dtype} needs ${want} bytes, data has ${data.byteLength}`);
    }
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + want] };
    parts.push(data);
    offset += want;
  }
  const head = encodeHeader(header);
  const out = new Uint8Array(head.byteLength + offset);
  out.set(head);
  let pos = head.byteLength;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.byteLength;
  }
  return out;
}

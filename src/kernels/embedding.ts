// Sinusoidal timestep embeddings (diffusers' get_timestep_embedding, and GaussianFourierProjection),
// nn.Embedding lookups (by u32 id, or by f32 timestep) and CLIP's token + position embeddings,
// through shaders/embedding.wgsl.
import type { Runtime } from '../gpu/runtime.ts';
import { fold1d, type Graph } from '../graph/graph.ts';
import { bytesFor, dtypeOf, shapeStr, type DType, type Tensor } from '../graph/tensor.ts';
import { commonDType, storageParams, weightParams } from './dtype.ts';
import { DTypeError, ShapeError } from '../errors.ts';
import { checkF32Values } from './tensor_checks.ts';

const WG = 256;

export interface TimestepEmbeddingOptions {
  flipSinToCos: boolean;
  downscaleFreqShift: number;
  scale?: number;
  maxPeriod?: number;
  /** Every batch element uses timesteps[0]. */
  broadcast?: boolean;
  /** Storage type of the embedding (timesteps are f32 either way); f32 by default. */
  dtype?: DType;
}

/**
 * exp(-ln(max_period) * i / (half_dim - shift)) with the float32 roundings torch applies to each
 * step, so the GPU multiplies by exactly torch's frequencies. They are constants per config, so
 * each runtime uploads a table once and keeps it, like a weight.
 */
export function timestepFrequencies(halfDim: number, shift: number, maxPeriod: number): Float32Array {
  const c = Math.fround(-Math.log(maxPeriod));
  const d = Math.fround(halfDim - shift);
  return Float32Array.from({ length: halfDim }, (_, i) => Math.exp(Math.fround(Math.fround(c * i) / d)));
}

const freqTables = new WeakMap<Runtime, Map<string, GPUBuffer>>();

function frequencyBuffer(rt: Runtime, halfDim: number, shift: number, maxPeriod: number): GPUBuffer {
  let tables = freqTables.get(rt);
  if (!tables) freqTables.set(rt, (tables = new Map()));
  const key = `${halfDim}/${shift}/${maxPeriod}`;
  let buffer = tables.get(key);
  if (!buffer) {
    buffer = rt.upload(timestepFrequencies(halfDim, shift, maxPeriod), `timestep-freqs/${key}`);
    tables.set(key, buffer);
  }
  return buffer;
}

/** [batch, dim] sinusoidal embedding of f32 timesteps (timesteps[b], or timesteps[0] with broadcast). */
export function timestepEmbedding(g: Graph, label: string, timesteps: Tensor | GPUBuffer, batch: number, dim: number, opts: TimestepEmbeddingOptions): Tensor {
  const { flipSinToCos, downscaleFreqShift: shift, scale = 1, maxPeriod = 10000, broadcast = false } = opts;
  if (!Number.isInteger(batch) || batch < 1 || !Number.isInteger(dim) || dim < 1) throw new ShapeError(`${label}: batch ${batch} and dim ${dim} must be positive integers`);
  const halfDim = Math.floor(dim / 2);
  if (halfDim > 0 && halfDim - shift === 0) throw new ShapeError(`${label}: dim ${dim} with downscale_freq_shift ${shift} divides by zero`);
  const need = broadcast ? 1 : batch;
  checkF32Values(label, 'timesteps', timesteps, need);
  const dtype = opts.dtype ?? 'f32';
  const out = g.alloc([batch, dim], label, dtype);
  const n = batch * dim;
  g.dispatch(
    label,
    { shader: 'embedding', params: { TIMESTEP: true, ...storageParams(dtype) } },
    { timesteps, freqs: frequencyBuffer(g.rt, halfDim, shift, maxPeriod), out },
    { n, dim, half_dim: halfDim, scale, flip: flipSinToCos ? 1 : 0, broadcast: broadcast ? 1 : 0 },
    fold1d(Math.ceil(n / WG)),
  );
  return out;
}

/**
 * table[ids[b]] for table [num, dim] and u32 ids [B]; an id >= num reads row num - 1. `dtype`: the
 * output's storage type, the table's by default; a model whose weights are stored in f16 beside
 * f32 activations passes 'f32' for an f16 table (weightParams).
 */
export function embeddingLookup(g: Graph, label: string, table: Tensor, ids: Tensor, dtype: DType = dtypeOf(table)): Tensor {
  if (table.shape.length !== 2 || table.shape[0]! < 1) throw new ShapeError(`${label}: table ${shapeStr(table.shape)} is not [num, dim]`);
  if (ids.shape.length !== 1) throw new ShapeError(`${label}: ids ${shapeStr(ids.shape)} is not [B]`);
  const [num, dim] = table.shape as [number, number];
  const B = ids.shape[0]!;
  const weights = weightParams(g.rt.gpu.features, label, dtype, { table }, 'the output');
  const out = g.alloc([B, dim], label, dtype);
  const n = B * dim;
  g.dispatch(label, { shader: 'embedding', params: { LOOKUP: true, ...storageParams(dtype), ...weights } }, { table, ids, out }, { n, dim, num, broadcast: 0 }, fold1d(Math.ceil(n / WG)));
  return out;
}

/**
 * table[long(t[b])] for table [num, dim] and f32 values t (timesteps[b], or timesteps[0] with
 * broadcast): UNet2DModel's learned time embedding, nn.Embedding(num_train_timesteps, dim) over the
 * timesteps. Values are truncated toward zero as torch's .long() does; past the table (where torch
 * raises an IndexError) they are clamped to it. `dtype`: the output's storage type, as for embeddingLookup.
 */
export function embeddingLookupAt(g: Graph, label: string, table: Tensor, timesteps: Tensor | GPUBuffer, batch: number, broadcast = false, dtype: DType = dtypeOf(table)): Tensor {
  if (table.shape.length !== 2 || table.shape[0]! < 1) throw new ShapeError(`${label}: table ${shapeStr(table.shape)} is not [num, dim]`);
  if (!Number.isInteger(batch) || batch < 1) throw new ShapeError(`${label}: batch ${batch} must be a positive integer`);
  const need = broadcast ? 1 : batch;
  checkF32Values(label, 'timesteps', timesteps, need);
  const [num, dim] = table.shape as [number, number];
  const weights = weightParams(g.rt.gpu.features, label, dtype, { table }, 'the output');
  const out = g.alloc([batch, dim], label, dtype);
  const n = batch * dim;
  g.dispatch(label, { shader: 'embedding', params: { LOOKUP: true, IDS_F32: true, ...storageParams(dtype), ...weights } }, { table, ids: timesteps, out }, { n, dim, num, broadcast: broadcast ? 1 : 0 }, fold1d(Math.ceil(n / WG)));
  return out;
}

/**
 * diffusers' GaussianFourierProjection (log=True, as UNet2DModel builds it): [sin | cos] of
 * (ln t · w) · 2π, [batch, 2·len(w)], or [cos | sin] with flipSinToCos. `weight` is the
 * projection's f32 weight on the GPU (kept in f32 whatever the model's storage type, as the
 * sinusoid's arguments reach ~1000 rad). t must be positive (diffusers gives -inf/NaN at 0).
 */
export function gaussianFourierProjection(
  g: Graph,
  label: string,
  timesteps: Tensor | GPUBuffer,
  batch: number,
  weight: Tensor,
  opts: { flipSinToCos?: boolean; broadcast?: boolean; dtype?: DType },
): Tensor {
  const { flipSinToCos = false, broadcast = false } = opts;
  if (!Number.isInteger(batch) || batch < 1) throw new ShapeError(`${label}: batch ${batch} must be a positive integer`);
  // The shape, not the buffer's size, which is rounded up to whole 16 bytes.
  if (weight.shape.length !== 1 || dtypeOf(weight) !== 'f32') throw new ShapeError(`${label}: the projection weight ${weight.label} must be a 1-D f32 tensor, got ${shapeStr(weight.shape)} ${dtypeOf(weight)}`);
  const half = weight.shape[0]!;
  if (half < 1) throw new ShapeError(`${label}: empty projection weight`);
  const need = broadcast ? 1 : batch;
  checkF32Values(label, 'timesteps', timesteps, need);
  const dtype = opts.dtype ?? 'f32';
  const dim = 2 * half;
  const out = g.alloc([batch, dim], label, dtype);
  const n = batch * dim;
  // torch: ((x * w) * 2) * float32(pi); the * 2 is exact, so this is (x * w) * float32(2 pi).
  g.dispatch(
    label,
    { shader: 'embedding', params: { TIMESTEP: true, LOG: true, ...storageParams(dtype) } },
    { timesteps, freqs: weight, out },
    { n, dim, half_dim: half, scale: 2 * Math.PI, flip: flipSinToCos ? 1 : 0, broadcast: broadcast ? 1 : 0 },
    fold1d(Math.ceil(n / WG)),
  );
  return out;
}

/**
 * CLIP's embeddings: table[ids[b, t]] + positions[t], as [B, T, dim]. The token table comes as row
 * chunks (see tokenTableChunks) so no binding exceeds the plan's limit; ids past the table are
 * clamped to its last row. positions: [P, dim] with P >= T (rows 0..T-1 are used). The chunks and
 * positions are weights, stored alike; `dtype` is the output's storage type (theirs by default,
 * or f32 beside f16 weights).
 */
export function tokenEmbedding(g: Graph, label: string, chunks: readonly Tensor[], ids: Tensor, positions: Tensor, dtype?: DType): Tensor {
  if (chunks.length === 0) throw new ShapeError(`${label}: no token table chunks`);
  const dim = chunks[0]!.shape[1];
  for (const c of chunks) {
    if (c.shape.length !== 2 || c.shape[0]! < 1 || c.shape[1] !== dim) throw new ShapeError(`${label}: table chunk ${c.label} ${shapeStr(c.shape)} is not [rows, ${dim}]`);
  }
  if (ids.shape.length !== 2) throw new ShapeError(`${label}: ids ${shapeStr(ids.shape)} is not [B, T]`);
  if (dtypeOf(ids) !== 'f32') throw new DTypeError(`${label}: ids (${ids.label}) must be a u32 buffer, not ${dtypeOf(ids)}`);
  const [B, T] = ids.shape as [number, number];
  if (positions.shape.length !== 2 || positions.shape[1] !== dim || positions.shape[0]! < T) {
    throw new ShapeError(`${label}: positions ${shapeStr(positions.shape)} should be [>= ${T}, ${dim}] for ids ${shapeStr(ids.shape)}`);
  }
  const tables = Object.fromEntries([...chunks.map((c, k) => [`table chunk ${k}`, c]), ['positions', positions]]);
  const outDtype = dtype ?? commonDType(label, tables);
  const weights = weightParams(g.rt.gpu.features, label, outDtype, tables, 'the output');
  const total = chunks.reduce((a, c) => a + c.shape[0]!, 0);
  const out = g.alloc([B, T, dim!], label, outDtype);
  const n = B * T * dim!;
  let first = 0;
  chunks.forEach((table, k) => {
    const rows = table.shape[0]!;
    g.dispatch(
      chunks.length > 1 ? `${label}[${k}]` : label,
      { shader: 'embedding', params: { TOKENS: true, ...storageParams(outDtype), ...weights } },
      { table, ids, pos: positions, out },
      { n, dim: dim!, seq: T, first, rows, total },
      n === 0 ? [0] : fold1d(Math.ceil(n / WG)),
    );
    first += rows;
  });
  return out;
}

/** Row ranges [start, end) of a [num, dim] table, each within `bindingBytes` (whole rows). */
export function tokenTableChunks(num: number, dim: number, dtype: DType, bindingBytes: number): [number, number][] {
  const rowBytes = bytesFor(dim, dtype);
  const perChunk = Math.floor(bindingBytes / rowBytes);
  if (perChunk < 1) throw new ShapeError(`token table rows of ${dim} ${dtype} values (${rowBytes} bytes) do not fit one binding of ${bindingBytes} bytes`);
  const out: [number, number][] = [];
  for (let s = 0; s < num; s += perChunk) out.push([s, Math.min(num, s + perChunk)]);
  return out;
}

/** Uploads host ids as the u32 tensor embeddingLookup reads, refusing any outside [0, num). */
export function uploadIds(rt: Runtime, ids: ArrayLike<number>, num: number, label = 'ids'): Tensor {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= num) throw new ShapeError(`${label}: id ${id} at ${i} is outside [0, ${num})`);
  }
  return { buffer: rt.upload(Uint32Array.from(ids), label), shape: [ids.length], label };
}

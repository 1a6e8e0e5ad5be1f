// Nearest-codebook quantization (VectorQuantizer in VQModel.decode), through shaders/quantize.wgsl.
import { fold1d, type Graph } from '../graph/graph.ts';
import { shapeStr, type Tensor } from '../graph/tensor.ts';
import { commonDType, storageParams, weightParams } from './dtype.ts';
import { ShapeError } from '../errors.ts';

const WG = 64;
/** Matches TILE_VALUES and TILE_ROWS_MAX in the shader (16 KiB of workgroup memory in all). */
const TILE_VALUES = 3840;
const TILE_ROWS_MAX = 256;
/** torch.cdist computes distances directly, not through a matmul, only when both sides have at most this many rows. */
const CDIST_DIRECT_MAX_ROWS = 25;

/** z [B, D, h, w] (NCHW), codebook [K, D] → z with each pixel's D-vector replaced by its nearest codebook row. */
export function quantize(g: Graph, label: string, z: Tensor, codebook: Tensor): Tensor {
  if (z.shape.length !== 4) throw new ShapeError(`${label}: z ${shapeStr(z.shape)} is not [B, D, h, w]`);
  if (codebook.shape.length !== 2) throw new ShapeError(`${label}: codebook ${shapeStr(codebook.shape)} is not [K, D]`);
  const [B, D, h, w] = z.shape as [number, number, number, number];
  const [K, cd] = codebook.shape as [number, number];
  if (cd !== D) throw new ShapeError(`${label}: codebook ${shapeStr(codebook.shape)} has ${cd} components per row, z has ${D} channels`);
  if (K < 1 || D < 1) throw new ShapeError(`${label}: codebook ${shapeStr(codebook.shape)} is empty`);
  if (B * h * w < 1) throw new ShapeError(`${label}: z ${shapeStr(z.shape)} has no pixels`);
  if (D > TILE_VALUES) throw new ShapeError(`${label}: ${D} channels exceed the ${TILE_VALUES} one codebook tile holds`);
  const dtype = commonDType(label, { z });
  // The codebook is a model weight: stored like z, or in f16 beside an f32 z.
  const weights = weightParams(g.rt.gpu.features, label, dtype, { codebook }, 'z');
  const out = g.alloc(z.shape, label, dtype);
  const pixels = B * h * w;
  const tileRows = Math.min(TILE_ROWS_MAX, Math.floor(TILE_VALUES / D));
  const direct = pixels <= CDIST_DIRECT_MAX_ROWS && K <= CDIST_DIRECT_MAX_ROWS ? 1 : 0;
  g.dispatch(label, { shader: 'quantize', params: { ...storageParams(dtype), ...weights } }, { z, codebook, out }, { pixels, hw: h * w, d: D, k: K, tile_rows: tileRows, direct }, fold1d(Math.ceil(pixels / WG)));
  return out;
}

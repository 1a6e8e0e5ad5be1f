// The path every diffusers U-Net takes once its time embedding is made: (centering,) conv_in → down blocks
// (collecting skips) → mid block → up blocks (consuming them) → norm, activation (conv_act), conv_out, in the
// model's storage type with f32 at the boundary. UNet2DModel and UNet2DConditionModel differ only
// in what their blocks take besides (h, emb); they pass that in closures.
import type { Graph } from '../graph/graph.ts';
import { shapeStr, type DType, type Tensor } from '../graph/tensor.ts';
import { inStorage } from '../kernels/cast.ts';
import { affine } from '../kernels/elementwise.ts';
import { conv2d, type Activation } from '../kernels/gemm.ts';
import { groupNorm } from '../kernels/group_norm.ts';
import type { SkipSample } from './unet_2d_blocks.ts';
import { ConfigError } from '../errors.ts';

type Param = { weight: Tensor; bias: Tensor };

export interface UNetBody {
  where: string;
  dtype: DType;
  /** center_input_sample: the sample becomes 2·sample − 1 before conv_in (in the storage type, as diffusers does). */
  centerInput?: boolean;
  convIn: Param;
  convInPadding: number;
  down: ((g: Graph, h: Tensor) => { out: Tensor; skips: Tensor[] })[];
  /** null: no mid block (UNet2DConditionModel's mid_block_type null); the last down output goes on to the up blocks. */
  mid: ((g: Graph, h: Tensor) => Tensor) | null;
  /**
   * ControlNet residuals (UNet2DConditionModel's down_block_additional_residuals and
   * mid_block_additional_residual), called once the mid block is recorded: it adds into every skip
   * (conv_in's output first) in place and returns the sample the up blocks take. Without a mid
   * block h is also the last skip (`hIsSkip`), and the returned sample must be a new tensor.
   */
  residuals?: (g: Graph, skips: Tensor[], h: Tensor, hIsSkip: boolean) => Tensor;
  up: ((g: Graph, h: Tensor, skips: Tensor[]) => Tensor)[];
  normOut: Param;
  groups: number;
  eps: number;
  convOut: Param;
  convOutPadding: number;
  /** conv_act after conv_norm_out: SiLU in UNet2DModel, act_fn in UNet2DConditionModel. Default SiLU. */
  outAct?: Activation;
  /**
   * UNet2DModel's skip_sample (NCSN++'s skip blocks), shared with the block closures: set to the
   * (centered) input sample before the down blocks, reset to null (diffusers' None) before the up
   * blocks, and what the up blocks leave in it is added to conv_out's output. Left out: no skip path.
   */
  skipSample?: SkipSample;
}

/** sample (any dtype) → the U-Net's output in f32. */
export function runUNetBody(g: Graph, b: UNetBody, sample: Tensor): Tensor {
  return inStorage(g, b.dtype, sample, (x) => body(g, b, x), ['sample', 'out']);
}

function body(g: Graph, b: UNetBody, x: Tensor): Tensor {
  const centered = b.centerInput ? affine(g, 'center_input_sample', x, 2, -1) : x;
  let h = conv2d(g, 'conv_in', centered, b.convIn.weight, { bias: b.convIn.bias, padding: b.convInPadding });
  const skip = b.skipSample;
  if (skip) {
    skip.t = centered;
    skip.owned = centered !== x;
  } else if (centered !== x) {
    g.release(centered);
  }
  const skips: Tensor[] = [h];
  for (const d of b.down) {
    const r = d(g, h);
    skips.push(...r.skips);
    h = r.out;
  }
  if (skip) dropSkip(g, skip);
  // Without a mid block h is also the last skip: the first up resnet concatenates it with itself.
  if (b.mid) h = b.mid(g, h);
  if (b.residuals) h = b.residuals(g, skips, h, !b.mid);
  for (const u of b.up) h = u(g, h, skips);
  if (skips.length) throw new ConfigError(`${b.where}: ${skips.length} skip connections left unused: down and up block configs do not match`);
  const n = groupNorm(g, 'conv_norm_out', h, b.normOut.weight, b.normOut.bias, { groups: b.groups, eps: b.eps, act: b.outAct ?? 'silu' });
  g.release(h);
  // UNet2DModel: sample += skip_sample (the image-space skip of NCSN++'s up blocks), fused into conv_out.
  const residual = skip?.t ?? undefined;
  if (residual) {
    const [B, , H, W] = n.shape as [number, number, number, number];
    const want = [B, b.convOut.weight.shape[0]!, H, W];
    if (shapeStr(residual.shape) !== shapeStr(want)) throw new ConfigError(`${b.where}: the skip blocks' output skip ${shapeStr(residual.shape)} cannot be added to the output ${shapeStr(want)}`);
  }
  const out = conv2d(g, 'conv_out', n, b.convOut.weight, { bias: b.convOut.bias, padding: b.convOutPadding, ...(residual ? { residual } : {}) });
  g.release(n);
  if (skip) dropSkip(g, skip);
  return out;
}

function dropSkip(g: Graph, skip: SkipSample): void {
  if (skip.t && skip.owned) g.release(skip.t);
  skip.t = null;
  skip.owned = false;
}

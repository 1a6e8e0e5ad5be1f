// Unfused LoRA adapters, attached to the weights they adapt. linear() and conv2d() (gemm.ts) look
// their weight up here: when it carries an attachment they compute t = x·downᵀ with the same GEMM
// (a conv's down with the conv's own stride, padding and upsampling) and add t·upᵀ in the main
// GEMM's epilogue (the LORA variant of shaders/gemm.wgsl), so no model code knows about LoRA.
// src/models/lora.ts fills the registry (LoraSet in unfused mode); a graph reads it as it is
// recorded, and graphs are planned per generation, so a change applies from the next one.
import type { Tensor } from '../graph/tensor.ts';

export interface LoraAttachment {
  /**
   * [R, in, (kh, kw)]: every adapter's down rows, stacked, in the adapted weight's storage type
   * (read like the weight: f16 beside f32 activations is fine, f32 beside f16 ones is not).
   */
  down: Tensor;
  /** [out, R], f32: every adapter's up columns, stacked, each times its scale·alpha/rank. */
  up: Tensor;
  /** For messages: the adapters and the weight, e.g. "LoRA 'a', 'b' on unet mid_block.….to_q.weight". */
  what: string;
  /** How many GEMMs have applied it (a check that a model routes the weight through linear/conv2d). */
  uses: number;
  /**
   * Buffers made from this attachment at plan time (channel slices for a split conv,
   * src/models/channel_split.ts) are handed here, so they go with the attachment.
   */
  own(buffer: GPUBuffer): void;
  disown(buffer: GPUBuffer): void;
}

/**
 * By the weight's buffer, not the Tensor object: a model may view one weight under another shape
 * (Transformer2D's 1x1-conv proj_in used as a linear layer is `{ ...weight, shape: [c, c] }`).
 */
const attached = new WeakMap<GPUBuffer, LoraAttachment>();

/** Attaches `a` to `weight` (replacing any), or with null takes it off. */
export function setLoraAttachment(weight: Tensor, a: LoraAttachment | null): void {
  if (a) attached.set(weight.buffer, a);
  else attached.delete(weight.buffer);
}

/** The unfused LoRA on `weight`, if any. */
export function loraAttachment(weight: Tensor): LoraAttachment | undefined {
  return attached.get(weight.buffer);
}

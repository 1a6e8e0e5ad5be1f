// Text-to-image, as diffusers' StableDiffusionPipeline: the prompt and the negative prompt (""
// when none) are tokenized and encoded once by the CLIP text encoder; the U-Net then runs the
// shared denoising loop (src/pipelines/denoise.ts) with those states as encoder_hidden_states,
// both halves of classifier-free guidance in one batch. Fresco orders that batch [cond, uncond]
// (diffusers: [uncond, cond]); each half is computed independently, so only the order differs.
//
// Stable Diffusion XL (a folder whose SdModel has `xl`), as diffusers v0.25.1's
// StableDiffusionXLPipeline: each tokenizer/encoder pair encodes its prompt (prompt_2 defaults to
// the prompt), and the two encoders' hidden_states[-2] are concatenated along the features; the
// pooled embedding is text_encoder_2's text_embeds. Without a negative prompt and with
// force_zeros_for_empty_prompt, both negative embeddings are zeros. The U-Net also takes the
// pooled embeddings and the time ids (original size, crop top-left, target size).
//
// A U-Net with time_cond_proj_dim (LCM-distilled) takes the guidance scale as an embedding, as
// both diffusers v0.25.1 pipelines (and LatentConsistencyModelPipeline) give it: timestep_cond =
// get_guidance_scale_embedding(guidance_scale − 1), and do_classifier_free_guidance is false
// whatever the scale, so the U-Net runs on the prompts alone and no negative prompt is encoded.
import type { Runtime } from '../gpu/runtime.ts';
import { Graph } from '../graph/graph.ts';
import { numel, type Tensor } from '../graph/tensor.ts';
import { concatChannels } from '../kernels/elementwise.ts';
import { uploadIds } from '../kernels/embedding.ts';
import type { CLIPTokenizer, Encoded } from '../text/clip_tokenizer.ts';
import { compileStage, denoise, type DenoiseOptions, type GenerationResult } from './denoise.ts';
import { SDXL_TIME_IDS, type SdModel, type SdxlParts } from './sd_folder.ts';
import { checkWeighting, controlKeep } from './controlnet.ts';
import type { ControlResiduals } from '../models/unet_2d_condition.ts';

/** (height, width) in pixels. */
export type Size = readonly [number, number];

/** SDXL's micro-conditioning (the time ids), pixel sizes as [height, width], crops as [top, left]. */
export interface SdxlSizeOptions {
  /** original_size, default the image size. */
  originalSize?: Size;
  /** crops_coords_top_left, default [0, 0]. */
  cropsCoordsTopLeft?: Size;
  /** target_size, default the image size. */
  targetSize?: Size;
  /**
   * The negative half's time ids, used (as in diffusers) only when both negativeOriginalSize and
   * negativeTargetSize are given; otherwise they equal the prompt's.
   */
  negativeOriginalSize?: Size;
  negativeCropsCoordsTopLeft?: Size;
  negativeTargetSize?: Size;
}

export interface TextToImageOptions extends DenoiseOptions, SdxlSizeOptions {
  /** One prompt per image. */
  prompt: string | string[];
  /**
   * The unconditional half of guidance: one per prompt, or one for all (default ""; SDXL with
   * force_zeros_for_empty_prompt: none means zero negative embeddings).
   */
  negativePrompt?: string | string[];
  /** Image size in pixels, multiples of the VAE's scale factor (default: the U-Net's sample_size times it). */
  height?: number;
  width?: number;
  /**
   * diffusers' clip_skip: use the states this many layers before the last (SD: through the final
   * norm; SDXL: hidden_states[-(clip_skip + 2)] of both encoders for the prompt, while v0.25.1 keeps
   * hidden_states[-2] for the negative prompt).
   */
  clipSkip?: number;
  /** SDXL: text_encoder_2's prompt (diffusers' prompt_2; default, or "": the prompt). */
  prompt2?: string | string[];
  /** SDXL: text_encoder_2's negative prompt (negative_prompt_2; default, or "": the negative prompt). */
  negativePrompt2?: string | string[];
  /** Reads back the token ids and the text states before the loop (for conformance checks). */
  traceText?: (t: TextTrace) => void;
  /**
   * One entry per ControlNet the model was loaded with, in order (required then, an error
   * otherwise): StableDiffusionControlNetPipeline's image, controlnet_conditioning_scale and
   * control_guidance_start / _end for that net (guess_mode off). Not with initImage or mask.
   */
  control?: readonly ControlInput[];
  /**
   * Values set over the folder's scheduler_config.json for this run, whichever scheduler runs (a
   * preset's timestep_spacing 'trailing'; diffusers' from_config with overrides).
   */
  schedulerConfig?: Record<string, unknown>;
}

/** One ControlNet's input for a run. */
export interface ControlInput {
  /**
   * The control image as the pipeline's control image processor gives it: RGB values in [0, 1],
   * [3, H, W] (the same for every image) or [B, 3, H, W], at the size generated.
   */
  image: Float32Array;
  /** controlnet_conditioning_scale (default 1). */
  scale?: number;
  /** control_guidance_start and control_guidance_end: the share of the U-Net calls the net acts in (default 0 and 1). */
  start?: number;
  end?: number;
}

export interface TextTrace {
  ids: number[][];
  /** Present when guidance runs (guidance scale > 1) and the negative prompt is encoded. */
  uncondIds: number[][] | null;
  /** [B, T, D] (SDXL: both encoders' states, concatenated) */
  promptEmbeds: Float32Array;
  negativePromptEmbeds: Float32Array | null;
  /** SDXL: tokenizer_2's ids, text_encoder_2's text_embeds [B, P] and the time ids of one row of each half. */
  ids2?: number[][];
  uncondIds2?: number[][] | null;
  pooledPromptEmbeds?: Float32Array;
  negativePooledPromptEmbeds?: Float32Array | null;
  addTimeIds?: number[];
  negativeAddTimeIds?: number[] | null;
  /** SDXL: the time ids of every row of the U-Net's batch, in Fresco's [cond, uncond] order. */
  unetTimeIds?: number[][];
}

export interface TextToImageResult extends GenerationResult {
  /** Prompts cut to the tokenizer's length (diffusers warns about these too). */
  truncated: string[];
}

function asList(v: string | string[], n: number, what: string): string[] {
  const list = typeof v === 'string' ? Array.from({ length: n }, () => v) : v;
  if (list.length !== n) throw new Error(`${what}: ${list.length} given for ${n} prompts`);
  return list;
}

/** The options only Stable Diffusion XL takes (an error for an SD 1.x/2.x folder); the library's generate() takes them too. */
/** The SdxlSizeOptions keys (the time ids). */
const SDXL_SIZE_OPTIONS = ['originalSize', 'cropsCoordsTopLeft', 'targetSize', 'negativeOriginalSize', 'negativeCropsCoordsTopLeft', 'negativeTargetSize'] as const;
export const SDXL_OPTIONS = ['prompt2', 'negativePrompt2', ...SDXL_SIZE_OPTIONS] as const;

export async function generateFromText(rt: Runtime, model: SdModel, opts: TextToImageOptions): Promise<TextToImageResult> {
  const { unet, vae } = model;
  const prompts = typeof opts.prompt === 'string' ? [opts.prompt] : opts.prompt;
  const B = prompts.length;
  if (B === 0) throw new Error('at least one prompt is needed');
  const f = vae.scaleFactor;
  const height = opts.height ?? unet.sampleSize * f;
  const width = opts.width ?? unet.sampleSize * f;
  for (const [name, v] of [['height', height], ['width', width]] as const) {
    if (!Number.isInteger(v) || v <= 0 || v % f !== 0) throw new Error(`${name} ${v} must be a positive multiple of ${f} (the VAE's scale factor)`);
  }
  if (model.xl) {
    // diffusers' StableDiffusionXLImg2ImgPipeline / InpaintPipeline prepare latents and time ids their own way.
    if (opts.initImage || opts.mask) throw new Error('img2img and inpainting with Stable Diffusion XL are not supported (StableDiffusionXLImg2ImgPipeline / StableDiffusionXLInpaintPipeline are not built)');
  } else {
    const given = SDXL_OPTIONS.filter((k) => opts[k] !== undefined);
    if (given.length) throw new Error(`${given.join(', ')} apply to Stable Diffusion XL pipelines only (${model.dir} is ${model.pipeline ?? 'StableDiffusionPipeline'})`);
  }

  const nets = model.controlnets ?? [];
  const control = opts.control ?? [];
  if (control.length !== nets.length) {
    throw new Error(nets.length ? `${model.dir} was loaded with ${nets.length} ControlNet${nets.length > 1 ? 's' : ''}: ${nets.length} control input${nets.length > 1 ? 's are' : ' is'} needed, ${control.length} given` : `control inputs were given, but ${model.dir} was loaded without a ControlNet`);
  }
  if (nets.length && (opts.initImage || opts.mask)) throw new Error('ControlNets with img2img or inpainting are not supported (StableDiffusionControlNetImg2ImgPipeline / InpaintPipeline are not built)');
  const weights = control.map((c, k) => {
    const w = { scale: c.scale ?? 1, start: c.start ?? 0, end: c.end ?? 1 };
    checkWeighting(w, `ControlNet ${k}`, (m) => new Error(m));
    const one = 3 * height * width;
    if (c.image.length !== one && c.image.length !== B * one) throw new Error(`ControlNet ${k}'s control image has ${c.image.length} values; expected [3, ${height}, ${width}] or [${B}, 3, ${height}, ${width}] (RGB at the size generated)`);
    return w;
  });

  // LCM-distilled U-Nets: the guidance scale as timestep_cond, and no guidance batch (see the top).
  const condDim = unet.config.timeCondProjDim;
  const guidance = opts.guidanceScale ?? 1;
  const run: TextToImageOptions = condDim !== null ? { ...opts, guidanceScale: 1, guidanceRescale: 0 } : opts;
  const guided = (run.guidanceScale ?? 1) > 1;
  const text = new Graph(rt, 'text-encoder');
  const owned: GPUBuffer[] = [];
  try {
    const cond = model.xl ? await encodeXl(rt, text, owned, model, model.xl, prompts, [height, width], run) : await encodeSd(rt, text, owned, model, prompts, run);
    let timestepCond: Tensor | undefined;
    if (condDim !== null) {
      const shape = [B, condDim];
      timestepCond = { buffer: rt.upload(guidanceScaleEmbedding(guidance - 1, B, condDim), 'timestep_cond'), shape, label: 'timestep_cond' };
      owned.push(timestepCond.buffer);
    }
    // Control images for the U-Net's batch: each image once per prompt (or as given per prompt),
    // and again for the guidance half, as prepare_image's repeat_interleave and cat([image] * 2).
    const rows = guided ? 2 * B : B;
    const images = control.map((c, k): Tensor => {
      const one = 3 * height * width;
      const data = new Float32Array(rows * one);
      for (let r = 0; r < rows; r++) data.set(c.image.length === one ? c.image : c.image.subarray((r % B) * one, (r % B + 1) * one), r * one);
      const t: Tensor = { buffer: rt.upload(data, `control_image_${k}`), shape: [rows, 3, height, width], label: `control_image_${k}` };
      owned.push(t.buffer);
      return t;
    });
    const result = await denoise(
      rt,
      {
        batch: B,
        latentChannels: unet.inChannels,
        latentSize: [height / f, width / f],
        vae,
        schedulerConfig: opts.schedulerConfig ? { ...model.schedulerConfig, ...opts.schedulerConfig } : model.schedulerConfig,
        // ControlNet k's scale × keep of each call, in the step row (see controlnet.ts).
        ...(nets.length ? { rowExtra: { width: nets.length, values: (i: number, n: number) => weights.map((w) => w.scale * controlKeep(i, n, w.start, w.end)) } } : {}),
        planUnet: (g, input, row, extraAt) => {
          const t = { timesteps: row, broadcast: true };
          // Every net on the U-Net's own input and text states (guess_mode off), before the U-Net.
          const residuals: ControlResiduals[] = nets.map((net, k) => ({ ...net.forward(g, input, t, cond.context, images[k]!), scale: { buffer: row, index: extraAt + k } }));
          const eps = unet.forward(g, input, { ...t, ...cond.added, ...(timestepCond ? { timestepCond } : {}) }, cond.context, residuals);
          for (const r of residuals) g.release(...r.down, r.mid);
          return eps;
        },
      },
      run,
    );
    return { ...result, truncated: cond.truncated };
  } finally {
    text.destroy();
    for (const b of owned) rt.destroyBuffer(b);
  }
}

/**
 * diffusers' get_guidance_scale_embedding(w, embedding_dim) for `batch` rows of one w (the
 * pipelines pass guidance_scale − 1): VDM's sinusoidal embedding of w·1000, [sin | cos] over
 * half = dim // 2 frequencies exp(−i·ln(10000)/(half − 1)), zero-padded to an odd dim. In float32
 * as torch computes it on the host. [batch, dim], row-major.
 */
export function guidanceScaleEmbedding(w: number, batch: number, dim: number): Float32Array {
  const f = Math.fround;
  const half = Math.floor(dim / 2);
  // half − 1 = 0 divides by zero in diffusers too (NaN embeddings): no real model has so few.
  if (!Number.isInteger(dim) || half < 2) throw new Error(`time_cond_proj_dim ${dim} is too small for a guidance scale embedding (at least 4)`);
  // torch.tensor(guidance_scale - 1) is float32; then w * 1000.0 in float32.
  const w1000 = f(f(w) * 1000);
  const step = f(f(Math.log(10000)) / (half - 1));
  const row = new Float32Array(dim);
  for (let i = 0; i < half; i++) {
    const x = f(w1000 * f(Math.exp(f(i * -step))));
    row[i] = Math.sin(x);
    row[half + i] = Math.cos(x);
  }
  const out = new Float32Array(batch * dim);
  for (let b = 0; b < batch; b++) out.set(row, b * dim);
  return out;
}

interface Conditioning {
  /** encoder_hidden_states [B or 2B, T, D], [cond, uncond] */
  context: Tensor;
  /** SDXL's added_cond_kwargs, the same batch order. */
  added: { textEmbeds?: Tensor; timeIds?: Tensor };
  truncated: string[];
}

/** StableDiffusionPipeline.encode_prompt: one encoder, last_hidden_state (or clip skip). */
async function encodeSd(rt: Runtime, text: Graph, owned: GPUBuffer[], model: SdModel, prompts: string[], opts: TextToImageOptions): Promise<Conditioning> {
  const { textEncoder, tokenizer } = model;
  const B = prompts.length;
  const cfg = (opts.guidanceScale ?? 1) > 1;
  const negatives = asList(opts.negativePrompt ?? '', B, 'negative prompts');
  const encoded = prompts.map((p) => tokenizer.encode(p));
  const uncond = cfg ? negatives.map((p) => tokenizer.encode(p)) : [];
  const rows = [...encoded, ...uncond].map((e) => e.ids);
  const T = tokenizer.maxLength;
  const ids = uploadIds(rt, rows.flat(), textEncoder.vocabSize, 'input_ids');
  owned.push(ids.buffer);
  const { lastHiddenState: context, penultimate } = textEncoder.encode(text, { ...ids, shape: [rows.length, T] }, { clipSkip: opts.clipSkip ?? 0 });
  text.release(penultimate);
  text.finalize();
  await compileStage(rt, 'text encoder', opts.onCompile);
  text.submit('text encoder');
  await rt.assertHealthy();
  if (opts.traceText) {
    const states = await rt.read(context.buffer, numel(context.shape) * 4);
    const half = B * T * textEncoder.hiddenSize;
    opts.traceText({
      ids: encoded.map((e) => e.ids),
      uncondIds: cfg ? uncond.map((e) => e.ids) : null,
      promptEmbeds: states.slice(0, half),
      negativePromptEmbeds: cfg ? states.slice(half) : null,
    });
  }
  return { context, added: {}, truncated: prompts.filter((_, i) => encoded[i]!.truncated) };
}

function checkSize(v: Size | undefined, name: string): void {
  if (v === undefined) return;
  if (!Array.isArray(v) || v.length !== 2 || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) throw new Error(`${name} must be (height, width): two finite numbers, got ${JSON.stringify(v)}`);
}

/**
 * StableDiffusionXLPipeline.encode_prompt and _get_add_time_ids: the concatenated states, the
 * pooled embeddings and the time ids, [cond, uncond] when guided.
 */
async function encodeXl(rt: Runtime, text: Graph, owned: GPUBuffer[], model: SdModel, xl: SdxlParts, prompts: string[], [height, width]: Size, opts: TextToImageOptions): Promise<Conditioning> {
  const B = prompts.length;
  const cfg = (opts.guidanceScale ?? 1) > 1;
  for (const k of SDXL_SIZE_OPTIONS) checkSize(opts[k], k);
  const clipSkip = opts.clipSkip ?? 0;
  // diffusers' `prompt_2 or prompt` and `negative_prompt_2 or negative_prompt`: "" (or an empty
  // list) falls back too; a list is taken as it is, "" entries included.
  const orElse = (v: string | string[] | undefined, fallback: string[], what: string) => (v === undefined || v.length === 0 ? fallback : asList(v, B, what));
  const prompts2 = orElse(opts.prompt2, prompts, 'prompt2');
  // force_zeros_for_empty_prompt applies when negative_prompt is None, whatever negative_prompt_2 is.
  const zeros = cfg && opts.negativePrompt === undefined && xl.forceZerosForEmptyPrompt;
  const encodeNegative = cfg && !zeros;
  const negatives = asList(opts.negativePrompt ?? '', B, 'negative prompts');
  const negatives2 = orElse(opts.negativePrompt2, negatives, 'negativePrompt2');

  const te1 = model.textEncoder;
  const te2 = xl.textEncoder2;
  const T = model.tokenizer.maxLength;
  const D = te1.hiddenSize + te2.hiddenSize;
  const P = te2.projectionDim;
  const tok = (t: CLIPTokenizer, list: string[]) => list.map((p) => t.encode(p));
  const cond = [tok(model.tokenizer, prompts), tok(xl.tokenizer2, prompts2)] as const;
  const uncond = encodeNegative ? ([tok(model.tokenizer, negatives), tok(xl.tokenizer2, negatives2)] as const) : null;

  const upload = (rows: number[][], num: number, label: string, shape: number[]): Tensor => {
    const t = uploadIds(rt, rows.flat(), num, label);
    owned.push(t.buffer);
    return { ...t, shape };
  };
  /** Both encoders on one half: hidden_states[-(2 + skip)] concatenated per token [R·T, D], and text_embeds [R, P]. */
  const encodeHalf = ([e1, e2]: readonly [Encoded[], Encoded[]], skip: number, label: string): { states: Tensor; pooled: Tensor } => {
    const R = e1.length;
    const rows1 = e1.map((e) => e.ids);
    const rows2 = e2.map((e) => e.ids);
    const o1 = te1.encode(text, upload(rows1, te1.vocabSize, `${label}_input_ids`, [R, T]), { stateSkip: skip });
    const pool = upload([te2.poolRows(rows2)], R * T, `${label}_pool_rows`, [R]);
    const o2 = te2.encode(text, upload(rows2, te2.vocabSize, `${label}_input_ids_2`, [R, T]), { stateSkip: skip, pool });
    text.release(o1.lastHiddenState, o2.lastHiddenState);
    const states = concatChannels(text, `${label}_prompt_embeds`, { ...o1.penultimate, shape: [R * T, te1.hiddenSize] }, { ...o2.penultimate, shape: [R * T, te2.hiddenSize] });
    text.release(o1.penultimate, o2.penultimate);
    return { states, pooled: o2.textEmbeds! };
  };
  const c = encodeHalf(cond, clipSkip, 'cond');
  // v0.25.1 encodes the negative prompt from hidden_states[-2] whatever clip_skip is.
  const u = uncond ? encodeHalf(uncond, 0, 'uncond') : null;
  const zeroTensor = (n: number, label: string): Tensor => {
    const buffer = rt.upload(new Float32Array(n), label);
    owned.push(buffer);
    return { buffer, shape: [n], label };
  };
  const negStates = u ? u.states : zeros ? zeroTensor(B * T * D, 'zero_negative_prompt_embeds') : null;
  const negPooled = u ? u.pooled : zeros ? zeroTensor(B * P, 'zero_negative_pooled_prompt_embeds') : null;
  /** [cond; uncond] along the batch: flat views concatenated. */
  const stack = (a: Tensor, b: Tensor | null, shape: number[], label: string): Tensor => {
    if (!b) return { ...a, shape };
    const flat = (t: Tensor): Tensor => ({ ...t, shape: [1, numel(t.shape)] });
    const out = concatChannels(text, label, flat(a), flat(b));
    // The zero tensors are not the graph's: release leaves them alone.
    text.release(a, b);
    return { ...out, shape };
  };
  const rowsTotal = cfg ? 2 * B : B;
  const context = stack(c.states, negStates, [rowsTotal, T, D], 'prompt_embeds');
  const textEmbeds = stack(c.pooled, negPooled, [rowsTotal, P], 'add_text_embeds');

  // _get_add_time_ids: original_size + crops_coords_top_left + target_size, (h, w) each.
  const timeIds = (o: Size | undefined, crop: Size | undefined, target: Size | undefined) => [...(o ?? [height, width]), ...(crop ?? [0, 0]), ...(target ?? [height, width])];
  const pos = timeIds(opts.originalSize, opts.cropsCoordsTopLeft, opts.targetSize);
  const neg = opts.negativeOriginalSize && opts.negativeTargetSize ? timeIds(opts.negativeOriginalSize, opts.negativeCropsCoordsTopLeft, opts.negativeTargetSize) : pos;
  if (pos.length !== SDXL_TIME_IDS) throw new Error(`time ids: ${pos.length} values, expected ${SDXL_TIME_IDS}`);
  // diffusers builds cat([negative_add_time_ids, add_time_ids]).repeat(batch, 1): its rows alternate
  // negative, positive while its embeddings are [B negative rows, B positive rows], so for B > 1 with
  // distinct negative time ids, its row r gets the negative ids exactly when r is even. The same
  // rows, in Fresco's [cond, uncond] order (Fresco row j is diffusers row B + j, then j - B):
  const rowIds = Array.from({ length: rowsTotal }, (_, j) => {
    if (!cfg) return pos;
    const r = j < B ? B + j : j - B;
    return r % 2 === 0 ? neg : pos;
  });
  const timeIdsT: Tensor = { buffer: rt.upload(Float32Array.from(rowIds.flat()), 'add_time_ids'), shape: [rowsTotal, SDXL_TIME_IDS], label: 'add_time_ids' };
  owned.push(timeIdsT.buffer);

  text.finalize();
  await compileStage(rt, 'text encoder', opts.onCompile);
  text.submit('text encoders');
  await rt.assertHealthy();
  if (opts.traceText) {
    const states = await rt.read(context.buffer, numel(context.shape) * 4);
    const pooled = await rt.read(textEmbeds.buffer, numel(textEmbeds.shape) * 4);
    const [half, halfP] = [B * T * D, B * P];
    opts.traceText({
      ids: cond[0].map((e) => e.ids),
      uncondIds: uncond ? uncond[0].map((e) => e.ids) : null,
      ids2: cond[1].map((e) => e.ids),
      uncondIds2: uncond ? uncond[1].map((e) => e.ids) : null,
      promptEmbeds: states.slice(0, half),
      negativePromptEmbeds: cfg ? states.slice(half) : null,
      pooledPromptEmbeds: pooled.slice(0, halfP),
      negativePooledPromptEmbeds: cfg ? pooled.slice(halfP) : null,
      addTimeIds: pos,
      negativeAddTimeIds: cfg ? neg : null,
      unetTimeIds: rowIds,
    });
  }
  const truncated = prompts.filter((_, i) => cond[0][i]!.truncated || cond[1][i]!.truncated);
  return { context, added: { textEmbeds, timeIds: timeIdsT }, truncated };
}


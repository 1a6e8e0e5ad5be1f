// Text-to-image, as diffusers' StableDiffusionPipeline: the prompt and the negative prompt (""
// when none) are tokenized and encoded once by the CLIP text encoder; the U-Net then runs the
// shared denoising loop (src/pipelines/denoise.ts) with those states as encoder_hidden_states,
// both halves of classifier-free guidance in one batch. Fresco orders that batch [cond, uncond]
// (diffusers: [uncond, cond]); each half is computed independently, so only the order differs.
import type { Runtime } from '../gpu/runtime.ts';
import { Graph } from '../graph/graph.ts';
import { numel, type Tensor } from '../graph/tensor.ts';
import { uploadIds } from '../kernels/embedding.ts';
import { denoise, type DenoiseOptions, type GenerationResult } from './denoise.ts';
import type { SdModel } from './sd_folder.ts';

export interface TextToImageOptions extends DenoiseOptions {
  /** One prompt per image. */
  prompt: string | string[];
  /** The unconditional half of guidance: one per prompt, or one for all (default ""). */
  negativePrompt?: string | string[];
  /** Image size in pixels, multiples of the VAE's scale factor (default: the U-Net's sample_size times it). */
  height?: number;
  width?: number;
  /** diffusers' clip_skip: use the states this many layers before the last (through the final norm). */
  clipSkip?: number;
  /** Reads back the token ids and the text states before the loop (for conformance checks). */
  traceText?: (t: TextTrace) => void;
}

export interface TextTrace {
  ids: number[][];
  /** Present when guidance runs (guidance scale > 1). */
  uncondIds: number[][] | null;
  /** [B, T, D] */
  promptEmbeds: Float32Array;
  negativePromptEmbeds: Float32Array | null;
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

export async function generateFromText(rt: Runtime, model: SdModel, opts: TextToImageOptions): Promise<TextToImageResult> {
  const { unet, vae, textEncoder, tokenizer } = model;
  const prompts = typeof opts.prompt === 'string' ? [opts.prompt] : opts.prompt;
  const B = prompts.length;
  if (B === 0) throw new Error('at least one prompt is needed');
  const cfg = (opts.guidanceScale ?? 1) > 1;
  const negatives = asList(opts.negativePrompt ?? '', B, 'negative prompts');
  const f = vae.scaleFactor;
  const height = opts.height ?? unet.sampleSize * f;
  const width = opts.width ?? unet.sampleSize * f;
  for (const [name, v] of [['height', height], ['width', width]] as const) {
    if (!Number.isInteger(v) || v <= 0 || v % f !== 0) throw new Error(`${name} ${v} must be a positive multiple of ${f} (the VAE's scale factor)`);
  }

  const encoded = prompts.map((p) => tokenizer.encode(p));
  const uncond = cfg ? negatives.map((p) => tokenizer.encode(p)) : [];
  const rows = [...encoded, ...uncond].map((e) => e.ids);
  const T = tokenizer.maxLength;
  const text = new Graph(rt, 'text-encoder');
  const ids = uploadIds(rt, rows.flat(), textEncoder.vocabSize, 'input_ids');
  try {
    const { lastHiddenState: context, penultimate } = textEncoder.encode(text, { ...ids, shape: [rows.length, T] }, { clipSkip: opts.clipSkip ?? 0 });
    text.release(penultimate);
    text.finalize();
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
    const result = await denoise(
      rt,
      {
        batch: B,
        latentChannels: unet.inChannels,
        latentSize: [height / f, width / f],
        vae,
        schedulerConfig: model.schedulerConfig,
        planUnet: (g, input, row) => unet.forward(g, input, { timesteps: row, broadcast: true }, context as Tensor),
      },
      opts,
    );
    return { ...result, truncated: prompts.filter((_, i) => encoded[i]!.truncated) };
  } finally {
    text.destroy();
    rt.destroyBuffer(ids.buffer);
  }
}

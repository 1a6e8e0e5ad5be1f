// Replays a diffusers pipeline run (pipeline.json + trace.safetensors) from its initial latents
// and compares every step's guided eps and latents, the final latents and the decoded image.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Runtime } from '../gpu/runtime.ts';
import { readJson } from '../io/model_folder.ts';
import { readSafetensorsFile, toFloat32, toInt64Numbers, type HostTensor } from '../io/safetensors.ts';
import { generateClassConditional, type GenerationResult } from '../pipelines/class_conditional.ts';
import { loadLdmFolder } from '../pipelines/ldm_folder.ts';
import { loadSdFolder, type SdModel } from '../pipelines/sd_folder.ts';
import { readLoraLayers } from '../io/lora_file.ts';
import { readInversionFile } from '../io/textual_inversion.ts';
import { LoraSet, type LoraMode } from '../models/lora.ts';
import { addTextualInversion } from '../pipelines/textual_inversion.ts';
import { generateFromText, type ControlInput } from '../pipelines/text_to_image.ts';
import { controlKeep } from '../pipelines/controlnet.ts';
import { controlImageTensor } from '../generate_options.ts';
import { resizeRgba } from '../io/image_input.ts';
import { decodePng } from '../io/png.ts';
import { schedulerNameOf } from '../schedulers/scheduler.ts';
import { formatTol, measure, worst, type Measured } from './measure.ts';
import { boundOf, toleranceOf } from './model_case.ts';
import type { Precision, WeightFormat } from '../models/precision.ts';
import { timestepsAgree } from './scheduler_case.ts';

const projectWeights = resolve(dirname(fileURLToPath(import.meta.url)), '../../weights');

export function findModelFolder(caseDir: string, name: string): string {
  for (const candidate of [join(dirname(resolve(caseDir)), name), join(projectWeights, name)]) {
    if (existsSync(join(candidate, 'unet'))) return candidate;
  }
  throw new Error(`model '${name}' not found beside ${caseDir} or in ${projectWeights}`);
}

/** A ControlNet folder (config.json) beside the case or in weights/. */
function findControlNetFolder(caseDir: string, name: string): string {
  for (const candidate of [join(dirname(resolve(caseDir)), name), join(projectWeights, name)]) {
    if (existsSync(join(candidate, 'config.json'))) return candidate;
  }
  throw new Error(`ControlNet '${name}' not found beside ${caseDir} or in ${projectWeights}`);
}

/**
 * pipeline.json's controlnet entries (StableDiffusionControlNetPipeline traces): each net's folder
 * and its control image, read from the case's PNG and prepared as the library prepares it (RGB,
 * Lanczos to the size generated, / 255).
 */
async function controlInputs(dir: string, spec: Record<string, unknown>, [height, width]: [number, number]): Promise<{ folders: string[]; inputs: ControlInput[] }> {
  const entries = Array.isArray(spec.controlnet) ? (spec.controlnet as Record<string, unknown>[]) : [];
  const folders = entries.map((c) => findControlNetFolder(dir, String(c.model)));
  const inputs = await Promise.all(
    entries.map(async (c) => {
      const png = decodePng(new Uint8Array(await readFile(join(dir, String(c.image)))));
      const image = controlImageTensor(resizeRgba({ width: png.width, height: png.height, data: png.pixels }, width, height));
      return { image, scale: Number(c.conditioning_scale ?? 1), start: Number(c.control_guidance_start ?? 0), end: Number(c.control_guidance_end ?? 1) };
    }),
  );
  return { folders, inputs };
}

/**
 * `epsTol`: the guided noise prediction's own bound, where it differs from the tolerance (f16, guided).
 * `precision` as for runModelCase ('auto': the device's own path). `loraMode`: how a trace's LoRAs
 * are applied (merged into the weights, or unfused in the GEMMs' epilogues); the trace is the same.
 * `weights`: the folder loaders' option (the denoiser's GEMM weights 'q8' / 'q4', as loadModel's
 * `weights`); quantized, the run is held to no bound (boundOf) and its ratios are only reported.
 */
export async function runPipelineCase(rt: Runtime, dir: string, precision: Precision = 'f32', loraMode: LoraMode = 'fused', weights?: WeightFormat): Promise<Measured & { cls: string; detail: string; epsTol?: number }> {
  const stored = toleranceOf(rt, precision);
  const tol = boundOf(rt, precision, weights);
  const spec = await readJson(`${dir}/pipeline.json`);
  if (spec.kind === 'text-to-image') return runTextPipelineCase(rt, dir, spec, precision, loraMode, weights);
  const get = await readTrace(dir);
  const model = await loadLdmFolder(rt, findModelFolder(dir, String(spec.model)), { precision, ...(weights ? { weights } : {}) });
  const guidance = Number(spec.guidance_scale);
  const checks = traceChecks(get, tol, guidedEpsTol(tol, stored, guidance), 'eps');
  try {
    const result = await generateClassConditional(rt, model, {
      classLabels: spec.class_labels as number[],
      nullClass: spec.null_class as number,
      guidanceScale: guidance,
      steps: Number(spec.steps),
      scheduler: traceScheduler(spec),
      eta: Number(spec.eta ?? 0),
      latents: toFloat32(get('latents_init')),
      trace: checks.trace,
    });
    return checks.finish('pipeline', result);
  } finally {
    model.destroy();
  }
}

/** A trace entry by key (an error when absent); has(k) says whether it is there. */
type Trace = ((k: string) => HostTensor) & { has(k: string): boolean };

/** pipeline.json's scheduler: a diffusers class name, possibly followed by a remark ("DDIMScheduler (from ...)"). */
function traceScheduler(spec: Record<string, unknown>) {
  return schedulerNameOf({ _class_name: String(spec.scheduler ?? '').split(/[\s(]/)[0] });
}

async function readTrace(dir: string): Promise<Trace> {
  const trace = await readSafetensorsFile(`${dir}/trace.safetensors`);
  const get = (k: string) => {
    const t = trace.get(k);
    if (!t) throw new Error(`${dir}/trace.safetensors has no '${k}'`);
    return t;
  };
  return Object.assign(get, { has: (k: string) => trace.has(k) });
}

/**
 * Guidance amplifies the eps error: (1 + g)·cond − g·uncond carries up to (1 + 2g) times each
 * branch's error. f32 meets its bound without this allowance; f16's rounding (1e-3 per branch)
 * does not, so in f16 the guided eps alone gets it. Latents and the image keep `tol`.
 */
function guidedEpsTol(tol: number, precision: 'f32' | 'f16', guidance: number): number {
  return precision === 'f16' ? tol * (1 + 2 * Math.abs(guidance)) : tol;
}

/**
 * The checks of a pipeline trace: every step's guided eps (trace key step{i}_<epsKey>) and latents
 * as the loop runs, then the timesteps exactly, the final latents and the image.
 */
function traceChecks(get: Trace, tol: number, epsTol: number, epsKey: string, firstOnly = false) {
  const eps: Measured[] = [];
  const latents: Measured[] = [];
  return {
    trace(i: number, e: Float32Array, l: Float32Array): void {
      if (firstOnly && i > 0) return;
      eps.push(measure(e, toFloat32(get(`step${i}_${epsKey}`)), epsTol));
      if (!firstOnly) latents.push(measure(l, toFloat32(get(`step${i}_latents`)), tol));
    },
    /** `before`: other named checks (text states) that enter the verdict and lead the detail. */
    finish(cls: string, result: GenerationResult, before: [string, Measured[]][] = []): Measured & { cls: string; detail: string; epsTol?: number } {
      const expectedTs = toInt64Numbers(get('timesteps'));
      if (!timestepsAgree(result.scheduler.timesteps, expectedTs)) {
        return { cls, detail: 'timesteps differ', maxAbsErr: NaN, maxAbsRef: NaN, ratio: Infinity, pass: false, note: `timesteps ${result.scheduler.timesteps.join(',')} != ${expectedTs.join(',')}` };
      }
      const r = (m: Measured) => m.ratio.toExponential(2);
      if (firstOnly) {
        const w = worst([...before.flatMap(([, m]) => m), ...eps]);
        return { cls, ...w, detail: `${[...before.map(([name, m]) => `${name} ${r(worst(m))}`), `step 0 ${epsKey} ${r(worst(eps))}`].join(', ')} (fresh noise each step: the first U-Net call only)` };
      }
      const fin = measure(result.latents, toFloat32(get('latents_final')), tol);
      const img = measure(result.image, toFloat32(get('image')), tol);
      const w = worst([...before.flatMap(([, m]) => m), ...eps, ...latents, fin, img]);
      const parts = [...before.map(([name, m]) => `${name} ${r(worst(m))}`), `image ${r(img)}`, `final latents ${r(fin)}`];
      const bound = epsTol !== tol ? ` (bound ${formatTol(epsTol)})` : '';
      return { cls, ...w, detail: `${parts.join(', ')}, worst step: ${epsKey} ${r(worst(eps))}${bound}, latents ${r(worst(latents))}`, ...(epsTol !== tol ? { epsTol } : {}) };
    },
  };
}

/** pipeline.json's (height, width) pairs of SDXL cases; null or absent: the pipeline's default. */
function sizeOf(v: unknown): [number, number] | undefined {
  return Array.isArray(v) && v.length === 2 ? [Number(v[0]), Number(v[1])] : undefined;
}

function stringOf(v: unknown): string | undefined {
  return v === null || v === undefined ? undefined : String(v);
}

/** A prompt entry: one string, or one per image (SDXL traces with B > 1). */
function promptsOf(v: unknown): string | string[] | undefined {
  return Array.isArray(v) ? v.map(String) : stringOf(v);
}

/**
 * A StableDiffusionPipeline trace (../shared/fixtures-text), or a StableDiffusionXLPipeline one
 * (tests/fixtures/pipeline-sdxl-tiny*): token ids exactly, then the text states (SDXL: also the
 * pooled embeddings, and the time ids exactly), every step's guided noise prediction and latents,
 * the final latents and the image.
 */
async function runTextPipelineCase(rt: Runtime, dir: string, spec: Record<string, unknown>, precision: Precision, loraMode: LoraMode, weights?: WeightFormat): Promise<Measured & { cls: string; detail: string; epsTol?: number }> {
  const stored = toleranceOf(rt, precision);
  const tol = boundOf(rt, precision, weights);
  const scheduler = traceScheduler(spec);
  const get = await readTrace(dir);
  const size: [number, number] = [Number(spec.height), Number(spec.width)];
  const control = await controlInputs(dir, spec, size);
  const model = await loadSdFolder(rt, findModelFolder(dir, String(spec.model)), { precision, ...(weights ? { weights } : {}), ...(control.folders.length ? { controlnets: control.folders } : {}) });
  let loras: LoraSet | null = null;
  try {
    loras = await traceLoras(rt, dir, spec, model, loraMode);
    await traceInversions(dir, spec, model);
  } catch (e) {
    loras?.destroy();
    model.destroy();
    throw e;
  }
  const xl = spec.pipeline === 'StableDiffusionXLPipeline';
  const guidance = Number(spec.guidance_scale);
  // A scheduler that adds fresh noise each step (LCM) drew it from torch's generator: the trace
  // records it (step{i}_noise) but the loop draws its own on the GPU, so only the first U-Net call,
  // before any such noise, can be compared (the scheduler's own math is replayed in tests/schedulers).
  const firstOnly = get.has('step0_noise');
  const checks = traceChecks(get, tol, guidedEpsTol(tol, stored, guidance), 'noise_pred', firstOnly);
  try {
    if (xl !== !!model.xl) throw new Error(`${dir}: the trace is of ${String(spec.pipeline)} but the model folder is a ${model.pipeline ?? 'StableDiffusionPipeline'}`);
    // The control images the ControlNets got (the trace's first rows: the same image for every row).
    const controlImages: Measured[] = control.inputs.map((c, k) => {
      const key = control.inputs.length === 1 ? 'control_image' : `control_image_${k}`;
      return measure(c.image, toFloat32(get(key)).subarray(0, c.image.length), tol);
    });
    const text: Measured[] = [];
    const pooled: Measured[] = [];
    let idsNote = '';
    const xlOptions = xl
      ? {
          prompt2: promptsOf(spec.prompt_2),
          negativePrompt2: promptsOf(spec.negative_prompt_2),
          originalSize: sizeOf(spec.original_size),
          cropsCoordsTopLeft: sizeOf(spec.crops_coords_top_left),
          targetSize: sizeOf(spec.target_size),
          negativeOriginalSize: sizeOf(spec.negative_original_size),
          negativeCropsCoordsTopLeft: sizeOf(spec.negative_crops_coords_top_left),
          negativeTargetSize: sizeOf(spec.negative_target_size),
        }
      : {};
    const result = await generateFromText(rt, model, {
      prompt: promptsOf(spec.prompt)!,
      negativePrompt: promptsOf(spec.negative_prompt),
      ...xlOptions,
      guidanceScale: guidance,
      guidanceRescale: Number(spec.guidance_rescale ?? 0),
      clipSkip: Number(spec.clip_skip ?? 0),
      steps: Number(spec.steps),
      scheduler,
      ...(spec.eta !== null && spec.eta !== undefined ? { eta: Number(spec.eta) } : {}),
      height: size[0],
      width: size[1],
      ...(control.inputs.length ? { control: control.inputs } : {}),
      latents: toFloat32(get('latents_init')),
      // The text traces record prepare_latents' output: init_noise_sigma is already in it.
      latentsScaled: true,
      traceText: (t) => {
        // Every row ([B, 77] in the trace).
        const ids: [string, number[] | undefined][] = [['input_ids', t.ids.flat()], ['uncond_input_ids', t.uncondIds?.flat()]];
        if (xl) ids.push(['input_ids_2', t.ids2?.flat()], ['uncond_input_ids_2', t.uncondIds2?.flat()]);
        for (const [key, got] of ids) {
          // An SDXL trace without a negative prompt (force_zeros_for_empty_prompt), or one without
          // guidance, has no uncond ids.
          const want = !get.has(key) && (xl || !spec.do_classifier_free_guidance) ? undefined : toInt64Numbers(get(key));
          if (JSON.stringify(got) !== JSON.stringify(want)) idsNote += `${key} differ: ${JSON.stringify(got)} != ${JSON.stringify(want)}; `;
        }
        text.push(measure(t.promptEmbeds, toFloat32(get('prompt_embeds')), tol));
        if (t.negativePromptEmbeds) text.push(measure(t.negativePromptEmbeds, toFloat32(get('negative_prompt_embeds')), tol));
        if (xl) {
          pooled.push(measure(t.pooledPromptEmbeds!, toFloat32(get('pooled_prompt_embeds')), tol));
          if (t.negativePooledPromptEmbeds) pooled.push(measure(t.negativePooledPromptEmbeds, toFloat32(get('negative_pooled_prompt_embeds')), tol));
          for (const [key, got] of [['add_time_ids', t.addTimeIds], ['negative_add_time_ids', t.negativeAddTimeIds]] as const) {
            const want = Array.from(toFloat32(get(key)));
            if (got && JSON.stringify(got) !== JSON.stringify(want)) idsNote += `${key} differ: ${JSON.stringify(got)} != ${JSON.stringify(want)}; `;
          }
          // The U-Net's time ids row by row; the trace's rows are in diffusers' [uncond, cond] order.
          if (get.has('unet_time_ids') && t.unetTimeIds) {
            const rows = t.unetTimeIds;
            const half = rows.length / 2;
            const diffusersOrder = rows.length > 1 && t.negativeAddTimeIds ? [...rows.slice(half), ...rows.slice(0, half)] : rows;
            const want = Array.from(toFloat32(get('unet_time_ids')));
            if (JSON.stringify(diffusersOrder.flat()) !== JSON.stringify(want)) idsNote += `unet_time_ids differ: ${JSON.stringify(diffusersOrder)} != ${JSON.stringify(want)}; `;
          }
        }
      },
      trace: checks.trace,
    });
    if (control.inputs.length && get.has('controlnet_scales')) {
      // Each net's scale × keep per U-Net call, as diffusers passed them as conditioning_scale: exactly.
      const n = result.scheduler.timesteps.length;
      const ours = Array.from({ length: n }, (_, i) => control.inputs.map((c) => Math.fround(c.scale! * controlKeep(i, n, c.start!, c.end!))));
      const want = Array.from(toFloat32(get('controlnet_scales')));
      if (JSON.stringify(ours.flat()) !== JSON.stringify(want)) idsNote += `controlnet_scales differ: ${JSON.stringify(ours)} != ${JSON.stringify(want)}; `;
    }
    // Unfused, every adapted weight must have been read by a GEMM that added its term (a model
    // reading one some other way would drop the adapter without a word).
    const unused = loraMode === 'unfused' && loras ? [...loras.attachments()].filter(([, a]) => a.uses === 0).map(([w]) => w) : [];
    if (unused.length) idsNote += `unfused LoRA never applied to ${unused.join(', ')}; `;
    const before: [string, Measured[]][] = xl ? [['text states', text], ['pooled', pooled]] : [['text states', text]];
    if (controlImages.length) before.push(['control images', controlImages]);
    const r = checks.finish(control.inputs.length ? 'text-to-image (ControlNet)' : xl ? 'text-to-image (SDXL)' : 'text-to-image', result, before);
    return idsNote ? { ...r, pass: false, note: idsNote.trim() } : r;
  } finally {
    loras?.destroy();
    model.destroy();
  }
}

/** Fixture paths in pipeline.json (`lora-tiny/x.safetensors`) are relative to the fixtures folder holding the case. */
function fixturePath(dir: string, file: unknown): string {
  return join(dirname(dir), String(file));
}

/**
 * pipeline.json's lora entry (scripts/reference/make_issue14.py): each adapter merged at the
 * scale diffusers ran it with: its set_adapters weight, else fuse_lora's lora_scale, else the
 * cross_attention_kwargs scale, else 1 (every layer then carries alpha / rank, as diffusers').
 */
async function traceLoras(rt: Runtime, dir: string, spec: Record<string, unknown>, model: SdModel, mode: LoraMode): Promise<LoraSet | null> {
  const l = spec.lora as { adapters: { file: string; adapter_name: string; weight?: number }[]; fuse_lora?: { lora_scale: number } | null; cross_attention_scale?: number | null } | undefined;
  if (!l) return null;
  const targets = { unet: model.unet.w, text_encoder: model.textEncoder.w, ...(model.xl ? { text_encoder_2: model.xl.textEncoder2.w } : {}) };
  const set = new LoraSet(rt, targets, model.unet.config.layers[0] ?? null);
  try {
    for (const a of l.adapters) {
      const path = fixturePath(dir, a.file);
      const scale = a.weight ?? l.fuse_lora?.lora_scale ?? l.cross_attention_scale ?? 1;
      await set.load(a.adapter_name, readLoraLayers(await readSafetensorsFile(path), path), scale, path, mode);
    }
  } catch (e) {
    set.destroy();
    throw e;
  }
  return set;
}

/** pipeline.json's textual_inversion entry: each file added under its token, in order. */
async function traceInversions(dir: string, spec: Record<string, unknown>, model: SdModel): Promise<void> {
  const t = spec.textual_inversion as { files: { file: string; token: string }[] } | undefined;
  for (const f of t?.files ?? []) {
    const path = fixturePath(dir, f.file);
    addTextualInversion(model, await readInversionFile(path), f.token, path);
  }
}

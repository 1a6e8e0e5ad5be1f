// Replays a diffusers pipeline run (pipeline.json + trace.safetensors) from its initial latents
// and compares every step's guided eps and latents, the final latents and the decoded image.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Runtime } from '../gpu/runtime.ts';
import { readJson } from '../io/model_folder.ts';
import { readSafetensorsFile, toFloat32, toInt64Numbers, type HostTensor } from '../io/safetensors.ts';
import { generateClassConditional } from '../pipelines/class_conditional.ts';
import { loadLdmFolder } from '../pipelines/ldm_folder.ts';
import { loadSdFolder } from '../pipelines/sd_folder.ts';
import { generateFromText } from '../pipelines/text_to_image.ts';
import { schedulerNameOf } from '../schedulers/scheduler.ts';
import { measure, Unsupported, worst, type Measured } from './measure.ts';
import { TOLERANCE } from './model_case.ts';

const projectWeights = resolve(dirname(fileURLToPath(import.meta.url)), '../../weights');

export function findModelFolder(caseDir: string, name: string): string {
  for (const candidate of [join(dirname(resolve(caseDir)), name), join(projectWeights, name)]) {
    if (existsSync(join(candidate, 'unet'))) return candidate;
  }
  throw new Error(`model '${name}' not found beside ${caseDir} or in ${projectWeights}`);
}

export async function runPipelineCase(rt: Runtime, dir: string, precision: 'f32' | 'f16' = 'f32'): Promise<Measured & { cls: string; detail: string }> {
  const tol = TOLERANCE[precision];
  const spec = await readJson(`${dir}/pipeline.json`);
  if (spec.kind === 'text-to-image') return runTextPipelineCase(rt, dir, spec, precision);
  const sched = String(spec.scheduler ?? '');
  const schedName = /^DDIM/i.test(sched) ? 'ddim' : /^DDPM/i.test(sched) ? 'ddpm' : null;
  if (!schedName) throw new Unsupported(`pipeline scheduler '${sched}' is not supported yet`);
  const trace = await readSafetensorsFile(`${dir}/trace.safetensors`);
  const get = (k: string): HostTensor => {
    const t = trace.get(k);
    if (!t) throw new Error(`${dir}/trace.safetensors has no '${k}'`);
    return t;
  };
  const model = await loadLdmFolder(rt, findModelFolder(dir, String(spec.model)), { precision });
  // Guidance amplifies the eps error: (1 + g)·cond − g·uncond carries up to (1 + 2g) times each
  // branch's error. f32 meets its bound without this allowance; f16's rounding (1e-3 per branch
  // here) does not, so in f16 the guided eps alone gets it. Latents and the image keep `tol`.
  const epsTol = precision === 'f16' ? tol * (1 + 2 * Math.abs(Number(spec.guidance_scale))) : tol;
  try {
    const steps = Number(spec.steps);
    const epsSteps: Measured[] = [];
    const latentSteps: Measured[] = [];
    const result = await generateClassConditional(rt, model, {
      classLabels: spec.class_labels as number[],
      nullClass: spec.null_class as number,
      guidanceScale: Number(spec.guidance_scale),
      steps,
      scheduler: schedName,
      eta: Number(spec.eta ?? 0),
      latents: toFloat32(get('latents_init')),
      trace: (i, eps, latents) => {
        epsSteps.push(measure(eps, toFloat32(get(`step${i}_eps`)), epsTol));
        latentSteps.push(measure(latents, toFloat32(get(`step${i}_latents`)), tol));
      },
    });
    const expectedTs = toInt64Numbers(get('timesteps'));
    if (JSON.stringify(expectedTs) !== JSON.stringify(result.scheduler.timesteps)) {
      return { cls: 'pipeline', detail: 'timesteps differ', maxAbsErr: NaN, maxAbsRef: NaN, ratio: Infinity, pass: false, note: `timesteps ${result.scheduler.timesteps.join(',')} != ${expectedTs.join(',')}` };
    }
    const fin = measure(result.latents, toFloat32(get('latents_final')), tol);
    const img = measure(result.image, toFloat32(get('image')), tol);
    const w = worst([...epsSteps, ...latentSteps, fin, img]);
    const r = (m: Measured) => m.ratio.toExponential(2);
    return { cls: 'pipeline', ...w, detail: `image ratio ${r(img)}, final latents ${r(fin)}, worst step: guided eps ${r(worst(epsSteps))}${epsTol !== tol ? ` (bound ${epsTol.toExponential(0)})` : ''}, latents ${r(worst(latentSteps))}` };
  } finally {
    model.destroy();
  }
}

type Trace = (k: string) => HostTensor;

async function readTrace(dir: string): Promise<Trace> {
  const trace = await readSafetensorsFile(`${dir}/trace.safetensors`);
  return (k) => {
    const t = trace.get(k);
    if (!t) throw new Error(`${dir}/trace.safetensors has no '${k}'`);
    return t;
  };
}

/**
 * A StableDiffusionPipeline trace (../shared/fixtures-text): token ids exactly, then the text
 * states, every step's guided noise prediction and latents, the final latents and the image.
 */
async function runTextPipelineCase(rt: Runtime, dir: string, spec: Record<string, unknown>, precision: 'f32' | 'f16'): Promise<Measured & { cls: string; detail: string }> {
  const tol = TOLERANCE[precision];
  const scheduler = schedulerNameOf({ _class_name: spec.scheduler });
  const get = await readTrace(dir);
  const model = await loadSdFolder(rt, findModelFolder(dir, String(spec.model)), { precision });
  const guidance = Number(spec.guidance_scale);
  const epsTol = precision === 'f16' ? tol * (1 + 2 * Math.abs(guidance)) : tol;
  try {
    const text: Measured[] = [];
    let idsNote = '';
    const epsSteps: Measured[] = [];
    const latentSteps: Measured[] = [];
    const result = await generateFromText(rt, model, {
      prompt: String(spec.prompt),
      negativePrompt: spec.negative_prompt === null || spec.negative_prompt === undefined ? undefined : String(spec.negative_prompt),
      guidanceScale: guidance,
      guidanceRescale: Number(spec.guidance_rescale ?? 0),
      clipSkip: Number(spec.clip_skip ?? 0),
      steps: Number(spec.steps),
      scheduler,
      ...(spec.eta !== null && spec.eta !== undefined ? { eta: Number(spec.eta) } : {}),
      height: Number(spec.height),
      width: Number(spec.width),
      latents: toFloat32(get('latents_init')),
      // The text traces record prepare_latents' output: init_noise_sigma is already in it.
      latentsScaled: true,
      traceText: (t) => {
        for (const [key, got] of [['input_ids', t.ids[0]], ['uncond_input_ids', t.uncondIds?.[0]]] as const) {
          const want = toInt64Numbers(get(key));
          if (JSON.stringify(got) !== JSON.stringify(want)) idsNote += `${key} differ: ${JSON.stringify(got)} != ${JSON.stringify(want)}; `;
        }
        text.push(measure(t.promptEmbeds, toFloat32(get('prompt_embeds')), tol));
        if (t.negativePromptEmbeds) text.push(measure(t.negativePromptEmbeds, toFloat32(get('negative_prompt_embeds')), tol));
      },
      trace: (i, eps, latents) => {
        epsSteps.push(measure(eps, toFloat32(get(`step${i}_noise_pred`)), epsTol));
        latentSteps.push(measure(latents, toFloat32(get(`step${i}_latents`)), tol));
      },
    });
    const expectedTs = toInt64Numbers(get('timesteps'));
    if (JSON.stringify(expectedTs) !== JSON.stringify(result.scheduler.timesteps)) {
      return { cls: 'text-to-image', detail: 'timesteps differ', maxAbsErr: NaN, maxAbsRef: NaN, ratio: Infinity, pass: false, note: `timesteps ${result.scheduler.timesteps.join(',')} != ${expectedTs.join(',')}` };
    }
    const fin = measure(result.latents, toFloat32(get('latents_final')), tol);
    const img = measure(result.image, toFloat32(get('image')), tol);
    const w = worst([...text, ...epsSteps, ...latentSteps, fin, img]);
    const r = (m: Measured) => m.ratio.toExponential(2);
    const detail = `text states ${r(worst(text))}, image ${r(img)}, final latents ${r(fin)}, worst step: noise_pred ${r(worst(epsSteps))}${epsTol !== tol ? ` (bound ${epsTol.toExponential(0)})` : ''}, latents ${r(worst(latentSteps))}`;
    if (idsNote) return { cls: 'text-to-image', ...w, pass: false, note: idsNote.trim(), detail };
    return { cls: 'text-to-image', ...w, detail };
  } finally {
    model.destroy();
  }
}

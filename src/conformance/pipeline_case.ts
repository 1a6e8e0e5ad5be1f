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

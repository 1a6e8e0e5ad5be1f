// Few-step models end to end on the tiny SD fixture: the turbo preset runs one Euler-ancestral
// step from t = 999 (trailing spacing) with one U-Net call at batch 1 (guidance 0: no
// unconditional half), and generate() takes exactly those settings from the preset; an
// LCM-distilled U-Net (time_cond_proj_dim) gets diffusers' guidance embedding of guidance − 1 as
// timestep_cond, at the prompts' batch (no guidance batch) — checked against a float64 reference.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate, loadModel, type Model } from '../../src/api.ts';
import type { Tensor } from '../../src/graph/tensor.ts';
import type { TimestepInput } from '../../src/models/embeddings.ts';
import { parseSafetensors, writeSafetensors } from '../../src/io/safetensors.ts';
import { randomWeight } from '../../src/io/random_weights.ts';
import type { SdModel } from '../../src/pipelines/sd_folder.ts';
import { generateFromText, guidanceScaleEmbedding, type TextTrace } from '../../src/pipelines/text_to_image.ts';
import { guidanceScaleEmbeddingRef } from '../ref/guidance_embedding.ts';

const models: Model[] = [];
const temps: string[] = [];
afterAll(() => {
  models.forEach((m) => m.destroy());
  temps.forEach((d) => rmSync(d, { recursive: true, force: true }));
});

interface UnetCall {
  batch: number;
  timestepCond?: Tensor;
  values?: Promise<Float32Array>;
}

/** Records each U-Net forward the pipeline plans (its batch, and timestep_cond read back as uploaded). */
function spyUnet(model: Model): UnetCall[] {
  const sd = (model.loaded as { sd: SdModel }).sd;
  const calls: UnetCall[] = [];
  const forward = sd.unet.forward.bind(sd.unet);
  sd.unet.forward = (g, sample, t: TimestepInput, context) => {
    const c = t.timestepCond;
    // The copy is queued now, while the uploaded buffer is alive; it is read after the run.
    calls.push({ batch: sample.shape[0]!, ...(c ? { timestepCond: c, values: model.rt.read(c.buffer) } : {}) });
    return forward(g, sample, t, context);
  };
  return calls;
}

describe('guidanceScaleEmbedding (diffusers get_guidance_scale_embedding)', () => {
  it('equals the float64 formula: hand-checked small cases, odd widths padded, rows repeated', () => {
    // w = 1, dim 4: half 2, frequencies 1 and 10^-4, so [sin 1000, sin 0.1, cos 1000, cos 0.1].
    const e = guidanceScaleEmbedding(1, 2, 4);
    const want = [Math.sin(1000), Math.sin(0.1), Math.cos(1000), Math.cos(0.1)];
    for (const row of [0, 1]) want.forEach((v, i) => expect(e[row * 4 + i]).toBeCloseTo(v, 6));
    // w = 0 (guidance 1): sin 0 and cos 0; dim 5 ends in a zero.
    expect(Array.from(guidanceScaleEmbedding(0, 1, 5))).toEqual([0, 0, 1, 1, 0]);
    // LCM_Dreamshaper's width (256) at its default guidance 8.5 (w = 7.5). torch computes the
    // arguments x = w·1000·exp(−i·s) in float32: the exponent y = i·s (up to ln 10000 ≈ 9.2) is
    // rounded, which exp turns into a relative error of |y|·2^-24 in x, plus an ulp or so for each
    // other operation. So the sines differ from float64's by up to x·(|y| + 4)·2^-24 (4e-3 at
    // x = 7500), and the small arguments agree to float32 rounding.
    const got = guidanceScaleEmbedding(7.5, 1, 256);
    const ref = guidanceScaleEmbeddingRef(7.5, 256);
    for (let i = 0; i < 128; i++) {
      const y = (i * Math.log(10000)) / 127;
      const x = 7500 * Math.exp(-y);
      const tol = 1e-6 + x * (y + 4) * 2 ** -24;
      expect(Math.abs(got[i]! - ref[i]!)).toBeLessThanOrEqual(tol);
      expect(Math.abs(got[128 + i]! - ref[128 + i]!)).toBeLessThanOrEqual(tol);
    }
    expect(() => guidanceScaleEmbedding(1, 1, 3)).toThrow(/too small/);
  });
});

describe('the turbo preset (one step, no guidance)', () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel('tests/fixtures/sd-tiny', { precision: 'f32', preset: 'sd-turbo' });
    models.push(model);
  });

  it('generate() runs one U-Net call at batch 1 from t = 999, as the preset says', async () => {
    expect(model.info.preset).toMatchObject({ name: 'sd-turbo', source: 'option' });
    expect(model.defaults).toEqual({ steps: 1, guidance: 0, scheduler: 'euler-a' });
    const calls = spyUnet(model);
    const r = await generate(model, { prompt: 'a lighthouse', seed: 7 });
    expect(r.steps).toBe(1);
    expect(r.stepMs).toHaveLength(1);
    expect(calls.length).toBeGreaterThan(0);
    expect(calls.every((c) => c.batch === 1 && !c.timestepCond)).toBe(true);

    // The same run through the pipeline with the preset spelt out: the same pixels, Euler
    // ancestral at t = 999 (trailing), and no negative prompt encoded.
    const sd = (model.loaded as { sd: SdModel }).sd;
    let trace: TextTrace | undefined;
    const direct = await generateFromText(model.rt, sd, { prompt: 'a lighthouse', seed: 7, steps: 1, guidanceScale: 0, scheduler: 'euler-a', schedulerConfig: { timestep_spacing: 'trailing' }, traceText: (t) => (trace = t) });
    expect(direct.scheduler.name).toBe('euler-a');
    expect(direct.scheduler.timesteps).toEqual([999]);
    expect(trace!.uncondIds).toBeNull();
    expect(trace!.negativePromptEmbeds).toBeNull();
    expect(Array.from(r.raw)).toEqual(Array.from(direct.image));
    // Without the override this fixture's leading spacing would start at t = 1 (a near-clean image).
    const leading = await generateFromText(model.rt, sd, { prompt: 'a lighthouse', seed: 7, steps: 1, guidanceScale: 0, scheduler: 'euler-a' });
    expect(leading.scheduler.timesteps).toEqual([1]);
  });
});

describe('an LCM-distilled U-Net (time_cond_proj_dim)', () => {
  let model: Model;
  const condDim = 8;
  beforeAll(async () => {
    // sd-tiny with time_cond_proj_dim and a time_embedding.cond_proj.weight [32, 8] (random).
    const dir = mkdtempSync(join(tmpdir(), 'fresco-lcm-'));
    temps.push(dir);
    cpSync('tests/fixtures/sd-tiny', dir, { recursive: true });
    const config = JSON.parse(readFileSync(join(dir, 'unet/config.json'), 'utf8'));
    writeFileSync(join(dir, 'unet/config.json'), JSON.stringify({ ...config, time_cond_proj_dim: condDim }));
    const file = join(dir, 'unet/diffusion_pytorch_model.safetensors');
    const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: ArrayBufferView }> = {};
    for (const [name, t] of parseSafetensors(new Uint8Array(readFileSync(file)), file)) tensors[name] = { dtype: t.dtype as 'F32', shape: t.shape, data: t.bytes };
    const shape = [config.block_out_channels[0], condDim];
    tensors['time_embedding.cond_proj.weight'] = { dtype: 'F32', shape, data: randomWeight('cond_proj', shape, 1) };
    writeFileSync(file, writeSafetensors(tensors));
    model = await loadModel(dir, { precision: 'f32' });
    models.push(model);
  });

  it('takes the lcm preset, and gets guidance − 1 as an embedding at the batch of the prompts', async () => {
    expect(model.info).toMatchObject({ preset: { name: 'lcm', source: 'config' }, guidanceEmbedded: true, defaults: { steps: 4, guidance: 8.5, scheduler: 'lcm' } });
    const calls = spyUnet(model);
    const r = await generate(model, { prompt: ['a fox', 'a hen'], seed: 3 });
    expect(r.stepMs).toHaveLength(4);
    expect(calls.length).toBeGreaterThan(0);
    for (const c of calls) {
      expect(c.batch).toBe(2);
      expect(c.timestepCond!.shape).toEqual([2, condDim]);
      // Exactly the host embedding of w = 8.5 − 1 (checked against the formula above), per row.
      expect(Array.from(await c.values!)).toEqual(Array.from(guidanceScaleEmbedding(7.5, 2, condDim)));
    }
    // The scale reaches the image through the embedding alone.
    const low = await generate(model, { prompt: ['a fox', 'a hen'], seed: 3, guidance: 2 });
    expect(low.raw.some((v, i) => v !== r.raw[i])).toBe(true);
  });
});

// Stable Diffusion XL text-to-image on the tiny random-weight StableDiffusionXLPipeline folder
// (tests/fixtures/sdxl-tiny): diffusers v0.25.1's own pipeline traces step by step in f32 and f16
// (scripts/reference/make_sdxl_pipeline.py), text_encoder_2 (CLIPTextModelWithProjection) against
// transformers, tokenizer_2's "!" padding, the VAE's force_upcast, the folder errors, the library
// and the CLI.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generate, loadModel, type GenerateOptions, type Model } from '../../src/api.ts';
import { runModelCase } from '../../src/conformance/model_case.ts';
import { runPipelineCase } from '../../src/conformance/pipeline_case.ts';
import { decodePng } from '../../src/io/png.ts';
import { nodeFolderReader, type FolderReader } from '../../src/io/model_folder.ts';
import { readSafetensorsFile, toFloat32, toInt64Numbers } from '../../src/io/safetensors.ts';
import { Graph } from '../../src/graph/graph.ts';
import { uploadIds } from '../../src/kernels/embedding.ts';
import { poolPositions } from '../../src/models/clip_text_model.ts';
import { loadSdFolder, loadSdFrom, type SdModel } from '../../src/pipelines/sd_folder.ts';
import { generateFromText, type TextTrace } from '../../src/pipelines/text_to_image.ts';
import { CLIPTokenizer } from '../../src/text/clip_tokenizer.ts';
import { hasF16, runtime } from '../helpers/gpu.ts';
import { runFresco } from '../helpers/cli.ts';
import { ConfigError, GenerateOptionsError } from '../../src/errors.ts';

const MODEL = 'tests/fixtures/sdxl-tiny';
const CASES = ['pipeline-sdxl-tiny', 'pipeline-sdxl-tiny-zeros', 'pipeline-sdxl-tiny-clipskip', 'pipeline-sdxl-tiny-batch2'];

const models: SdModel[] = [];
afterAll(() => models.forEach((m) => m.destroy()));
let shared: SdModel | null = null;
async function sdxl(): Promise<SdModel> {
  shared ??= await loadSdFolder(await runtime(), MODEL, { precision: 'f32' });
  return shared;
}
afterAll(() => shared?.destroy());

/** The folder with some files replaced (JSON objects patched, or removed with null). */
function patched(files: Record<string, ((json: Record<string, unknown>) => Record<string, unknown>) | null>): FolderReader {
  const base = nodeFolderReader(MODEL);
  return {
    where: base.where,
    async read(name) {
      if (!(name in files)) return base.read(name);
      const f = files[name];
      if (f === null) return null;
      const json = JSON.parse(new TextDecoder().decode((await base.read(name))!)) as Record<string, unknown>;
      return new TextEncoder().encode(JSON.stringify(f(json)));
    },
  };
}

const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

describe("Stable Diffusion XL: diffusers' StableDiffusionXLPipeline traces (sdxl-tiny)", () => {
  for (const name of CASES) {
    it(`${name}: token ids and time ids exactly, text states, pooled embeddings, every step, latents and image within 1e-3·max|ref|`, async () => {
      const r = await runPipelineCase(await runtime(), `tests/fixtures/${name}`);
      console.log(`${name}: worst ratio ${r.ratio.toExponential(2)} (${r.detail})`);
      expect(r.note).toBeUndefined();
      expect(r.ratio).toBeLessThanOrEqual(1e-3);
      expect(r.pass).toBe(true);
    });
  }

  for (const name of CASES) {
    it(`${name} in f16 (the VAE upcast to f32): within 1e-2·max|ref|, the guided eps within (1 + 2g)·1e-2`, async (ctx) => {
      const rt = await runtime();
      if (!hasF16(rt)) {
        console.warn(`skipped f16 ${name}: the adapter (${rt.gpu.adapterName}) has no shader-f16`);
        ctx.skip();
      }
      const r = await runPipelineCase(rt, `tests/fixtures/${name}`, 'f16');
      console.log(`${name} [f16]: worst ratio ${r.ratio.toExponential(2)} (${r.detail})`);
      expect(r.note).toBeUndefined();
      expect(r.pass).toBe(true);
    });
  }
});

describe('text_encoder_2: CLIPTextModelWithProjection', () => {
  it("text_embeds, last_hidden_state and hidden_states[-2] equal transformers' on tokenizer_2's ids (clip-text-sdxl-tiny)", async () => {
    const rt = await runtime();
    for (const precision of hasF16(rt) ? (['f32', 'f16'] as const) : (['f32'] as const)) {
      const r = await runModelCase(rt, 'tests/fixtures/clip-text-sdxl-tiny', precision);
      console.log(`clip-text-sdxl-tiny [${precision}]: ${r.detail}`);
      expect(r.note).toBeUndefined();
      expect(r.ratio).toBeLessThanOrEqual(precision === 'f32' ? 1e-3 : 1e-2);
      expect(r.pass).toBe(true);
    }
  });

  it("pools transformers' row: the first largest id for the legacy eos_token_id 2, else the first eos_token_id", () => {
    const rows = [
      [49406, 320, 49407, 0, 0],
      [49406, 320, 49407, 49407, 49407],
      [49406, 49407, 5, 49407, 0],
    ];
    expect(poolPositions(rows, 2)).toEqual([2, 2, 1]);
    expect(poolPositions(rows, 49407)).toEqual([2, 2, 1]);
    // A row without the eos id pools row 0 (argmax of all-false), as torch does.
    expect(poolPositions([[49406, 7, 8]], 49407)).toEqual([0]);
    expect(poolPositions([[49406, 7, 8]], 2)).toEqual([0]);
    // The two rules differ when the eos id is not the largest id.
    expect(poolPositions([[1, 9, 4, 9]], 4)).toEqual([2]);
    expect(poolPositions([[1, 9, 4, 9]], 2)).toEqual([1]);
  });
});

describe('tokenizer_2 pads with "!"', () => {
  it("pads with id 0 and splits '!' in a prompt as that token, as transformers does (the clip-text-sdxl-tiny ids)", async () => {
    const tok2 = await CLIPTokenizer.load(nodeFolderReader(`${MODEL}/tokenizer_2`));
    const tok1 = await CLIPTokenizer.load(nodeFolderReader(`${MODEL}/tokenizer`));
    expect([tok2.padId, tok2.eosId, tok2.bosId]).toEqual([0, 49407, 49406]);
    expect(tok1.padId).toBe(49407);
    const kase = JSON.parse(readFileSync('tests/fixtures/clip-text-sdxl-tiny/case.json', 'utf8')) as { prompts: string[] };
    const io = await readSafetensorsFile('tests/fixtures/clip-text-sdxl-tiny/io.safetensors');
    const want = toInt64Numbers(io.get('input_ids')!);
    const got = kase.prompts.flatMap((p) => tok2.encode(p).ids);
    expect(got).toEqual(want);
    // "wow! a red fox!! in the snow": each '!' is the pad token, and the row ends in pad ids after EOS.
    const ids = tok2.encode(kase.prompts[1]!).ids;
    expect(ids.slice(0, 10)).toEqual([49406, 2781, 0, 320, 736, 3240, 0, 0, 530, 518]);
    expect(ids.slice(ids.indexOf(49407) + 1).every((i) => i === 0)).toBe(true);
  });
});

describe('Stable Diffusion XL folder and options', () => {
  it('loads both encoders and tokenizers, the U-Net with text_time, and force_zeros_for_empty_prompt', async () => {
    const m = await sdxl();
    expect(m.pipeline).toBe('StableDiffusionXLPipeline');
    expect(m.xl!.textEncoder2.projectionDim).toBe(24);
    expect(m.textEncoder.hiddenSize + m.xl!.textEncoder2.hiddenSize).toBe(m.unet.crossAttentionDim);
    expect(m.xl!.tokenizer2.padId).toBe(0);
    expect(m.xl!.forceZerosForEmptyPrompt).toBe(true);
    expect(m.vae.scalingFactor).toBe(0.13025);
  });

  it('force_upcast: in f16 the VAE is built in f32 (as StableDiffusionXLPipeline decodes), unless the config says false', async (ctx) => {
    const rt = await runtime();
    if (!hasF16(rt)) ctx.skip();
    const a = await loadSdFolder(rt, MODEL, { precision: 'f16' });
    models.push(a);
    expect([a.unet.precision.dtype, a.textEncoder.precision.dtype, a.vae.precision.dtype]).toEqual(['f16', 'f16', 'f32']);
    const b = await loadSdFrom(rt, patched({ 'vae/config.json': (c) => ({ ...c, force_upcast: false }) }), 'no-upcast', { precision: 'f16' });
    models.push(b);
    expect(b.vae.precision.dtype).toBe('f16');
  });

  it("force_zeros_for_empty_prompt: no negative prompt gives zero negative embeddings; '' or the option off encodes ''", async () => {
    const rt = await runtime();
    const m = await sdxl();
    const run = async (model: SdModel, negativePrompt?: string) => {
      let t: TextTrace | null = null;
      await generateFromText(rt, model, { prompt: 'a boat', negativePrompt, steps: 1, guidanceScale: 5, seed: 1, scheduler: 'ddim', traceText: (x) => (t = x) });
      return t! as TextTrace;
    };
    const zeros = await run(m);
    expect(zeros.uncondIds).toBeNull();
    expect(maxAbs(zeros.negativePromptEmbeds!)).toBe(0);
    expect(maxAbs(zeros.negativePooledPromptEmbeds!)).toBe(0);
    const empty = await run(m, '');
    expect(empty.uncondIds![0]!.slice(0, 3)).toEqual([49406, 49407, 49407]);
    expect(empty.uncondIds2![0]!.slice(0, 3)).toEqual([49406, 49407, 0]);
    expect(maxAbs(empty.negativePromptEmbeds!)).toBeGreaterThan(0.1);
    const off = await loadSdFrom(rt, patched({ 'model_index.json': (j) => ({ ...j, force_zeros_for_empty_prompt: false }) }), 'no-zeros', { precision: 'f32' });
    models.push(off);
    const offRun = await run(off);
    expect(Array.from(offRun.negativePromptEmbeds!)).toEqual(Array.from(empty.negativePromptEmbeds!));
    expect(Array.from(offRun.negativePooledPromptEmbeds!)).toEqual(Array.from(empty.negativePooledPromptEmbeds!));
  });

  it('prompt2 reaches the second encoder only; time ids follow the sizes given', async () => {
    const rt = await runtime();
    const m = await sdxl();
    const trace = async (o: Partial<Parameters<typeof generateFromText>[2]>) => {
      let t: TextTrace | null = null;
      await generateFromText(rt, m, { prompt: 'a tree', steps: 1, guidanceScale: 3, seed: 2, scheduler: 'ddim', width: 24, height: 16, ...o, traceText: (x) => (t = x) });
      return t! as TextTrace;
    };
    const a = await trace({});
    const b = await trace({ prompt2: 'a river', originalSize: [64, 96], cropsCoordsTopLeft: [2, 4] });
    expect(b.ids).toEqual(a.ids);
    expect(b.ids2).not.toEqual(a.ids2);
    // text_encoder's 16 features of each token are the same; text_encoder_2's 32 and the pooled embedding differ.
    const D = 48;
    const first = (x: Float32Array) => Array.from({ length: 77 }, (_, t) => Array.from(x.subarray(t * D, t * D + 16))).flat();
    expect(first(b.promptEmbeds)).toEqual(first(a.promptEmbeds));
    expect(Array.from(b.pooledPromptEmbeds!)).not.toEqual(Array.from(a.pooledPromptEmbeds!));
    expect(a.addTimeIds).toEqual([16, 24, 0, 0, 16, 24]);
    expect(b.addTimeIds).toEqual([64, 96, 2, 4, 16, 24]);
    // Negative sizes count only when both negative original and target sizes are given.
    expect((await trace({ negativeOriginalSize: [8, 8] })).negativeAddTimeIds).toEqual([16, 24, 0, 0, 16, 24]);
    expect((await trace({ negativeOriginalSize: [8, 8], negativeTargetSize: [4, 4] })).negativeAddTimeIds).toEqual([8, 8, 0, 0, 4, 4]);
  });

  it('without guidance (scale 1) the U-Net gets the prompt half alone: no negative embeddings, finite image', async () => {
    const rt = await runtime();
    const m = await sdxl();
    let t: TextTrace | null = null;
    const r = await generateFromText(rt, m, { prompt: 'a kite', guidanceScale: 1, steps: 2, seed: 5, scheduler: 'euler', traceText: (x) => (t = x) });
    const trace = t! as TextTrace;
    expect(trace.negativePromptEmbeds).toBeNull();
    expect(trace.negativePooledPromptEmbeds).toBeNull();
    expect(trace.unetTimeIds).toEqual([[16, 16, 0, 0, 16, 16]]);
    expect(r.imageShape).toEqual([1, 3, 16, 16]);
    expect(r.image.every(Number.isFinite)).toBe(true);
  });

  it('encode options: text_embeds needs the projection; clipSkip and stateSkip do not go together', async () => {
    const rt = await runtime();
    const m = await sdxl();
    const g = new Graph(rt, 'encode-errors');
    const ids = { ...uploadIds(rt, new Array<number>(77).fill(49407), 49408), shape: [1, 77] };
    const pool = uploadIds(rt, [76], 77);
    try {
      expect(() => m.textEncoder.encode(g, ids, { pool })).toThrow(/text_embeds needs CLIPTextModelWithProjection/);
      expect(() => m.xl!.textEncoder2.encode(g, ids, { clipSkip: 1, stateSkip: 1 })).toThrow(/clipSkip and stateSkip do not go together/);
      expect(() => m.xl!.textEncoder2.encode(g, ids, { stateSkip: 3 })).toThrow(/stateSkip 3 must be an integer in \[0, 2\]/);
    } finally {
      g.destroy();
      rt.destroyBuffer(ids.buffer);
      rt.destroyBuffer(pool.buffer);
    }
  });

  it('refuses img2img and inpainting, and SDXL-only options on an SD 1.x folder', async () => {
    const rt = await runtime();
    const m = await sdxl();
    await expect(generateFromText(rt, m, { prompt: 'x', steps: 1, initImage: new Float32Array(3 * 16 * 16) })).rejects.toThrow(/img2img and inpainting with Stable Diffusion XL are not supported/);
    const sd = await loadSdFolder(rt, 'tests/fixtures/sd-tiny', { precision: 'f32' });
    models.push(sd);
    expect(sd.xl).toBeUndefined();
    await expect(generateFromText(rt, sd, { prompt: 'x', steps: 1, prompt2: 'y', originalSize: [8, 8] })).rejects.toThrow(/prompt2, originalSize apply to Stable Diffusion XL pipelines only/);
  });

  const errors: [string, Record<string, ((j: Record<string, unknown>) => Record<string, unknown>) | null>, RegExp][] = [
    ['no text_encoder_2', { 'model_index.json': ({ text_encoder_2: _, ...j }) => j }, /component text_encoder_2 = null is not supported \(Fresco builds transformers CLIPTextModelWithProjection\)/],
    ['text_encoder_2 without a projection', { 'model_index.json': (j) => ({ ...j, text_encoder_2: ['transformers', 'CLIPTextModel'] }) }, /component text_encoder_2 = \["transformers","CLIPTextModel"\] is not supported \(Fresco builds transformers CLIPTextModelWithProjection\)/],
    ['no tokenizer_2', { 'model_index.json': (j) => ({ ...j, tokenizer_2: [null, null] }) }, /component tokenizer_2 = \[null,null\] is not supported/],
    ['the refiner (StableDiffusionXLImg2ImgPipeline)', { 'model_index.json': (j) => ({ ...j, _class_name: 'StableDiffusionXLImg2ImgPipeline', text_encoder: [null, null], requires_aesthetics_score: true }) }, /_class_name "StableDiffusionXLImg2ImgPipeline" is not supported: SDXL img2img and the SDXL refiner are not supported/],
    ["the refiner's layout as a StableDiffusionXLPipeline", { 'model_index.json': (j) => ({ ...j, text_encoder: [null, null], tokenizer: [null, null] }) }, /text_encoder = \[null,null\]: a pipeline with text_encoder_2 alone \(the SDXL refiner's layout\) is not supported/],
    ['requires_aesthetics_score', { 'model_index.json': (j) => ({ ...j, requires_aesthetics_score: true }) }, /requires_aesthetics_score = true \(the SDXL refiner's aesthetic-score time ids\) is not supported/],
    ['SDXL inpainting', { 'model_index.json': (j) => ({ ...j, _class_name: 'StableDiffusionXLInpaintPipeline' }) }, /"StableDiffusionXLInpaintPipeline" is not supported: SDXL inpainting is not supported/],
    ['an image encoder (IP adapters) is not run but does not stop text-to-image', { 'model_index.json': (j) => ({ ...j, image_encoder: ['transformers', 'CLIPVisionModelWithProjection'] }) }, /^$/],
    ['SDXL components under StableDiffusionPipeline', { 'model_index.json': (j) => ({ ...j, _class_name: 'StableDiffusionPipeline' }) }, /component force_zeros_for_empty_prompt = true is not supported by StableDiffusionPipeline/],
    ['tokenizers padding to different lengths', { 'tokenizer_2/tokenizer_config.json': (j) => ({ ...j, model_max_length: 64 }) }, /tokenizer pads to 77 tokens but tokenizer_2 to 64; their encoders' states are concatenated token by token/],
    ['text_encoder_2 files missing', { 'text_encoder_2/config.json': null }, /text_encoder_2\/config\.json/],
    ['add_watermarker true', { 'model_index.json': (j) => ({ ...j, add_watermarker: true }) }, /add_watermarker = true \(the invisible watermark diffusers adds to SDXL images\) is not supported/],
    ['add_watermarker null (as SDXL base 1.0 ships it) loads', { 'model_index.json': (j) => ({ ...j, add_watermarker: null }) }, /^$/],
    ['force_zeros_for_empty_prompt not a boolean', { 'model_index.json': (j) => ({ ...j, force_zeros_for_empty_prompt: 'yes' }) }, /force_zeros_for_empty_prompt = "yes" is not a boolean/],
  ];
  for (const [what, files, msg] of errors) {
    it(`folder: ${what}`, async () => {
      const rt = await runtime();
      const load = loadSdFrom(rt, patched(files), 'patched', { precision: 'f32' });
      if (msg.source === '^$') {
        models.push(await load);
        return;
      }
      await expect(load).rejects.toThrow(msg);
      if (!what.includes('missing')) await expect(loadSdFrom(rt, patched(files), 'patched', { precision: 'f32' })).rejects.toThrow(ConfigError);
    });
  }
});

describe('Stable Diffusion XL through the library and the CLI', () => {
  it("loadModel / generate: kind 'text', default guidance 5 (diffusers' SDXL default), the U-Net's default size", async () => {
    const model = await loadModel(MODEL, { precision: 'f32' });
    try {
      expect(model.kind).toBe('text');
      expect(model.defaults.guidance).toBe(5);
      expect(model.defaults.scheduler).toBe('euler');
      expect(model.imageSize).toEqual([16, 16]);
      const events: number[] = [];
      const r = await generate(model, { prompt: 'a lighthouse', seed: 3, steps: 3, previewEvery: 1, onStep: (e) => events.push(e.preview ? 1 : 0) });
      expect(r.rawShape).toEqual([1, 3, 16, 16]);
      expect(r.raw.every(Number.isFinite)).toBe(true);
      expect(events).toEqual([1, 1, 1]);
      // The library's run is the pipeline's: the same seed and defaults give the same image.
      const { rt, loaded } = model as unknown as { rt: Parameters<typeof generateFromText>[0]; loaded: { sd: SdModel } };
      const direct = await generateFromText(rt, loaded.sd, { prompt: 'a lighthouse', seed: 3, steps: 3, guidanceScale: 5, scheduler: 'euler' });
      expect(Array.from(r.raw)).toEqual(Array.from(direct.image));
    } finally {
      model.destroy();
    }
  });

  // pipeline-sdxl-tiny-zeros' options (prompt_2, sizes, crop, negative sizes), 24x16.
  const zeros = {
    prompt: 'a watercolor painting of a lighthouse at dusk',
    prompt2: 'oil on canvas, a storm at sea!',
    originalSize: [40, 56],
    cropsCoordsTopLeft: [4, 8],
    targetSize: [16, 24],
    negativeOriginalSize: [12, 20],
    negativeCropsCoordsTopLeft: [0, 0],
    negativeTargetSize: [16, 16],
  } as const satisfies GenerateOptions;
  const run = { width: 24, height: 16, seed: 7, steps: 2, guidance: 6, scheduler: 'ddim' } as const;
  let lib: Model | null = null;
  const libModel = async () => (lib ??= await loadModel(MODEL, { precision: 'f32' }));
  afterAll(() => lib?.destroy());
  const direct = async (m: Model, opts: Omit<Parameters<typeof generateFromText>[2], 'prompt'> & { prompt: string | string[] }) => {
    const { rt, loaded } = m as unknown as { rt: Parameters<typeof generateFromText>[0]; loaded: { sd: SdModel } };
    return generateFromText(rt, loaded.sd, opts);
  };

  it("generate() takes SDXL's prompt2 and micro-conditioning: diffusers' time ids (the zeros trace's), the same image as generateFromText", async () => {
    const m = await libModel();
    const r = await generate(m, { ...zeros, ...run });
    let seen: TextTrace | null = null;
    const d = await direct(m, { ...zeros, width: 24, height: 16, seed: 7, steps: 2, guidanceScale: 6, scheduler: 'ddim', traceText: (t) => (seen = t) });
    expect(Array.from(r.raw)).toEqual(Array.from(d.image));
    // The options reach the U-Net as diffusers v0.25.1 made them for this trace.
    const trace = await readSafetensorsFile('tests/fixtures/pipeline-sdxl-tiny-zeros/trace.safetensors');
    const t = seen as TextTrace | null;
    expect(t!.addTimeIds).toEqual(Array.from(toFloat32(trace.get('add_time_ids')!)));
    expect(t!.negativeAddTimeIds).toEqual(Array.from(toFloat32(trace.get('negative_add_time_ids')!)));
    expect(t!.ids2).toEqual([toInt64Numbers(trace.get('input_ids_2')!)]);
    // And they matter: without them the image differs.
    const plain = await generate(m, { prompt: zeros.prompt, ...run });
    expect(Array.from(plain.raw)).not.toEqual(Array.from(r.raw));
  });

  it('generate(): negativePrompt2, and prompt2 lists repeated with count like the prompts', async () => {
    const m = await libModel();
    const r = await generate(m, { prompt: ['a cat', 'a dog'], prompt2: ['ink', 'chalk'], negativePrompt: 'fog', negativePrompt2: 'rain', count: 2, ...run, steps: 1 });
    const d = await direct(m, { prompt: ['a cat', 'a cat', 'a dog', 'a dog'], prompt2: ['ink', 'ink', 'chalk', 'chalk'], negativePrompt: 'fog', negativePrompt2: 'rain', width: 24, height: 16, seed: 7, steps: 1, guidanceScale: 6, scheduler: 'ddim' });
    expect(r.rawShape[0]).toBe(4);
    expect(Array.from(r.raw)).toEqual(Array.from(d.image));
    const noNeg2 = await generate(m, { prompt: ['a cat', 'a dog'], prompt2: ['ink', 'chalk'], negativePrompt: 'fog', count: 2, ...run, steps: 1 });
    expect(Array.from(noNeg2.raw)).not.toEqual(Array.from(r.raw));
  });

  const misuse: [string, GenerateOptions, RegExp][] = [
    ['prompt2 list of the wrong length', { prompt: ['a', 'b'], prompt2: ['c'] }, /^prompt2: 1 given for 2 prompts$/],
    ['originalSize not a pair', { prompt: 'a', originalSize: [16] as unknown as [number, number] }, /^originalSize must be \[height, width\]: two whole numbers of pixels, got \[16\]$/],
    ['cropsCoordsTopLeft not whole', { prompt: 'a', cropsCoordsTopLeft: [1.5, 0] }, /^cropsCoordsTopLeft must be \[top, left\]/],
    ['negativeTargetSize negative', { prompt: 'a', negativeTargetSize: [-8, 8] }, /^negativeTargetSize must be \[height, width\]/],
    ['negativePrompt2 not a string', { prompt: 'a', negativePrompt2: ['x'] as unknown as string }, /^negativePrompt2 must be a string/],
  ];
  for (const [what, opts, msg] of misuse) {
    it(`generate(): ${what} is a GenerateOptionsError`, async () => {
      const m = await libModel();
      await expect(generate(m, { ...opts, steps: 1 })).rejects.toThrow(GenerateOptionsError);
      await expect(generate(m, { ...opts, steps: 1 })).rejects.toThrow(msg);
    });
  }

  const dir = mkdtempSync(join(tmpdir(), 'fresco-sdxl-'));
  const fresco = (...args: string[]) => runFresco(['generate', ...args]);

  it('fresco generate --prompt-2 --negative-prompt-2 --original-size WxH --crop-top-left Y,X --target-size WxH: the library\'s image', async () => {
    const out = join(dir, 'sdxl-micro.png');
    const r = fresco('--model', MODEL, '--prompt', zeros.prompt, '--prompt-2', zeros.prompt2, '--negative-prompt', 'fog', '--negative-prompt-2', 'rain', '--original-size', '56x40', '--crop-top-left', '4,8', '--target-size', '24x16', '--width', '24', '--height', '16', '--steps', '2', '--seed', '7', '--precision', 'f32', '--out', out);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/; prompt 2 "oil on canvas, a storm at sea!", negative prompt 2 "rain", original size 56x40, crop top-left 4,8, target size 24x16\n/);
    const png = decodePng(new Uint8Array(readFileSync(out)));
    const m = await libModel();
    const want = await generate(m, { prompt: zeros.prompt, prompt2: zeros.prompt2, negativePrompt: 'fog', negativePrompt2: 'rain', originalSize: [40, 56], cropsCoordsTopLeft: [4, 8], targetSize: [16, 24], width: 24, height: 16, steps: 2, seed: 7 });
    expect([png.width, png.height]).toEqual([want.image.width, want.image.height]);
    let worst = 0;
    for (let i = 0; i < png.pixels.length; i++) worst = Math.max(worst, Math.abs(png.pixels[i]! - want.image.data[i]!));
    expect(worst).toBeLessThanOrEqual(1);
  });

  it('the SDXL flags with an SD 1.x/2.x folder are a usage error naming them, before the GPU starts', () => {
    const r = fresco('--model', 'tests/fixtures/sd-tiny', '--prompt', 'a cat', '--original-size', '64x64', '--crop-top-left', '0,0', '--out', join(dir, 'never.png'));
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('error: --original-size, --crop-top-left apply to Stable Diffusion XL pipelines only (tests/fixtures/sd-tiny is a StableDiffusionPipeline)\nrun with --help for the options\n');
  });

  it('fresco generate --model sdxl-tiny --prompt writes the image (guidance 5, the folder\'s Euler scheduler)', () => {
    const out = join(dir, 'sdxl.png');
    const r = fresco('--model', MODEL, '--prompt', 'a cat', '--negative-prompt', 'a dog', '--width', '24', '--height', '16', '--steps', '3', '--seed', '4', '--out', out);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/3 euler steps, guidance 5\b/);
    const png = decodePng(new Uint8Array(readFileSync(out)));
    expect([png.width, png.height]).toEqual([24, 16]);
  });

  it('--init-image with an SDXL folder is a usage error', () => {
    const r = fresco('--model', MODEL, '--prompt', 'a cat', '--init-image', 'tests/fixtures/pipeline-fashion-ldm/image.png', '--out', join(dir, 'x.png'));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/Stable Diffusion XL pipeline: --init-image and --mask .* are not supported/);
  });
});

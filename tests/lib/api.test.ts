// The library facade in Node: loading by folder and by URL (streamed progress), both model kinds,
// option errors, cancel within one step, and previews.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelsMiddleware } from '../../demo/models_server.ts';
import { generate, loadModel, type CompileEvent, type Model, type StepEvent } from '../../src/api.ts';
import { createGpu, getGpu } from '../../src/gpu/device.ts';
import { generateClassConditional } from '../../src/pipelines/class_conditional.ts';
import { tensorToImage } from '../../src/io/image.ts';
import { CancelledError, GenerateOptionsError, GpuError, PrecisionError } from '../../src/errors.ts';

let server: Server;
let base: string;
const requests: string[] = [];
const models: Model[] = [];
const keep = (m: Model) => (models.push(m), m);

beforeAll(async () => {
  const serve = modelsMiddleware(process.cwd());
  server = createServer((req, res) => {
    requests.push(req.url ?? '');
    serve(req, res, () => {
      res.statusCode = 404;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/models`;
});

afterAll(() => {
  models.forEach((m) => m.destroy());
  server?.close();
});

let fashion: Promise<Model> | null = null;
const fashionModel = () => (fashion ??= loadModel('weights/fashion-ldm', { precision: 'f32' }).then(keep));

describe('loadModel + generate (class-conditional)', () => {
  it('loads a folder: kind, class names from fresco.json, adapter and precision', async () => {
    const files: string[] = [];
    const m = keep(await loadModel('weights/fashion-ldm/', { precision: 'f32', onProgress: (_l, _t, f) => files.push(f) }));
    expect(m.kind).toBe('class');
    expect(m.classNames?.[1]).toBe('Trouser');
    expect(m.numClasses).toBe(11);
    expect(m.imageSize).toEqual([32, 32]);
    expect(m.adapterName.length).toBeGreaterThan(0);
    expect(m.precision).toMatch(/^f32/);
    expect(files).toEqual(expect.arrayContaining(['unet/diffusion_pytorch_model.safetensors', 'vae/diffusion_pytorch_model.safetensors', 'fresco.json']));
    m.destroy();
    await expect(generate(m, { class: 1 })).rejects.toThrow(/destroyed/);
  });

  it('equals the pipeline it wraps, pixel for pixel, with RGBA laid out as the PNG writer does', async () => {
    const m = await fashionModel();
    const r = await generate(m, { class: 'trouser', seed: 5, steps: 2, guidance: 3 });
    const direct = await generateClassConditional(m.rt, (m.loaded as { ldm: Parameters<typeof generateClassConditional>[1] }).ldm, { classLabels: [1], nullClass: 10, guidanceScale: 3, steps: 2, seed: 5, scheduler: 'ddim' });
    expect(r.rawShape).toEqual([1, 1, 32, 32]);
    expect(Array.from(r.raw)).toEqual(Array.from(direct.image));
    const gray = tensorToImage(direct.image, direct.imageShape);
    expect([r.image.width, r.image.height]).toEqual([32, 32]);
    for (let p = 0; p < 32 * 32; p++) {
      expect([r.image.data[4 * p], r.image.data[4 * p + 1], r.image.data[4 * p + 2], r.image.data[4 * p + 3]]).toEqual([gray.pixels[p], gray.pixels[p], gray.pixels[p], 255]);
    }
    expect(r.stepMs).toHaveLength(2);
    expect(r.seed).toBe(5);
  });

  it('loads by URL with streamed progress, and draws the same image as the folder load', async () => {
    const progress: [number, number, string][] = [];
    requests.length = 0;
    const m = keep(await loadModel(`${base}/fashion-ldm`, { precision: 'f32', onProgress: (l, t, f) => progress.push([l, t, f]) }));
    expect(m.kind).toBe('class');
    expect(m.classNames).toHaveLength(10);
    const unet = progress.filter(([, , f]) => f === 'unet/diffusion_pytorch_model.safetensors');
    // Streamed: several events, monotone, ending at the Content-Length.
    expect(unet.length).toBeGreaterThan(2);
    expect(unet.every(([l], i) => i === 0 || l >= unet[i - 1]![0])).toBe(true);
    const [last] = unet.slice(-1);
    expect(last![0]).toBe(last![1]);
    expect(last![1]).toBeGreaterThan(1e6);
    // model_index.json is probed (404: not a pipeline folder); no cache in Node, so one GET per file.
    expect(requests.some((u) => u.endsWith('/model_index.json'))).toBe(true);
    const [a, b] = [await generate(m, { class: 1, seed: 7, steps: 2, guidance: 3 }), await generate(await fashionModel(), { class: 1, seed: 7, steps: 2, guidance: 3 })];
    expect(Array.from(a.raw)).toEqual(Array.from(b.raw));
  });

  it('rejects a prompt, an unknown class, width/height and a bad count on a class model', async () => {
    const m = await fashionModel();
    await expect(generate(m, { prompt: 'a shoe' })).rejects.toThrow(GenerateOptionsError);
    await expect(generate(m, { prompt: 'a shoe' })).rejects.toThrow(/class-conditional: it takes class, not prompt/);
    await expect(generate(m, {})).rejects.toThrow(/pass class/);
    await expect(generate(m, { class: 'spaceship' })).rejects.toThrow(/unknown class "spaceship"; classes: 0 T-shirt\/top/);
    await expect(generate(m, { class: 11 })).rejects.toThrow(/out of range/);
    await expect(generate(m, { class: 1, width: 64 })).rejects.toThrow(/width and height apply to text models/);
    await expect(generate(m, { class: 1, count: 0 })).rejects.toThrow(/count must be a whole number >= 1/);
    await expect(generate(m, { class: 1, originalSize: [64, 64] })).rejects.toThrow(GenerateOptionsError);
    await expect(generate(m, { class: 1, prompt2: 'x', targetSize: [32, 32] })).rejects.toThrow(/is class-conditional: prompt2, targetSize apply to Stable Diffusion XL text models only/);
  });

  it('draws the null class (its label or "null") as an unconditional sample, and lists it in messages', async () => {
    const m = await fashionModel();
    expect(m.nullClass).toBe(10);
    const [a, b] = [await generate(m, { class: 10, seed: 4, steps: 2, guidance: 3 }), await generate(m, { class: 'null', seed: 4, steps: 2, guidance: 3 })];
    expect(Array.from(a.raw)).toEqual(Array.from(b.raw));
    // cond = uncond: guidance changes nothing, the guided prediction is the unconditional one.
    const unguided = await generate(m, { class: 10, seed: 4, steps: 2, guidance: 1 });
    expect(Math.max(...Array.from(a.raw, (v, i) => Math.abs(v - unguided.raw[i]!)))).toBeLessThan(1e-4);
    await expect(generate(m, { class: 11 })).rejects.toThrow('class 11 is out of range (0..10; 10 is the null class: an unconditional sample)');
    await expect(generate(m, { class: 'hat' })).rejects.toThrow(/classes: 0 T-shirt\/top, .*, 9 Ankle boot, 10 null class \(unconditional\)$/);
  });

  it('cancels within one step: the abort in step 0 rejects before step 1 runs', async () => {
    const m = await fashionModel();
    const ctl = new AbortController();
    const seen: number[] = [];
    const run = generate(m, { class: 1, seed: 1, steps: 5, guidance: 3, signal: ctl.signal, onStep: (e) => (seen.push(e.index), ctl.abort()) });
    await expect(run).rejects.toThrow(CancelledError);
    expect(seen).toEqual([0]);
    const pre = new AbortController();
    pre.abort();
    await expect(generate(m, { class: 1, signal: pre.signal })).rejects.toThrow(CancelledError);
  });

  it('previews every N steps and after the last, at latent size, in a grid like the image', async () => {
    const m = await fashionModel();
    const events: StepEvent[] = [];
    const r = await generate(m, { class: [0, 7], count: 2, seed: 3, steps: 3, guidance: 1, previewEvery: 2, onStep: (e) => events.push(e) });
    expect(events.map((e) => e.index)).toEqual([0, 1, 2]);
    expect(events.map((e) => !!e.preview)).toEqual([false, true, true]);
    // 4 images, 2 per row (count per row, as the CLI's grid): latents 8x8, images 32x32.
    const p = events[2]!.preview!;
    expect([p.width, p.height]).toEqual([16, 16]);
    expect([r.image.width, r.image.height]).toEqual([64, 64]);
    // fresco.json's own latent → image factors, one image channel: gray (tests/lib/preview.test.ts
    // checks the values, and 'normalize' for a model without factors).
    for (let i = 0; i < p.data.length; i += 4) expect([p.data[i + 1], p.data[i + 2], p.data[i + 3]]).toEqual([p.data[i], p.data[i], 255]);
    // columns: the same four images (and previews) four to a row; a bad value is named.
    const row: StepEvent[] = [];
    const wide = await generate(m, { class: [0, 7], count: 2, seed: 3, steps: 3, guidance: 1, previewEvery: 3, columns: 4, onStep: (e) => row.push(e) });
    expect([wide.image.width, wide.image.height, wide.columns]).toEqual([128, 32, 4]);
    expect([row[2]!.preview!.width, row[2]!.preview!.height]).toEqual([32, 8]);
    expect(wide.raw).toEqual(r.raw);
    await expect(generate(m, { class: 0, columns: 0 })).rejects.toThrow(/columns must be a whole number >= 1, got 0/);
  });
});

describe('generate: onCompile', () => {
  it('tells a fresh device\'s first run how many pipelines each stage compiles, and a repeat run nothing', async () => {
    const gpu = await createGpu({ wantF16: true });
    try {
      const m = await loadModel('weights/fashion-ldm', { gpu, precision: 'f32' });
      // What a page hears, in order: compile events between the steps they come before or after.
      const run = async () => {
        const heard: (CompileEvent | 'step')[] = [];
        await generate(m, { class: 1, steps: 2, seed: 5, onStep: () => heard.push('step'), onCompile: (e) => heard.push(e) });
        return heard;
      };
      const first = await run();
      expect(first.map((e) => (e === 'step' ? e : e.stage))).toEqual(['denoising', 'step', 'step', 'decode']);
      const [denoising, , , decode] = first as [CompileEvent, 'step', 'step', CompileEvent];
      expect(denoising.pipelines).toBeGreaterThan(10);
      expect(decode.pipelines).toBeGreaterThan(0);
      expect(await run()).toEqual(['step', 'step']);
      m.destroy();
    } finally {
      gpu.device.destroy();
    }
  });

  it('names the text encoder as a stage of its own on a text model', async () => {
    const gpu = await createGpu({ wantF16: true });
    try {
      const m = await loadModel('tests/fixtures/sd-tiny', { gpu, precision: 'f32' });
      const heard: string[] = [];
      await generate(m, { prompt: 'a boat', steps: 1, seed: 1, onStep: () => heard.push('step'), onCompile: (e) => heard.push(`${e.stage}${e.pipelines > 0 ? '' : ' (none)'}`) });
      expect(heard).toEqual(['text encoder', 'denoising', 'step', 'decode']);
      m.destroy();
    } finally {
      gpu.device.destroy();
    }
  });
});

describe('generate: img2img and inpainting from RGBA pixels', () => {
  // A 32x32 gray checkerboard as ImageData-style RGBA, and a mask repainting the right half.
  const rgba = (side: number, f: (x: number, y: number) => number) => {
    const data = new Uint8ClampedArray(side * side * 4);
    for (let p = 0; p < side * side; p++) data.fill(f(p % side, Math.floor(p / side)), 4 * p, 4 * p + 3), (data[4 * p + 3] = 255);
    return { width: side, height: side, data };
  };
  const init = rgba(32, (x, y) => (((x >> 2) + (y >> 2)) % 2 ? 230 : 20));
  const mask = rgba(32, (x) => (x >= 16 ? 255 : 0));
  const toTensor = (img: { data: Uint8ClampedArray }, batch: number) => {
    const one = Float32Array.from({ length: 32 * 32 }, (_, p) => Math.fround(Math.fround(img.data[4 * p]! / 255) * 2 - 1));
    const out = new Float32Array(one.length * batch);
    for (let b = 0; b < batch; b++) out.set(one, b * one.length);
    return out;
  };

  it('equals the pipeline given the same image as [-1, 1] values, repeated over the batch (img2img and inpainting)', async () => {
    const m = await fashionModel();
    const ldm = (m.loaded as { ldm: Parameters<typeof generateClassConditional>[1] }).ldm;
    const base = { seed: 3, steps: 4, guidance: 3, strength: 0.5 };
    for (const withMask of [false, true]) {
      const r = await generate(m, { ...base, class: ['Trouser', 'Bag'], initImage: init, ...(withMask ? { mask } : {}) });
      const maskT = withMask ? Float32Array.from({ length: 2 * 1024 }, (_, i) => ((i % 32) >= 16 ? 1 : 0)) : undefined;
      const direct = await generateClassConditional(m.rt, ldm, { classLabels: [1, 8], nullClass: 10, guidanceScale: 3, steps: 4, seed: 3, scheduler: 'ddim', strength: 0.5, initImage: toTensor(init, 2), ...(maskT ? { mask: maskT } : {}) });
      expect(Math.max(...r.raw.map((v, i) => Math.abs(v - direct.image[i]!))), `mask ${withMask}`).toBe(0);
      expect(r.raw.every(Number.isFinite)).toBe(true);
    }
  });

  it('resizes on request (resize: true) and otherwise names both sizes; strength and mask need initImage', async () => {
    const m = await fashionModel();
    const big = rgba(64, (x, y) => (((x >> 3) + (y >> 3)) % 2 ? 230 : 20));
    await expect(generate(m, { class: 1, steps: 2, initImage: big })).rejects.toThrow(/initImage is 64x64 but the images generated are 32x32; pass resize: true/);
    const r = await generate(m, { class: 1, steps: 2, seed: 1, initImage: big, resize: true, strength: 0.5 });
    expect(r.rawShape).toEqual([1, 1, 32, 32]);
    // A 2x Lanczos downscale of the 8-px checkerboard is the 4-px one (up to ringing at the edges).
    const same = await generate(m, { class: 1, steps: 2, seed: 1, initImage: init, strength: 0.5 });
    expect(Math.max(...r.raw.map((v, i) => Math.abs(v - same.raw[i]!)))).toBeLessThan(0.35);
    await expect(generate(m, { class: 1, strength: 0.5 })).rejects.toThrow(GenerateOptionsError);
    await expect(generate(m, { class: 1, mask })).rejects.toThrow(/mask needs initImage/);
    await expect(generate(m, { class: 1, initImage: init, strength: 1.5 })).rejects.toThrow(/strength must be in \(0, 1\]/);
    await expect(generate(m, { class: 1, initImage: { width: 32, height: 32, data: new Uint8ClampedArray(10) } })).rejects.toThrow(/needs 4096 RGBA bytes; its data has 10/);
  });
});

describe('loadModel precision', () => {
  it("defaults to 'auto' as the CLI does, and never reports 'asked for' when nothing was", async () => {
    const shared = await getGpu();
    const m = keep(await loadModel('weights/fashion-ldm'));
    expect(m.precision).toBe(shared.features.has('shader-f16') ? 'f16 (shader-f16)' : 'f32 compute, f16 weights (adapter has no shader-f16)');
    m.destroy();
    expect(keep(await loadModel('weights/fashion-ldm', { precision: 'f32' })).precision).toBe('f32 (asked for)');
    expect(keep(await loadModel('weights/fashion-ldm', { precision: 'f32', weights: 'q4' })).precision).toBe('f32 (asked for); U-Net Linear and conv weights q4');
  });

  it("keeps shader-f16 on the shared device whatever the first load asked: an f32 load first leaves a later 'auto' load its f16", async () => {
    // A fresh process, so that this load creates the shared device (in this worker an earlier test has).
    const script = [
      `import { loadModel } from ${JSON.stringify(resolve('src/api.ts'))};`,
      `import { createGpu } from ${JSON.stringify(resolve('src/gpu/device.ts'))};`,
      "const f32 = await loadModel('weights/fashion-ldm', { precision: 'f32' });",
      "const auto = await loadModel('weights/fashion-ldm');",
      'const probe = await createGpu({ wantF16: true });',
      "console.log(JSON.stringify({ f32: f32.precision, auto: auto.precision, adapterF16: probe.features.has('shader-f16') }));",
      'process.exit(0);',
    ].join('\n');
    const dir = mkdtempSync(join(tmpdir(), 'fresco-'));
    const file = join(dir, 'first-load.mts');
    writeFileSync(file, script);
    const r = spawnSync(process.execPath, ['--import', 'tsx', file], { encoding: 'utf8', timeout: 120_000 });
    rmSync(dir, { recursive: true });
    expect(r.status, r.stderr).toBe(0);
    const got = JSON.parse(r.stdout.trim().split('\n').pop()!) as { f32: string; auto: string; adapterF16: boolean };
    expect(got.f32).toBe('f32 (asked for)');
    expect(got.auto).toBe(got.adapterF16 ? 'f16 (shader-f16)' : 'f32 compute, f16 weights (adapter has no shader-f16)');
  });

  it("on a device without shader-f16: 'auto' is f32 compute beside f16 weights and says why, 'f16' is a PrecisionError in library terms", async () => {
    const gpu = await createGpu(); // no shader-f16 asked for: the device lacks it
    try {
      const m = await loadModel('weights/fashion-ldm', { gpu });
      expect(m.precision).toBe('f32 compute, f16 weights (adapter has no shader-f16)');
      m.destroy();
      const f16 = loadModel('weights/fashion-ldm', { gpu, precision: 'f16' });
      await expect(f16).rejects.toThrow(PrecisionError);
      await expect(loadModel('weights/fashion-ldm', { gpu, precision: 'f16' })).rejects.toThrow("precision 'f16' needs the WebGPU feature shader-f16, which this device does not have (use precision 'auto' or 'f32')");
    } finally {
      gpu.device.destroy();
    }
  });
});

describe('loadModel + generate (device loss)', () => {
  it('rejects with a GpuError naming the loss when the device goes away mid-run, instead of hanging', async () => {
    // A device of its own: destroying the shared one would break every other test in this worker.
    const gpu = await createGpu();
    const m = await loadModel('weights/fashion-ldm', { precision: 'f32', gpu });
    const run = generate(m, { class: 1, seed: 1, steps: 5, guidance: 3, onStep: () => gpu.device.destroy() });
    await expect(run).rejects.toThrow(GpuError);
    await expect(run).rejects.toThrow(/device lost/i);
    expect(gpu.isLost()).toBe(true);
  });
});

describe('loadModel + generate (text-to-image)', () => {
  let sd: Model;
  beforeAll(async () => {
    sd = keep(await loadModel('tests/fixtures/sd-tiny', { precision: 'f32' }));
  });

  it('loads a pipeline folder (model_index.json) as a text model and draws from a prompt', async () => {
    expect(sd.kind).toBe('text');
    expect(sd.classNames).toBeNull();
    const events: StepEvent[] = [];
    const r = await generate(sd, { prompt: 'a red shoe', negativePrompt: 'blurry', seed: 2, steps: 2, guidance: 5, previewEvery: 1, onStep: (e) => events.push(e) });
    const [h, w] = sd.imageSize;
    expect(r.rawShape).toEqual([1, 3, h, w]);
    expect([r.image.width, r.image.height]).toEqual([w, h]);
    expect(r.raw.every(Number.isFinite)).toBe(true);
    // PNDM (this fixture's scheduler) runs steps + 1 U-Net calls, but progress counts the steps
    // asked for: the first call's time goes into the first event.
    expect(r.stepMs).toHaveLength(3);
    expect(events.map((e) => [e.index, e.total])).toEqual([[0, 2], [1, 2]]);
    expect(events[0]!.ms).toBeCloseTo(r.stepMs[0]! + r.stepMs[1]!, 6);
    // The folded step starts from the first timestep (PLMS's d0 → d1 takes calls 0 and 1).
    expect(events[0]!.timestep).toBeGreaterThan(events[1]!.timestep);
    expect(events.every((e) => e.preview)).toBe(true);
    // 4 latent channels: the SD latent→RGB factors, at latent size.
    const f = (sd.loaded as { sd: { vae: { scaleFactor: number } } }).sd.vae.scaleFactor;
    expect([events.at(-1)!.preview!.width, events.at(-1)!.preview!.height]).toEqual([w / f, h / f]);
    const again = await generate(sd, { prompt: 'a red shoe', negativePrompt: 'blurry', seed: 2, steps: 2, guidance: 5 });
    expect(Array.from(again.raw)).toEqual(Array.from(r.raw));
  });

  it('rejects a class, and a missing prompt, on a text model', async () => {
    await expect(generate(sd, { class: 1, prompt: 'x' })).rejects.toThrow(/text-to-image model: it takes prompt, not class/);
    await expect(generate(sd, {})).rejects.toThrow(/prompt is required/);
  });

  it('rejects the SDXL options on an SD 1.x/2.x folder, naming them', async () => {
    const run = generate(sd, { prompt: 'x', prompt2: 'y', cropsCoordsTopLeft: [0, 0], negativeTargetSize: [8, 8] });
    await expect(run).rejects.toThrow(GenerateOptionsError);
    await expect(generate(sd, { prompt: 'x', originalSize: [64, 64] })).rejects.toThrow(/^originalSize applies to Stable Diffusion XL pipelines only \(tests\/fixtures\/sd-tiny is a StableDiffusionPipeline\)$/);
    await expect(generate(sd, { prompt: 'x', prompt2: 'y', cropsCoordsTopLeft: [0, 0], negativeTargetSize: [8, 8] })).rejects.toThrow(/^prompt2, cropsCoordsTopLeft, negativeTargetSize apply to Stable Diffusion XL/);
  });
});

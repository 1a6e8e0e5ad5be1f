// Quantized GEMM weights in whole models (ModelOptions.weights, WeightLoader.gemmWeight,
// WeightStore.claimQuantized; src/io/quant.ts):
// - a U-Net (conv, Linear and attention weights) quantized at load equals, bit for bit, the same
//   U-Net built from a pre-quantized file (values I8 / U8 beside `key_scale` F16), and stays close
//   to the f32 model (f16 activations too); 'float' dequantizes a pre-quantized file; a q4 file
//   requantized as q8 is q8 of its values;
// - a malformed pre-quantized file or option fails naming the key or option; a quantized weight is
//   not cut into channel chunks;
// - an SD pipeline from a pre-quantized folder on disk (streamed) equals quantizing at load, with a
//   pre-quantized VAE and text encoder dequantized; Model.weightBytes shrinks by exactly the
//   quantized layouts; a LoRA loads unfused by default on quantized weights and refuses to be fused
//   into them.
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generate, loadModel, type Model } from '../../src/api.ts';
import { ConfigError, LoraError, PlanLimitError, WeightError } from '../../src/errors.ts';
import type { Runtime } from '../../src/gpu/runtime.ts';
import { numel, type Tensor } from '../../src/graph/tensor.ts';
import { readTensor, uploadQuantized } from '../../src/kernels/cast.ts';
import { readJson } from '../../src/io/model_folder.ts';
import { dequantize, quantize, quantLayout, SCALE_SUFFIX, storedShapes, type QuantFormat } from '../../src/io/quant.ts';
import { readSafetensorsFile, toFloat32, toInt64Numbers, writeSafetensors, type DType, type HostTensor } from '../../src/io/safetensors.ts';
import { WeightStore } from '../../src/io/weights.ts';
import { WeightSlices } from '../../src/models/channel_split.ts';
import { buildModel } from '../../src/models/model_loader.ts';
import type { ModelOptions } from '../../src/models/precision.ts';
import { UNet2DConditionModel } from '../../src/models/unet_2d_condition.ts';
import { readUNet2DConditionConfig, type UNet2DConditionConfig } from '../../src/models/unet_2d_condition_config.ts';
import { hasF16, runGraphWithPlan, runtime, withRuntime } from '../helpers/gpu.ts';
import { runtimeWithoutF16 } from '../helpers/weights.ts';

const CASE = 'tests/fixtures/unet2d-cond';
const SD = 'tests/fixtures/sd-tiny';
const FORMATS: QuantFormat[] = ['q8', 'q4'];

type Tensors = Map<string, HostTensor>;

function host(name: string, dtype: DType, shape: number[], data: ArrayBufferView): HostTensor {
  return { name, dtype, shape, bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/** The Linear and conv weights: every float tensor of 2 or more dimensions in these U-Nets (quantized in the other files too). */
function isGemm(t: HostTensor): boolean {
  return t.shape.length >= 2 && t.dtype.startsWith('F');
}

function rowsOf(shape: readonly number[]): [number, number] {
  return [shape[0]!, numel(shape) / shape[0]!];
}

/** The file's GEMM weights in stored form: `key` I8 (q8, the weight's shape) or U8 (q4, [N, ldw/2]), `key_scale` F16. */
function preQuantized(tensors: Tensors, format: QuantFormat): Tensors {
  const out: Tensors = new Map();
  for (const [key, t] of tensors) {
    if (!isGemm(t)) {
      out.set(key, t);
      continue;
    }
    const q = quantize(format, toFloat32(t), ...rowsOf(t.shape));
    const shapes = storedShapes(format, t.shape);
    out.set(key, host(key, format === 'q8' ? 'I8' : 'U8', shapes.values, q.data));
    out.set(key + SCALE_SUFFIX, host(key + SCALE_SUFFIX, 'F16', shapes.scales, q.scales));
  }
  return out;
}

/** The file with its GEMM weights replaced by their dequantized values (F32). */
function dequantized(tensors: Tensors, format: QuantFormat): Tensors {
  const out: Tensors = new Map();
  for (const [key, t] of tensors) out.set(key, isGemm(t) ? host(key, 'F32', t.shape, dequantize(quantize(format, toFloat32(t), ...rowsOf(t.shape)))) : t);
  return out;
}

function ratioOf(got: Float32Array, ref: Float32Array): number {
  let err = 0;
  let max = 0;
  for (let i = 0; i < ref.length; i++) {
    expect(Number.isFinite(got[i]!)).toBe(true);
    err = Math.max(err, Math.abs(got[i]! - ref[i]!));
    max = Math.max(max, Math.abs(ref[i]!));
  }
  return err / max;
}

function same(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
}

interface UNetCase {
  config: UNet2DConditionConfig;
  weights: Tensors;
  io: Tensors;
}

let unetCase: Promise<UNetCase> | null = null;
function loadCase(): Promise<UNetCase> {
  unetCase ??= (async () => ({
    config: readUNet2DConditionConfig(await readJson(`${CASE}/config.json`), CASE),
    weights: await readSafetensorsFile(`${CASE}/diffusion_pytorch_model.safetensors`),
    io: await readSafetensorsFile(`${CASE}/io.safetensors`),
  }))();
  return unetCase;
}

function build(rt: Runtime, c: UNetCase, tensors: Tensors, opts: ModelOptions): UNet2DConditionModel {
  return buildModel(UNet2DConditionModel, rt, new WeightStore(new Map(tensors), 'test U-Net'), c.config, opts);
}

/** One forward pass on the case's inputs (two samples, integer timesteps, 7 context tokens), read back as f32. */
async function forward(rt: Runtime, c: UNetCase, unet: UNet2DConditionModel): Promise<Float32Array> {
  const inputs: GPUBuffer[] = [];
  const up = (key: string): Tensor => {
    const t = c.io.get(key)!;
    const buffer = rt.upload(toFloat32(t), key);
    inputs.push(buffer);
    return { buffer, shape: t.shape, label: key };
  };
  try {
    const sample = up('sample');
    const B = sample.shape[0]!;
    const ts = rt.upload(new Float32Array(toInt64Numbers(c.io.get('timestep')!)), 'timesteps');
    inputs.push(ts);
    const timesteps = { buffer: ts, shape: [B], label: 'timesteps' };
    return (await runGraphWithPlan(rt, 'quantized U-Net', (g) => unet.forward(g, sample, { timesteps, broadcast: false }, up('encoder_hidden_states')))).out;
  } finally {
    for (const b of inputs) rt.destroyBuffer(b);
  }
}

async function run(rt: Runtime, c: UNetCase, tensors: Tensors, opts: ModelOptions, check?: (unet: UNet2DConditionModel) => void): Promise<Float32Array> {
  const unet = build(rt, c, tensors, opts);
  try {
    check?.(unet);
    return await forward(rt, c, unet);
  } finally {
    unet.destroy();
  }
}

/** GPU bytes a weight's buffer takes (Runtime.createBuffer: whole 16-byte units, at least 16). */
function buf(bytes: number): number {
  return Math.max(16, Math.ceil(bytes / 16) * 16);
}

/**
 * What quantizing costs this U-Net's output, as max|err| / max|ref| against the float model
 * (measured on lavapipe, f32 and f16 activations alike: q8 1.1e-2, q4 2.0e-1). Its weights are
 * uniform random, so each is off by about 0.4% (q8: a step of max|row|/127) or 6% (q4: max|block|/8)
 * of its RMS, which the network amplifies about threefold in both formats. Whether the GEMMs read
 * the quantized weights right is checked exactly, against the f32 kernels on the dequantized values;
 * these bounds only catch a result that quantization alone does not explain.
 */
const BOUND: Record<QuantFormat, number> = { q8: 3e-2, q4: 0.4 };

describe('a quantized U-Net (UNet2DConditionModel: conv, Linear, self- and cross-attention)', () => {
  for (const format of FORMATS) {
    it(`${format} at load equals the pre-quantized file bit for bit, and stays close to f32`, async () => {
      const rt = await runtime();
      const c = await loadCase();
      const f32 = await run(rt, c, c.weights, { precision: 'f32' });
      const gemmKeys = [...c.weights].filter(([, t]) => isGemm(t)).map(([k]) => k);
      const atLoad = await run(rt, c, c.weights, { precision: 'f32', weights: format }, (unet) => {
        // Every Linear and conv weight went through gemmWeight, and nothing else did.
        const quantized = [...unet.w.weights].filter(([, t]) => t.quant).map(([k, t]) => `${k} ${t.quant!.format}`);
        expect(quantized.sort()).toEqual(gemmKeys.map((k) => `${k} ${format}`).sort());
        // store.gpuBytes: the quantized layouts and the other weights in f32, each buffer rounded to 16 bytes.
        let want = 0;
        for (const t of c.weights.values()) want += buf(isGemm(t) ? quantLayout(format, ...rowsOf(t.shape)).bytes : 4 * numel(t.shape));
        expect(unet.w.store.gpuBytes).toBe(want);
      });
      // As stored (no weights option): the file's values and scales go to the GPU unchanged.
      const stored = preQuantized(c.weights, format);
      const fromFile = await run(rt, c, stored, { precision: 'f32' }, (unet) => {
        expect([...unet.w.weights.values()].filter((t) => t.quant?.format === format).length).toBe(gemmKeys.length);
      });
      expect(same(fromFile, atLoad)).toBe(true);

      const ratio = ratioOf(atLoad, f32);
      const ref = toFloat32(c.io.get('out')!);
      console.log(`unet2d-cond [${format} weights]: vs the f32 model max|err|/max|ref| ${ratio.toExponential(2)} (f32 vs diffusers ${ratioOf(f32, ref).toExponential(2)}, ${format} vs diffusers ${ratioOf(atLoad, ref).toExponential(2)})`);
      expect(ratio).toBeGreaterThan(0);
      expect(ratio).toBeLessThan(BOUND[format]);

      // The f32 kernels on the dequantized values: q4 multiplies by exactly those values, so the
      // output is the same bit for bit; q8 applies each row's scale to the sum, not to each term.
      // Quantized convs never run as Winograd convs (src/kernels/winograd.ts), so neither do these.
      const onValues = await withRuntime(rt, { winograd: false }, () => run(rt, c, dequantized(c.weights, format), { precision: 'f32' }));
      if (format === 'q4') expect(same(atLoad, onValues)).toBe(true);
      else expect(ratioOf(atLoad, onValues)).toBeLessThan(1e-5);
    });
  }

  it("'float' dequantizes a pre-quantized file: the f32 model of the dequantized weights, bit for bit; a q4 file loaded as q8 is q8 of its values", async () => {
    const rt = await runtime();
    const c = await loadCase();
    for (const format of FORMATS) {
      const stored = preQuantized(c.weights, format);
      const values = dequantized(c.weights, format);
      const asFloat = await run(rt, c, stored, { precision: 'f32', weights: 'float' }, (unet) => {
        expect([...unet.w.weights.values()].some((t) => t.quant)).toBe(false);
        // Every weight in f32: the dequantized values take the float bytes.
        let want = 0;
        for (const t of c.weights.values()) want += buf(4 * numel(t.shape));
        expect(unet.w.store.gpuBytes).toBe(want);
      });
      expect(same(asFloat, await run(rt, c, values, { precision: 'f32' }))).toBe(true);
    }
    // Requantized: the q4 file's values quantized again per row.
    const q4 = preQuantized(c.weights, 'q4');
    const q4Values = dequantized(c.weights, 'q4');
    const requantized = await run(rt, c, q4, { precision: 'f32', weights: 'q8' }, (unet) => {
      expect(new Set([...unet.w.weights.values()].filter((t) => t.quant).map((t) => t.quant!.format))).toEqual(new Set(['q8']));
    });
    expect(same(requantized, await run(rt, c, q4Values, { precision: 'f32', weights: 'q8' }))).toBe(true);
  });

  it('with f16 activations (shader-f16): q8 and q4 weights stay close to the f16 model', async (ctx) => {
    const rt = await runtime();
    if (!hasF16(rt)) ctx.skip();
    const c = await loadCase();
    const f16 = await run(rt, c, c.weights, { precision: 'f16' });
    for (const format of FORMATS) {
      const atLoad = await run(rt, c, c.weights, { precision: 'f16', weights: format });
      expect(same(atLoad, await run(rt, c, preQuantized(c.weights, format), { precision: 'f16' }))).toBe(true);
      const ratio = ratioOf(atLoad, f16);
      console.log(`unet2d-cond [f16 activations, ${format} weights]: vs the f16 model max|err|/max|ref| ${ratio.toExponential(2)}`);
      expect(ratio).toBeLessThan(BOUND[format]);
    }
  });
});

describe('a malformed pre-quantized file, or option', () => {
  const KEY = 'conv_in.weight'; // [32, 4, 3, 3]: K = 36, two q4 blocks a row

  async function expectBuildError(tensors: Tensors, opts: ModelOptions, cls: typeof WeightError | typeof ConfigError, message: RegExp) {
    const rt = await runtime();
    const c = await loadCase();
    const before = rt.liveBytes;
    expect(() => build(rt, c, tensors, opts)).toThrow(cls);
    expect(() => build(rt, c, tensors, opts)).toThrow(message);
    // The weights uploaded before the error were freed (buildModel).
    expect(rt.liveBytes).toBe(before);
  }

  it('F32 scales: WeightError naming the weight and its scale key', async () => {
    const c = await loadCase();
    const stored = preQuantized(c.weights, 'q8');
    const n = c.weights.get(KEY)!.shape[0]!;
    stored.set(KEY + SCALE_SUFFIX, host(KEY + SCALE_SUFFIX, 'F32', [n], new Float32Array(n).fill(0.01)));
    await expectBuildError(stored, { precision: 'f32' }, WeightError, /q8 weight 'conv_in\.weight' has F32 scales 'conv_in\.weight_scale'; they must be F16/);
  });

  it('values in the wrong shape: WeightError naming the quantization and the weight shape', async () => {
    const c = await loadCase();
    // q4 values of K = 36 unpadded ([32, 18] bytes instead of [32, 32]).
    const q4 = preQuantized(c.weights, 'q4');
    q4.set(KEY, host(KEY, 'U8', [32, 18], new Uint8Array(32 * 18)));
    await expectBuildError(q4, { precision: 'f32' }, WeightError, /weight 'conv_in\.weight' has shape \[32, 18\], expected \[32, 32\] \(q4-quantized \[32, 4, 3, 3\] weight\)/);
    // q8 values flattened to [N, K] instead of the weight's own shape.
    const q8 = preQuantized(c.weights, 'q8');
    q8.set(KEY, { ...q8.get(KEY)!, shape: [32, 36] });
    await expectBuildError(q8, { precision: 'f32' }, WeightError, /weight 'conv_in\.weight' has shape \[32, 36\], expected \[32, 4, 3, 3\] \(q8-quantized \[32, 4, 3, 3\] weight\)/);
    // Scales of q4 in q8's shape.
    const q4s = preQuantized(c.weights, 'q4');
    q4s.set(KEY + SCALE_SUFFIX, host(KEY + SCALE_SUFFIX, 'F16', [32], new Uint16Array(32)));
    await expectBuildError(q4s, { precision: 'f32' }, WeightError, /'conv_in\.weight_scale' has shape \[32\], expected \[32, 2\] \(q4-quantized/);
  });

  it("int8 values without their `_scale` tensor: WeightError naming the missing key, not the integers read as weights", async () => {
    const rt = await runtime();
    const c = await loadCase();
    const stored = preQuantized(c.weights, 'q8');
    const key = [...stored.keys()].find((k) => stored.get(k)!.dtype === 'I8')!;
    stored.delete(key + SCALE_SUFFIX);
    for (const weights of [undefined, 'q8', 'float'] as const) {
      expect(() => build(rt, c, stored, { precision: 'f32', weights })).toThrow(new RegExp(`weight '${key.replace(/\./g, '\\.')}' is I8 .* no '${key.replace(/\./g, '\\.')}_scale'`));
    }
  });

  it("an unknown `weights` option: ConfigError listing q8, q4 and float", async () => {
    const c = await loadCase();
    await expectBuildError(c.weights, { precision: 'f32', weights: 'q5' as never }, ConfigError, /weights must be one of q8, q4, float, got "q5"/);
  });
});

describe('channel chunks of a quantized weight', () => {
  it('WeightSlices hands the whole weight back, and refuses a chunk (PlanLimitError naming the weight and format)', async () => {
    const rt = await runtime();
    const [N, C] = [8, 6];
    const q = quantize('q4', Float32Array.from({ length: N * C * 9 }, (_, i) => Math.sin(i)), N, C * 9);
    const w: Tensor = uploadQuantized(rt, q, [N, C, 3, 3], 'conv.weight');
    const owned: GPUBuffer[] = [];
    try {
      const slices = new WeightSlices(rt, (b) => owned.push(b));
      expect(slices.slice(w, 0, N, 0, C)).toBe(w);
      expect(() => slices.slice(w, 0, 4)).toThrow(PlanLimitError);
      expect(() => slices.slice(w, 0, N, 2, 4)).toThrow(/conv\.weight: a quantized \(q4\) weight cannot be cut into channel chunks \[0:8, 2:4\]/);
      expect(owned).toEqual([]);
    } finally {
      rt.destroyBuffer(w.buffer);
    }
  });
});

// The pipeline on weights packed as f16 beside f32 activations (precision 'auto' without
// shader-f16): the U-Net's quantized GEMMs read its biases and norms as packed f16 words.
describe('a quantized SD pipeline (sd-tiny)', () => {
  const opts = { prompt: 'a red boat', negativePrompt: 'blurry', steps: 1, guidance: 5, seed: 3, scheduler: 'ddim' as const };
  const dirs: string[] = [];
  const models: Model[] = [];
  afterAll(async () => {
    for (const m of models) m.destroy();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  async function load(source: string, weights?: 'q8' | 'q4'): Promise<Model> {
    const gpu = (await runtimeWithoutF16()).gpu;
    const m = await loadModel(source, { gpu, precision: 'auto', ...(weights ? { weights } : {}) });
    models.push(m);
    return m;
  }

  function unetOf(m: Model): UNet2DConditionModel {
    if (m.loaded.kind !== 'text') throw new Error('text model expected');
    return m.loaded.sd.unet;
  }

  /** sd-tiny with some components' weight files replaced (in `order`: a scale after or before its values). */
  async function folder(files: Partial<Record<'unet' | 'vae' | 'text_encoder', Tensors>>, order: 'values first' | 'scales first' = 'values first'): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'fresco-quant-'));
    dirs.push(dir);
    await cp(SD, dir, { recursive: true });
    for (const [component, tensors] of Object.entries(files)) {
      const spec: Record<string, { dtype: DType; shape: number[]; data: ArrayBufferView }> = {};
      const entries = [...tensors];
      if (order === 'scales first') entries.sort(([a], [b]) => Number(b.endsWith(SCALE_SUFFIX)) - Number(a.endsWith(SCALE_SUFFIX)));
      for (const [k, t] of entries) spec[k] = { dtype: t.dtype, shape: t.shape, data: t.bytes };
      await writeFile(join(dir, component, component === 'text_encoder' ? 'model.safetensors' : 'diffusion_pytorch_model.safetensors'), writeSafetensors(spec));
    }
    return dir;
  }

  it('pre-quantized folders (streamed from disk) give the image of quantizing at load, the VAE and text encoder dequantized; weightBytes shrink by exactly the quantized layouts', async () => {
    const float = await load(SD);
    const floatImage = await generate(float, opts);
    const read = (c: string) => readSafetensorsFile(`${SD}/${c}/${c === 'text_encoder' ? 'model' : 'diffusion_pytorch_model'}.safetensors`);
    const [unetFile, vaeFile, teFile] = await Promise.all([read('unet'), read('vae'), read('text_encoder')]);
    const gemm = [...unetFile].filter(([, t]) => isGemm(t));
    // The f16 bytes of the U-Net's GEMM weights, and what each format takes instead.
    const f16Bytes = gemm.reduce((n, [, t]) => n + buf(2 * numel(t.shape)), 0);
    for (const format of FORMATS) {
      // q8: the VAE's and text encoder's files are pre-quantized too (the token table, read in row
      // chunks, included), and they load dequantized (floatWeights): against a folder holding their
      // dequantized values. q4: the U-Net's file alone, each scale before its values.
      const both = format === 'q8';
      const reference = both ? await folder({ vae: dequantized(vaeFile, format), text_encoder: dequantized(teFile, format) }) : SD;
      const atLoad = await load(reference, format);
      const qBytes = gemm.reduce((n, [, t]) => n + buf(quantLayout(format, ...rowsOf(t.shape)).bytes), 0);
      expect([...unetOf(atLoad).w.weights].filter(([, t]) => t.quant).map(([k]) => k).sort()).toEqual(gemm.map(([k]) => k).sort());
      expect(float.weightBytes - atLoad.weightBytes).toBe(f16Bytes - qBytes);
      console.log(`sd-tiny [${format}]: Model.weightBytes ${atLoad.weightBytes} vs ${float.weightBytes} with f16 weights; the U-Net's GEMM weights ${qBytes} vs ${f16Bytes} bytes (${(qBytes / f16Bytes).toFixed(3)})`);
      expect(qBytes / f16Bytes).toBeLessThan(format === 'q8' ? 0.6 : 0.35);

      const stored = both
        ? await folder({ unet: preQuantized(unetFile, format), vae: preQuantized(vaeFile, format), text_encoder: preQuantized(teFile, format) })
        : await folder({ unet: preQuantized(unetFile, format) }, 'scales first');
      const fromFolder = await load(stored);
      expect(fromFolder.weightBytes).toBe(atLoad.weightBytes);
      expect([...unetOf(fromFolder).w.weights.values()].filter((t) => t.quant?.format === format).length).toBe(gemm.length);
      if (fromFolder.loaded.kind === 'text') expect([...fromFolder.loaded.sd.textEncoder.w.weights.values()].some((t) => t.quant)).toBe(false);

      const a = await generate(atLoad, opts);
      const b = await generate(fromFolder, opts);
      expect(same(a.raw, b.raw)).toBe(true);
      const ratio = ratioOf(a.raw, floatImage.raw);
      console.log(`sd-tiny [${format}]: image vs f16 weights max|err|/max|ref| ${ratio.toExponential(2)}`);
      expect(ratio).toBeGreaterThan(0);
      expect(ratio).toBeLessThan(BOUND[format]);
      atLoad.destroy();
      fromFolder.destroy();
    }
  });

  it("LoRA on quantized weights: loaded unfused by default (the explicit unfused image, bit for bit); fuse: true is LoraError 'quantized'", async () => {
    const m = await load(SD, 'q8');
    if (m.loaded.kind !== 'text') throw new Error('text model expected');
    const uw = m.loaded.sd.unet.w.weights;
    const tw = m.loaded.sd.textEncoder.w.weights;
    const attn = [...uw.keys()].find((k) => k.endsWith('attn1.to_q.weight'))!;
    const conv = [...uw.keys()].find((k) => /resnets\.0\.conv1\.weight$/.test(k))!;
    const te = 'text_model.encoder.layers.0.self_attn.q_proj.weight';
    expect(uw.get(attn)!.quant?.format).toBe('q8');
    expect(uw.get(conv)!.quant?.format).toBe('q8');
    expect(tw.get(te)!.quant).toBeUndefined();

    // A kohya file of rank-2 pairs (seeded values) for the given weights.
    let seed = 7;
    const rand = (n: number) =>
      Float32Array.from({ length: n }, () => {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        return ((seed / 2 ** 32) * 2 - 1) * 0.5;
      });
    const lora = (targets: [string, string, Tensor][]) => {
      const spec: Record<string, { dtype: DType; shape: number[]; data: ArrayBufferView }> = {};
      for (const [prefix, key, t] of targets) {
        const [out, ...rest] = t.shape as number[];
        const isConv = rest.length === 3;
        const k = `${prefix}${key.slice(0, -'.weight'.length).replace(/\./g, '_')}`;
        spec[`${k}.lora_down.weight`] = { dtype: 'F32', shape: [2, ...rest], data: rand(2 * numel(rest)) };
        spec[`${k}.lora_up.weight`] = { dtype: 'F32', shape: isConv ? [out!, 2, 1, 1] : [out!, 2], data: rand(out! * 2) };
      }
      return writeSafetensors(spec);
    };
    const bytes = lora([['lora_unet_', attn, uw.get(attn)!], ['lora_unet_', conv, uw.get(conv)!], ['lora_te_', te, tw.get(te)!]]);

    // The text encoder alone is float: 'auto' fuses it, as before quantization existed.
    const teOnly = lora([['lora_te_', te, tw.get(te)!]]);
    expect(await m.loadLora(teOnly, { name: 'te' })).toMatchObject({ fused: true, layers: { text_encoder: 1 } });
    await m.unloadLora('te');

    const teBefore = await readTensor(m.rt, tw.get(te)!);
    const before = await generate(m, opts);
    expect(await m.loadLora(bytes, { name: 'auto', scale: 0.8 })).toEqual({ name: 'auto', scale: 0.8, fused: false, layers: { unet: 2, text_encoder: 1 }, skipped: [] });
    const auto = await generate(m, opts);
    await m.unloadLora('auto');
    expect(await m.loadLora(bytes, { name: 'unfused', scale: 0.8, fuse: false })).toMatchObject({ fused: false });
    const unfused = await generate(m, opts);
    await m.unloadLora('unfused');
    expect(same(auto.raw, unfused.raw)).toBe(true);
    // The adapter did something.
    const change = ratioOf(auto.raw, before.raw);
    console.log(`sd-tiny [q8]: an unfused LoRA on 3 layers moves the image by max|diff|/max ${change.toExponential(2)}`);
    expect(change).toBeGreaterThan(1e-3);

    const err = await m.loadLora(bytes, { name: 'fused', fuse: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LoraError);
    expect((err as LoraError).code).toBe('quantized');
    expect((err as LoraError).message).toMatch(/LoRA 'fused': .*(attn1\.to_q|conv1)\.weight is stored quantized \(q8\).*fuse: false/);
    // Refused before anything was merged: no adapter, the text encoder's weight untouched, the image the model's own.
    expect(m.loraAdapters).toEqual([]);
    expect(Array.from(await readTensor(m.rt, tw.get(te)!))).toEqual(Array.from(teBefore));
    expect(same((await generate(m, opts)).raw, before.raw)).toBe(true);
  });
});

describe('a quantized AutoencoderKL (a building block; loadModel keeps VAEs float)', () => {
  it("encodeMean reads quant_conv's leading rows of a quantized weight (a view, not a copy): q4 equals the f32 kernels on the dequantized weights bit for bit", async () => {
    const { AutoencoderKL } = await import('../../src/models/autoencoder_kl.ts');
    const { readAutoencoderKLConfig } = await import('../../src/models/autoencoder_kl_config.ts');
    const rt = await runtime();
    const dir = `${SD}/vae`;
    const config = readAutoencoderKLConfig(await readJson(`${dir}/config.json`), dir);
    const weights = await readSafetensorsFile(`${dir}/diffusion_pytorch_model.safetensors`);
    const H = 16;
    const image = Float32Array.from({ length: config.inChannels * H * H }, (_, i) => Math.sin(i * 0.37));
    const encode = async (tensors: Tensors, opts: ModelOptions) => {
      const vae = buildModel(AutoencoderKL, rt, new WeightStore(new Map(tensors), 'test VAE'), config, opts);
      const buffer = rt.upload(image, 'image');
      try {
        return (await runGraphWithPlan(rt, 'quantized VAE', (g) => vae.encodeMean(g, { buffer, shape: [1, config.inChannels, H, H], label: 'image' }))).out;
      } finally {
        rt.destroyBuffer(buffer);
        vae.destroy();
      }
    };
    // The float runs take the implicit-GEMM convs too, as quantized weights always do.
    const plain = (tensors: Tensors) => withRuntime(rt, { winograd: false }, () => encode(tensors, { precision: 'f32' }));
    const q4 = await encode(weights, { precision: 'f32', weights: 'q4' });
    expect(same(q4, await plain(dequantized(weights, 'q4')))).toBe(true);
    // q8 applies the row scales to the sums: within f32 rounding of the dequantized run.
    const q8 = await encode(weights, { precision: 'f32', weights: 'q8' });
    expect(ratioOf(q8, await plain(dequantized(weights, 'q8')))).toBeLessThan(1e-5);
  });
});

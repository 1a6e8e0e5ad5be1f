// LoRA merged into a loaded model on the GPU, checked against W + scale · (alpha / rank) · up · down
// computed on the CPU from the same files, in both key forms (kohya, PEFT), through scale changes,
// two adapters at once and unloading; and the errors a wrong file gets.
import { describe, expect, it } from 'vitest';
import { generate, loadModel, type Model } from '../../src/api.ts';
import type { Tensor } from '../../src/graph/tensor.ts';
import { readTensor } from '../../src/kernels/cast.ts';
import { parseSafetensors, writeSafetensors, type DType } from '../../src/io/safetensors.ts';
import { toF16Array } from '../../src/io/f16.ts';
import { readLoraLayers } from '../../src/io/lora_file.ts';
import { LoraSet } from '../../src/models/lora.ts';
import { loadSdFolder } from '../../src/pipelines/sd_folder.ts';
import { LoraError } from '../../src/errors.ts';
import { runtime } from '../helpers/gpu.ts';
import { roundF16, runtimeWithoutF16 } from '../helpers/weights.ts';

const SD = 'tests/fixtures/sd-tiny';
type Spec = Record<string, { dtype: DType; shape: number[]; data: ArrayBufferView }>;

function rand(n: number, seed: number, scale = 0.5): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return ((s / 2 ** 32) * 2 - 1) * scale;
  });
}

interface Pair {
  component: 'unet' | 'text_encoder';
  module: string;
  up: Float32Array;
  down: Float32Array;
  upShape: number[];
  downShape: number[];
  alpha: number | null;
}

/** A rank-`rank` pair for the weight `w` (linear or conv) with seeded values. */
function pairFor(component: Pair['component'], module: string, w: Tensor, rank: number, seed: number, alpha: number | null): Pair {
  const [out, ...rest] = w.shape as number[];
  const inner = rest.reduce((a, b) => a * b, 1);
  const conv = rest.length === 3;
  return {
    component,
    module,
    up: rand(out! * rank, seed),
    down: rand(rank * inner, seed + 1),
    upShape: conv ? [out!, rank, 1, 1] : [out!, rank],
    downShape: [rank, ...rest],
    alpha,
  };
}

function kohyaFile(pairs: Pair[]): Uint8Array {
  const spec: Spec = {};
  for (const p of pairs) {
    const k = `${p.component === 'unet' ? 'lora_unet_' : 'lora_te_'}${p.module.replace(/\./g, '_')}`;
    spec[`${k}.lora_down.weight`] = { dtype: 'F32', shape: p.downShape, data: p.down };
    spec[`${k}.lora_up.weight`] = { dtype: 'F32', shape: p.upShape, data: p.up };
    if (p.alpha !== null) spec[`${k}.alpha`] = { dtype: 'F32', shape: [], data: Float32Array.of(p.alpha) };
  }
  return writeSafetensors(spec);
}

/** PEFT keys, with down stored in F16 (the reader widens any float dtype; `down` becomes its f16 values). */
function peftFile(pairs: Pair[]): Uint8Array {
  const spec: Spec = {};
  for (const p of pairs) {
    p.down = roundF16(p.down);
    spec[`${p.component}.${p.module}.lora_A.weight`] = { dtype: 'F16', shape: p.downShape, data: toF16Array(p.down).subarray(0, p.down.length) };
    spec[`${p.component}.${p.module}.lora_B.weight`] = { dtype: 'F32', shape: p.upShape, data: p.up };
  }
  return writeSafetensors(spec);
}

/** W + scale · (alpha / rank) · up · down on the CPU, in f64. */
function merged(w: Float32Array, pairs: { p: Pair; scale: number }[]): Float64Array {
  const out = Float64Array.from(w);
  for (const { p, scale } of pairs) {
    const rank = p.downShape[0]!;
    const k = scale * (p.alpha === null ? 1 : p.alpha / rank);
    const rows = p.upShape[0]!;
    const inner = p.down.length / rank;
    for (let o = 0; o < rows; o++) for (let r = 0; r < rank; r++) {
      const u = k * p.up[o * rank + r]!;
      for (let j = 0; j < inner; j++) out[o * inner + j]! += u * p.down[r * inner + j]!;
    }
  }
  return out;
}

function maxErr(a: Float32Array, b: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!) / (1e-6 + 1e-5 * Math.abs(b[i]!)));
  return m;
}

function weightsOf(model: Model) {
  if (model.loaded.kind !== 'text') throw new Error('text model expected');
  return { unet: model.loaded.sd.unet.w.weights, text_encoder: model.loaded.sd.textEncoder.w.weights };
}

/** Modules of each kind the tests adapt: an attention projection, a conv, a text encoder projection. */
function pick(model: Model) {
  const w = weightsOf(model);
  const attn = [...w.unet.keys()].find((k) => k.endsWith('attn1.to_q.weight'))!.slice(0, -'.weight'.length);
  const conv = [...w.unet.keys()].find((k) => /resnets\.0\.conv1\.weight$/.test(k))!.slice(0, -'.weight'.length);
  const ff = [...w.unet.keys()].find((k) => k.endsWith('ff.net.2.weight'))!.slice(0, -'.weight'.length);
  const te = 'text_model.encoder.layers.0.self_attn.q_proj';
  return { w, attn, conv, ff, te };
}

describe('LoRA merged on the GPU', () => {
  it('kohya and PEFT files: each weight becomes W + scale·(alpha/rank)·up·down; rescaled, stacked and unloaded exactly', async () => {
    const gpu = (await runtime()).gpu;
    const model = await loadModel(SD, { gpu, precision: 'f32' });
    try {
      const { w, attn, conv, ff, te } = pick(model);
      const rt = model.rt;
      const read = async (c: 'unet' | 'text_encoder', m: string) => readTensor(rt, w[c].get(`${m}.weight`)!);
      const orig = { attn: await read('unet', attn), conv: await read('unet', conv), ff: await read('unet', ff), te: await read('text_encoder', te) };
      const kohya = [pairFor('unet', attn, w.unet.get(`${attn}.weight`)!, 4, 1, 2), pairFor('unet', conv, w.unet.get(`${conv}.weight`)!, 3, 3, 6), pairFor('text_encoder', te, w.text_encoder.get(`${te}.weight`)!, 2, 5, null)];
      const peft = [pairFor('unet', attn, w.unet.get(`${attn}.weight`)!, 2, 7, null), pairFor('unet', ff, w.unet.get(`${ff}.weight`)!, 4, 9, null)];
      const peftBytes = peftFile(peft);

      const info = await model.loadLora(kohyaFile(kohya), { name: 'k', scale: 0.7 });
      expect(info).toEqual({ name: 'k', scale: 0.7, layers: { unet: 2, text_encoder: 1 } });
      expect(maxErr(await read('unet', attn), merged(orig.attn, [{ p: kohya[0]!, scale: 0.7 }]))).toBeLessThan(1);
      expect(maxErr(await read('unet', conv), merged(orig.conv, [{ p: kohya[1]!, scale: 0.7 }]))).toBeLessThan(1);
      expect(maxErr(await read('text_encoder', te), merged(orig.te, [{ p: kohya[2]!, scale: 0.7 }]))).toBeLessThan(1);
      // The change is real: far above the tolerance.
      expect(maxErr(await read('unet', attn), Float64Array.from(orig.attn))).toBeGreaterThan(100);

      await model.loadLora(peftBytes, { name: 'p', scale: -1.5 });
      await model.setLoraScales({ k: 0.25 });
      expect(model.loraAdapters.map((a) => [a.name, a.scale])).toEqual([['k', 0.25], ['p', -1.5]]);
      expect(maxErr(await read('unet', attn), merged(orig.attn, [{ p: kohya[0]!, scale: 0.25 }, { p: peft[0]!, scale: -1.5 }]))).toBeLessThan(1);
      expect(maxErr(await read('unet', ff), merged(orig.ff, [{ p: peft[1]!, scale: -1.5 }]))).toBeLessThan(1);

      await model.unloadLora('k');
      expect(maxErr(await read('unet', conv), Float64Array.from(orig.conv))).toBeLessThan(1);
      await model.unloadLora();
      expect(model.loraAdapters).toEqual([]);
      for (const [c, m, o] of [['unet', attn, orig.attn], ['unet', ff, orig.ff], ['text_encoder', te, orig.te]] as const) expect(maxErr(await read(c, m), Float64Array.from(o))).toBeLessThan(1);
    } finally {
      model.destroy();
    }
  });

  it('changes the image, and unloading gives the image back', async () => {
    const gpu = (await runtime()).gpu;
    const model = await loadModel(SD, { gpu, precision: 'f32' });
    try {
      const { w, attn, te } = pick(model);
      const opts = { prompt: 'a red boat', steps: 2, guidance: 5, seed: 3, scheduler: 'ddim' as const };
      const before = await generate(model, opts);
      const lora = kohyaFile([pairFor('unet', attn, w.unet.get(`${attn}.weight`)!, 4, 11, 4), pairFor('text_encoder', te, w.text_encoder.get(`${te}.weight`)!, 4, 13, 4)]);
      // A generation asked for before the load runs on the weights without it; one after, with it.
      const [a, , b] = await Promise.all([generate(model, opts), model.loadLora(lora), generate(model, opts)]);
      expect(Array.from(a.raw)).toEqual(Array.from(before.raw));
      const diff = Math.max(...Array.from(b.raw, (v, i) => Math.abs(v - before.raw[i]!)));
      expect(diff).toBeGreaterThan(1e-3);
      await model.unloadLora();
      const after = await generate(model, opts);
      expect(Math.max(...Array.from(after.raw, (v, i) => Math.abs(v - before.raw[i]!)))).toBeLessThan(1e-4);
    } finally {
      model.destroy();
    }
  });

  it('merges into f16 weights read as packed words (no shader-f16), rounding once per merge', async () => {
    const rt = await runtimeWithoutF16();
    const sd = await loadSdFolder(rt, SD, { precision: 'auto' });
    try {
      expect(sd.precision.weights).toBe('f16');
      const w = sd.unet.w.weights;
      const key = [...w.keys()].find((k) => k.endsWith('attn2.to_k.weight'))!;
      const module = key.slice(0, -'.weight'.length);
      const t = w.get(key)!;
      const orig = await readTensor(rt, t);
      const p = pairFor('unet', module, t, 4, 21, 8);
      const set = new LoraSet(rt, { unet: sd.unet.w });
      await set.load('x', readLoraLayers(parseSafetensors(kohyaFile([p]), 'x.safetensors'), 'x.safetensors'), 0.9, 'x');
      const got = await readTensor(rt, t);
      const want = roundF16(Float32Array.from(merged(orig, [{ p, scale: 0.9 }])));
      let m = 0;
      for (let i = 0; i < got.length; i++) m = Math.max(m, Math.abs(got[i]! - want[i]!) / Math.max(Math.abs(want[i]!) * 2 ** -10, 2 ** -24));
      // At most one f16 step from the correctly rounded sum (the f32 delta rounds before the add).
      expect(m).toBeLessThanOrEqual(1);
      set.destroy();
    } finally {
      sd.destroy();
    }
  });

  it('reads kohya names in the original SD layout (input_blocks_…) as diffusers maps them', async () => {
    const gpu = (await runtime()).gpu;
    const model = await loadModel(SD, { gpu, precision: 'f32' });
    try {
      const { w } = pick(model);
      const lpb = model.loaded.kind === 'text' ? model.loaded.sd.unet.config.layers[0]! : 0;
      // down_blocks.0.attentions.0 is input block 1, layer 1 (after conv_in, block 0)
      const module = 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q';
      const t = w.unet.get(`${module}.weight`)!;
      expect(t).toBeDefined();
      const orig = await readTensor(model.rt, t);
      const p = pairFor('unet', 'input_blocks.1.1.transformer_blocks.0.attn1.to_q', t, 2, 31, 1);
      const info = await model.loadLora(kohyaFile([p]), { name: 'sgm' });
      expect(info.layers).toEqual({ unet: 1 });
      expect(lpb).toBeGreaterThan(0);
      expect(maxErr(await readTensor(model.rt, t), merged(orig, [{ p, scale: 1 }]))).toBeLessThan(1);
    } finally {
      model.destroy();
    }
  });

  it('names a file for another model, a rank mismatch, an unknown form, and a name used twice', async () => {
    const gpu = (await runtime()).gpu;
    const model = await loadModel(SD, { gpu, precision: 'f32' });
    try {
      const { w, attn } = pick(model);
      const t = w.unet.get(`${attn}.weight`)!;
      const other = kohyaFile([{ ...pairFor('unet', attn, t, 2, 1, null), module: 'double_blocks.0.img_attn.qkv' }]);
      await expect(model.loadLora(other)).rejects.toThrow(LoraError);
      await expect(model.loadLora(other)).rejects.toThrow(/none of its 1 LoRA layers names a module of this model \(first: unet: double_blocks_0_img_attn_qkv\); is it for another architecture\?/);
      const bad = pairFor('unet', attn, t, 2, 1, null);
      const wrongRank = writeSafetensors({ [`unet.${attn}.lora_A.weight`]: { dtype: 'F32', shape: [2, t.shape[1]!], data: bad.down }, [`unet.${attn}.lora_B.weight`]: { dtype: 'F32', shape: [t.shape[0]!, 3], data: new Float32Array(t.shape[0]! * 3) } });
      await expect(model.loadLora(wrongRank)).rejects.toThrow(/are not a rank-2 pair/);
      const wrongShape = kohyaFile([{ ...bad, downShape: [2, t.shape[1]! + 1], down: new Float32Array(2 * (t.shape[1]! + 1)) }]);
      await expect(model.loadLora(wrongShape)).rejects.toThrow(/does not fit the weight .*attn1\.to_q\.weight/);
      const loha = writeSafetensors({ 'lora_unet_x.hada_w1_a': { dtype: 'F32', shape: [1], data: new Float32Array(1) } });
      await expect(model.loadLora(loha)).rejects.toThrow(/is a LoHa adapter, not a LoRA/);
      await model.loadLora(kohyaFile([bad]), { name: 'one' });
      await expect(model.loadLora(kohyaFile([bad]), { name: 'one' })).rejects.toThrow(/a LoRA named 'one' is already loaded/);
      await expect(model.setLoraScales({ two: 1 })).rejects.toThrow(/no LoRA named 'two' is loaded \(loaded: one\)/);
      await expect(model.setLoraScales({ one: Number.NaN })).rejects.toThrow(/scale must be a finite number/);
    } finally {
      model.destroy();
    }
  });
});


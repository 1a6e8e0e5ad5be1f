// LoRA merged into a loaded model on the GPU, checked against W + scale · (alpha / rank) · up · down
// computed on the CPU from the same files, in both key forms (kohya, PEFT), through scale changes,
// two adapters at once and unloading; and the errors a wrong file gets. Unfused LoRA (the GEMM
// epilogue's low-rank term) against the fused one on every kind of layer, through scale changes
// (exact on the way back), stacked and mixed adapters, and convs split into channel chunks.
import { afterEach, describe, expect, it } from 'vitest';
import { generate, loadModel, type Model } from '../../src/api.ts';
import type { Runtime } from '../../src/gpu/runtime.ts';
import { Graph } from '../../src/graph/graph.ts';
import type { Tensor } from '../../src/graph/tensor.ts';
import { readTensor } from '../../src/kernels/cast.ts';
import { conv2d } from '../../src/kernels/gemm.ts';
import { loraAttachment, setLoraAttachment, type LoraAttachment } from '../../src/kernels/lora_attach.ts';
import { single, splitConv, WeightSlices, type Split } from '../../src/models/channel_split.ts';
import { parseSafetensors, writeSafetensors, type DType } from '../../src/io/safetensors.ts';
import { toF16Array } from '../../src/io/f16.ts';
import { readLoraLayers } from '../../src/io/lora_file.ts';
import { LoraSet } from '../../src/models/lora.ts';
import { loadSdFolder } from '../../src/pipelines/sd_folder.ts';
import { LoraError } from '../../src/errors.ts';
import { compare } from '../helpers/compare.ts';
import { input, randn, runtime } from '../helpers/gpu.ts';
import { roundF16, runtimeWithoutF16 } from '../helpers/weights.ts';
import { runAndRead } from '../helpers/split.ts';

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
      expect(info).toEqual({ name: 'k', scale: 0.7, fused: true, layers: { unet: 2, text_encoder: 1 }, skipped: [] });
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

  it("a conv's Winograd transform follows a merge: a LoRA loaded after a generation gives the image of one loaded before any", async () => {
    const gpu = (await runtime()).gpu;
    const opts = { prompt: 'a red boat', steps: 2, guidance: 5, seed: 3, scheduler: 'ddim' as const };
    const late = await loadModel(SD, { gpu, precision: 'f32' });
    const early = await loadModel(SD, { gpu, precision: 'f32' });
    try {
      const { w, conv } = pick(late);
      const lora = kohyaFile([pairFor('unet', conv, w.unet.get(`${conv}.weight`)!, 4, 17, 4)]);
      // `late` makes its transforms from the plain weights, then merges; `early` merges first.
      const before = await generate(late, opts);
      await late.loadLora(lora);
      const afterMerge = await generate(late, opts);
      await early.loadLora(lora);
      const fresh = await generate(early, opts);
      expect(Math.max(...Array.from(afterMerge.raw, (v, i) => Math.abs(v - before.raw[i]!)))).toBeGreaterThan(1e-3);
      expect(Array.from(afterMerge.raw)).toEqual(Array.from(fresh.raw));
    } finally {
      late.destroy();
      early.destroy();
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
      // A generation under way while a LoRA loads runs on the weights without it (the file is read
      // first, then the merge waits for the generation); one after the load, with it.
      const [a] = await Promise.all([generate(model, opts), model.loadLora(lora)]);
      const b = await generate(model, opts);
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

  it("skips, and reports, the kohya layers diffusers' conversion drops (conv_in, the time embedding)", async () => {
    const gpu = (await runtime()).gpu;
    const model = await loadModel(SD, { gpu, precision: 'f32' });
    try {
      const { w, attn } = pick(model);
      const convIn = w.unet.get('conv_in.weight')!;
      const orig = await readTensor(model.rt, convIn);
      const pairs = [pairFor('unet', attn, w.unet.get(`${attn}.weight`)!, 2, 41, null), pairFor('unet', 'conv_in', convIn, 2, 43, null), pairFor('unet', 'time_embedding.linear_1', w.unet.get('time_embedding.linear_1.weight')!, 2, 45, null)];
      const info = await model.loadLora(kohyaFile(pairs), { name: 'locon' });
      expect(info.layers).toEqual({ unet: 1 });
      expect(info.skipped).toEqual(['unet: conv_in', 'unet: time_embedding_linear_1']);
      expect(Array.from(await readTensor(model.rt, convIn))).toEqual(Array.from(orig));
      await expect(model.loadLora(kohyaFile(pairs.slice(1)), { name: 'only-skipped' })).rejects.toThrow(/its 2 LoRA layers are all ones diffusers v0\.25\.1 does not apply/);
      model.destroy();
      await expect(model.loadLora(kohyaFile(pairs), { name: 'late' })).rejects.toThrow(/destroyed/);
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


/** Largest |a − b| over two images' raw values. */
function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/**
 * One module of each kind a LoRA reaches (unet unless named): attention projections (self, cross
 * with the text states, to_out with its residual), the GEGLU projection, Transformer2D's 1x1-conv
 * proj_in / proj_out (read as linear layers), resnet convs with the time embedding, a 1x1 shortcut,
 * the stride-2 downsampler, the upsampler's nearest-2x conv, conv_in, time embedding linears, and
 * the text encoder's q_proj and fc1 (quick GELU after it).
 */
const EVERY_KIND: [Pair['component'], string][] = [
  ['unet', 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q'],
  ['unet', 'down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k'],
  ['unet', 'mid_block.attentions.0.transformer_blocks.0.attn1.to_out.0'],
  ['unet', 'mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj'],
  ['unet', 'down_blocks.0.attentions.0.proj_in'],
  ['unet', 'mid_block.attentions.0.proj_out'],
  ['unet', 'down_blocks.0.resnets.0.conv1'],
  ['unet', 'up_blocks.0.resnets.0.conv_shortcut'],
  ['unet', 'down_blocks.0.downsamplers.0.conv'],
  ['unet', 'up_blocks.0.upsamplers.0.conv'],
  ['unet', 'conv_in'],
  ['unet', 'time_embedding.linear_1'],
  ['unet', 'down_blocks.1.resnets.0.time_emb_proj'],
  ['text_encoder', 'text_model.encoder.layers.0.self_attn.q_proj'],
  ['text_encoder', 'text_model.encoder.layers.1.mlp.fc1'],
];

function pairsFor(model: Model, modules: [Pair['component'], string][], seed: number, rank = 3, alpha: number | null = 6): Pair[] {
  const w = weightsOf(model);
  return modules.map(([c, m], i) => {
    const t = w[c].get(`${m}.weight`);
    if (!t) throw new Error(`sd-tiny has no ${c} ${m}.weight`);
    return pairFor(c, m, t, rank + (i % 2), seed + 2 * i, alpha);
  });
}

describe('unfused LoRA (the low-rank term in the GEMM epilogue)', () => {
  const opts = { prompt: 'a red boat', negativePrompt: 'blurry', steps: 2, guidance: 5, seed: 3, scheduler: 'ddim' as const };

  it('gives the fused image within f32 rounding on every kind of layer, uses every attachment, and leaves the weights untouched', async () => {
    const gpu = (await runtime()).gpu;
    const model = await loadModel(SD, { gpu, precision: 'f32' });
    try {
      const w = weightsOf(model);
      const pairs = pairsFor(model, EVERY_KIND, 100);
      // PEFT keys: diffusers adapts conv_in and the time embedding in that form (a kohya file's
      // conv_in / time_embedding layers are ones its conversion drops).
      const bytes = peftFile(pairs);
      const targets = EVERY_KIND.map(([c, m]) => w[c].get(`${m}.weight`)!);
      const orig = await Promise.all(targets.map((t) => readTensor(model.rt, t)));
      const before = await generate(model, opts);

      const info = await model.loadLora(bytes, { name: 'u', scale: 0.8, fuse: false });
      expect(info).toEqual({ name: 'u', scale: 0.8, fused: false, layers: { unet: 13, text_encoder: 2 }, skipped: [] });
      const unfused = await generate(model, opts);
      // Every adapted weight went through a GEMM that added its term (text encoder once, U-Net per step).
      for (const [i, t] of targets.entries()) expect(loraAttachment(t)?.uses ?? 0, EVERY_KIND[i]![1]).toBeGreaterThan(0);
      for (const [i, t] of targets.entries()) expect(Array.from(await readTensor(model.rt, t))).toEqual(Array.from(orig[i]!));
      await model.unloadLora('u');
      for (const t of targets) expect(loraAttachment(t)).toBeUndefined();
      // Nothing was merged, so nothing is left over: the image is the model's own, bit for bit.
      expect(Array.from((await generate(model, opts)).raw)).toEqual(Array.from(before.raw));

      await model.loadLora(bytes, { name: 'f', scale: 0.8 });
      const fused = await generate(model, opts);
      const change = maxDiff(fused.raw, before.raw);
      const err = maxDiff(unfused.raw, fused.raw);
      console.log(`sd-tiny, 15 layers at 0.8: unfused vs fused image max|diff| ${err.toExponential(2)} (the LoRA moves it by ${change.toExponential(2)})`);
      expect(change).toBeGreaterThan(1e-2);
      expect(err).toBeLessThan(1e-4);
    } finally {
      model.destroy();
    }
  });

  it('setLoraScales re-weights the next generation, and scales back exactly (no drift); scale 0 and unloading give the model back bit for bit', async () => {
    const gpu = (await runtime()).gpu;
    const model = await loadModel(SD, { gpu, precision: 'f32' });
    try {
      const bytes = kohyaFile(pairsFor(model, EVERY_KIND.slice(0, 8), 200));
      const before = await generate(model, opts);
      await model.loadLora(bytes, { name: 'u', scale: 1, fuse: false });
      const one = await generate(model, opts);
      await model.setLoraScales({ u: 0.3 });
      expect(model.loraAdapters).toEqual([{ name: 'u', scale: 0.3, fused: false, layers: { unet: 8 }, skipped: [] }]);
      const low = await generate(model, opts);
      expect(maxDiff(low.raw, one.raw)).toBeGreaterThan(1e-3);
      for (const s of [-2, 0.7, 5, 1]) await model.setLoraScales({ u: s });
      expect(Array.from((await generate(model, opts)).raw)).toEqual(Array.from(one.raw));
      await model.setLoraScales({ u: 0 });
      expect(Array.from((await generate(model, opts)).raw)).toEqual(Array.from(before.raw));
      await model.setLoraScales({ u: 0.3 });
      expect(Array.from((await generate(model, opts)).raw)).toEqual(Array.from(low.raw));
      await model.unloadLora();
      expect(Array.from((await generate(model, opts)).raw)).toEqual(Array.from(before.raw));

      // The same scale fused: the unfused 0.3 image within f32 rounding.
      await model.loadLora(bytes, { name: 'f', scale: 0.3 });
      const err = maxDiff((await generate(model, opts)).raw, low.raw);
      console.log(`sd-tiny, 8 layers at 0.3 after five rescales: unfused vs fused image max|diff| ${err.toExponential(2)}`);
      expect(err).toBeLessThan(1e-4);
    } finally {
      model.destroy();
    }
  });

  it('stacks unfused adapters on one weight and mixes them with fused ones: the all-fused image within f32 rounding', async () => {
    const gpu = (await runtime()).gpu;
    const model = await loadModel(SD, { gpu, precision: 'f32' });
    try {
      const w = weightsOf(model);
      const toQ = EVERY_KIND[0]!;
      const conv = EVERY_KIND[6]!;
      const a = kohyaFile(pairsFor(model, [toQ, conv, EVERY_KIND[13]!], 300, 2, 4));
      const b = peftFile(pairsFor(model, [toQ, EVERY_KIND[3]!, conv], 400, 5, null));
      const c = kohyaFile(pairsFor(model, [toQ, EVERY_KIND[9]!], 500, 4, 2));
      await model.loadLora(a, { name: 'a', scale: 0.7, fuse: false });
      await model.loadLora(b, { name: 'b', scale: -0.5, fuse: false });
      await model.loadLora(c, { name: 'c', scale: 0.4 });
      expect(model.loraAdapters.map((x) => [x.name, x.fused])).toEqual([['a', false], ['b', false], ['c', true]]);
      const q = loraAttachment(w.unet.get(`${toQ[1]}.weight`)!)!;
      // a's rank 2 and b's rank 5 stacked; c is in the weight itself.
      expect(q.down.shape).toEqual([7, 32]);
      expect(q.up.shape).toEqual([32, 7]);
      expect(q.what).toMatch(/LoRA 'a', 'b' \(unfused\) on unet down_blocks\.0\.attentions\.0\.transformer_blocks\.0\.attn1\.to_q\.weight/);
      const mixed = await generate(model, opts);
      await model.unloadLora('b');
      expect(loraAttachment(w.unet.get(`${toQ[1]}.weight`)!)!.down.shape).toEqual([2, 32]);
      await model.unloadLora();
      await model.loadLora(a, { name: 'a', scale: 0.7 });
      await model.loadLora(b, { name: 'b', scale: -0.5 });
      await model.loadLora(c, { name: 'c', scale: 0.4 });
      const err = maxDiff((await generate(model, opts)).raw, mixed.raw);
      console.log(`sd-tiny, unfused a + b stacked with fused c: vs all fused, image max|diff| ${err.toExponential(2)}`);
      expect(err).toBeLessThan(1e-4);
    } finally {
      model.destroy();
    }
  });
});

describe('unfused LoRA on convs split into channel chunks', () => {
  const saved: { rt: Runtime; limits: Runtime['planLimits'] }[] = [];
  afterEach(() => {
    for (const s of saved.splice(0)) s.rt.planLimits = s.limits;
  });

  async function runSplit(rt: Runtime, build: (g: Graph) => Split): Promise<Float32Array> {
    const g = new Graph(rt, 'split lora');
    return (await runAndRead(rt, g, [build(g)]))[0]!;
  }


  it('splits t over the input chunks and up over the output chunks: the unsplit result; other slices of an adapted weight are refused', async () => {
    const rt = await runtime();
    const [B, C, H, W, Cout, R] = [2, 8, 12, 12, 16, 2];
    const x = input(rt, randn(B * C * H * W, 1), [B, C, H, W], 'x');
    const w0 = { weight: input(rt, randn(Cout * C * 9, 2, 0.2), [Cout, C, 3, 3], 'w0'), bias: input(rt, randn(Cout, 3, 0.2), [Cout], 'b0') };
    const w1 = { weight: input(rt, randn(Cout * Cout * 9, 4, 0.2), [Cout, Cout, 3, 3], 'w1'), bias: input(rt, randn(Cout, 5, 0.2), [Cout], 'b1') };
    const temb = input(rt, randn(B * Cout, 6, 0.5), [B, Cout], 'temb');
    const owned = new Set<GPUBuffer>();
    const attach = (conv: { weight: Tensor }, seed: number): LoraAttachment => {
      const cin = conv.weight.shape[1]!;
      const a: LoraAttachment = {
        down: input(rt, randn(R * cin * 9, seed, 0.3), [R, cin, 3, 3], 'down'),
        up: input(rt, randn(Cout * R, seed + 1, 0.5), [Cout, R], 'up'),
        what: `test LoRA on ${conv.weight.label}`,
        uses: 0,
        own: (b) => owned.add(b),
        disown: (b) => owned.delete(b),
      };
      setLoraAttachment(conv.weight, a);
      return a;
    };
    const a0 = attach(w0, 10);
    const a1 = attach(w1, 20);
    const slices = new WeightSlices(rt, () => {});
    // 10 KiB bindings: x (one chunk) -> [2, 16, 24, 24] in 8 chunks (time embedding, upsample) ->
    // [2, 16, 12, 12] in 2 chunks (stride 2), each t ([2, 2, h, w]) in one binding.
    let hParts = 0;
    const build = (g: Graph) => {
      const h = splitConv(g, slices, 'c0', single(x), w0, { groups: 16, padding: 1, temb, upsample: true, silu: true });
      hParts = h.parts.length;
      return splitConv(g, slices, 'c1', h, w1, { groups: 8, padding: 1, stride: 2, scale: 0.5 });
    };
    try {
      const ref = await runSplit(rt, build);
      expect([a0.uses, a1.uses]).toEqual([1, 1]);
      expect(owned.size).toBe(0);
      saved.push({ rt, limits: rt.planLimits });
      rt.planLimits = { binding: 10240, buffer: rt.planLimits.buffer };
      const got = await runSplit(rt, (g) => {
        const out = build(g);
        expect([hParts, out.parts.length]).toEqual([8, 2]);
        return out;
      });
      expect([a0.uses, a1.uses]).toEqual([2, 2]);
      // up sliced per output chunk, down per input chunk, all handed to the attachments.
      expect(owned.size).toBeGreaterThan(0);
      const cmp = compare(got, ref, 1e-5, 1e-5);
      console.log(`split conv with LoRA vs unsplit: max|err| ${cmp.maxAbsErr.toExponential(2)} (max|ref| ${cmp.maxAbsRef.toFixed(2)})`);
      expect(cmp.ok, cmp.report).toBe(true);
      // A slice taken by anyone but splitConv would drop the adapter: refused by name.
      expect(() => slices.slice(w1.weight, 0, 8)).toThrow(LoraError);
      expect(() => slices.slice(w1.weight, 0, 8)).toThrow(/w1: test LoRA on w1 cannot be applied unfused to a channel chunk \[0:8, 0:16\]/);
    } finally {
      setLoraAttachment(w0.weight, null);
      setLoraAttachment(w1.weight, null);
      for (const b of owned) rt.destroyBuffer(b);
    }
  });

  it('the unsplit conv with the attachment equals conv2d with the term given explicitly', async () => {
    const rt = await runtime();
    const x = input(rt, randn(2 * 4 * 5 * 5, 31), [2, 4, 5, 5], 'x');
    const w = input(rt, randn(6 * 4 * 9, 32, 0.2), [6, 4, 3, 3], 'w');
    const down = input(rt, randn(2 * 4 * 9, 33, 0.3), [2, 4, 3, 3], 'down');
    const up = input(rt, randn(6 * 2, 34, 0.5), [6, 2], 'up');
    const run = async (build: (g: Graph) => Tensor) => {
      const g = new Graph(rt, 'lora explicit');
      const out = build(g);
      g.finalize();
      g.submit();
      await rt.assertHealthy();
      const r = await rt.read(out.buffer, 2 * 6 * 25 * 4);
      g.destroy();
      return r;
    };
    const explicit = await run((g) => conv2d(g, 'c', x, w, { padding: 1, lora: { t: conv2d(g, 't', x, down, { padding: 1 }), up } }));
    setLoraAttachment(w, { down, up, what: 'test', uses: 0, own: () => {}, disown: () => {} });
    try {
      const attached = await run((g) => conv2d(g, 'c', x, w, { padding: 1 }));
      expect(Array.from(attached)).toEqual(Array.from(explicit));
      // Both at once would add the term twice.
      const g = new Graph(rt, 'twice');
      expect(() => conv2d(g, 'c', x, w, { padding: 1, lora: { t: conv2d(g, 't', x, down, { padding: 1 }), up } })).toThrow(/test is attached to the weight and a LoRA term was also given/);
      g.destroy();
    } finally {
      setLoraAttachment(w, null);
    }
  });
});

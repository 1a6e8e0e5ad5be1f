// CLIPTextModel against the openai/CLIP fixture (tests/fixtures/clip-text-tiny), the exact-GELU
// variant against a float64 CPU forward, the token table split under a lowered binding limit, and
// config and input errors named.
import { afterEach, describe, expect, it } from 'vitest';
import { runModelCase } from '../../src/conformance/model_case.ts';
import type { Runtime } from '../../src/gpu/runtime.ts';
import { Graph } from '../../src/graph/graph.ts';
import { bytesOf, numel, type Tensor } from '../../src/graph/tensor.ts';
import { uploadIds } from '../../src/kernels/embedding.ts';
import { linear } from '../../src/kernels/gemm.ts';
import { nodeFolderReader } from '../../src/io/model_folder.ts';
import { readSafetensorsFile, toFloat32, toInt64Numbers } from '../../src/io/safetensors.ts';
import { WeightStore } from '../../src/io/weights.ts';
import { CLIPTextModel, loadClipTextModel, readClipTextFolder } from '../../src/models/clip_text_model.ts';
import { readClipTextConfig } from '../../src/models/clip_text_config.ts';
import { buildModel } from '../../src/models/model_loader.ts';
import { compare } from '../helpers/compare.ts';
import { hasF16, input, runtime } from '../helpers/gpu.ts';
import { clipTextRef } from '../ref/clip_text.ts';
import { ShapeError } from '../../src/errors.ts';

const DIR = 'tests/fixtures/clip-text-tiny';

async function fixture() {
  const io = await readSafetensorsFile(`${DIR}/io.safetensors`);
  const get = (k: string) => io.get(k)!;
  return { ids: toInt64Numbers(get('input_ids')), idsShape: get('input_ids').shape, last: toFloat32(get('last_hidden_state')), penultimate: toFloat32(get('hidden_state_penultimate')) };
}

async function freshFolder() {
  return readClipTextFolder(nodeFolderReader(DIR), DIR);
}

/** The fixture's weights by transformers name under text_model, for the CPU forward. */
async function hostWeights(): Promise<(name: string) => Float32Array> {
  const raw = await readSafetensorsFile(`${DIR}/model.safetensors`);
  return (name) => {
    const t = raw.get(`text_model.${name}`);
    if (!t) throw new Error(`no weight text_model.${name}`);
    return toFloat32(t);
  };
}

/** Encodes `ids` [B, T] and reads both outputs back; also returns the graph's largest binding. */
async function encode(rt: Runtime, model: CLIPTextModel, ids: number[], shape: number[], opts: { clipSkip?: number } = {}) {
  const g = new Graph(rt, 'clip');
  const idsT: Tensor = { ...uploadIds(rt, ids, model.vocabSize), shape };
  try {
    const out = model.encode(g, idsT, opts);
    g.finalize();
    g.submit();
    await rt.assertHealthy();
    const read = (t: Tensor) => rt.read(t.buffer, numel(t.shape) * 4);
    return { last: await read(out.lastHiddenState), penultimate: await read(out.penultimate), shape: out.lastHiddenState.shape, maxBinding: g.stats.maxBindingBytes };
  } finally {
    g.destroy();
    rt.destroyBuffer(idsT.buffer);
  }
}

const saved: { rt: Runtime; limits: Runtime['planLimits'] }[] = [];
afterEach(() => {
  for (const s of saved.splice(0)) s.rt.planLimits = s.limits;
});

describe('CLIPTextModel reproduces transformers (clip-text-tiny)', () => {
  it('conformance case: last_hidden_state and hidden_states[-2] within 1e-3·max|ref|', async () => {
    const rt = await runtime();
    const r = await runModelCase(rt, DIR);
    console.log(`clip-text-tiny: worst max|err| ${r.maxAbsErr.toExponential(2)} max|ref| ${r.maxAbsRef.toExponential(2)}; ${r.detail}`);
    expect(r.cls).toBe('CLIPTextModel');
    expect(r.detail).toMatch(/last_hidden_state ratio .*hidden_state_penultimate ratio/);
    expect(r.note).toBeUndefined();
    expect(r.ratio).toBeLessThanOrEqual(1e-3);
    expect(r.pass).toBe(true);
  });

  it('conformance case in f16 within 1e-2·max|ref|', async (ctx) => {
    const rt = await runtime();
    if (!hasF16(rt)) {
      console.warn(`skipped f16 clip-text-tiny: the adapter (${rt.gpu.adapterName}) has no shader-f16`);
      ctx.skip();
    }
    const r = await runModelCase(rt, DIR, 'f16');
    console.log(`clip-text-tiny [f16]: ${r.detail}`);
    expect(r.note).toBeUndefined();
    expect(r.ratio).toBeLessThanOrEqual(1e-2);
  });

  it('loadClipTextModel + encode: both outputs within 1e-5 + 1e-5·|ref|', async () => {
    const rt = await runtime();
    const f = await fixture();
    const model = await loadClipTextModel(rt, DIR);
    try {
      expect(model.hiddenSize).toBe(64);
      expect(model.maxPositions).toBe(77);
      const got = await encode(rt, model, f.ids, f.idsShape);
      expect(got.shape).toEqual([2, 77, 64]);
      for (const [name, g, ref] of [['last_hidden_state', got.last, f.last], ['hidden_state_penultimate', got.penultimate, f.penultimate]] as const) {
        const c = compare(g, ref, 1e-5, 1e-5);
        console.log(`${name}: ${c.report.split('\n')[0]}`);
        expect(c.ok, c.report).toBe(true);
      }
    } finally {
      model.destroy();
    }
  });

  it('the float64 CPU forward matches the fixture (so it can check the GELU variant)', async () => {
    const f = await fixture();
    const w = await hostWeights();
    const ref = clipTextRef(f.ids.slice(0, 77), w, { D: 64, heads: 4, layers: 2, inter: 256, act: 'quick_gelu', eps: 1e-5 });
    const c1 = compare(ref.last, f.last.subarray(0, 77 * 64), 1e-5, 1e-5);
    const c2 = compare(ref.penultimate, f.penultimate.subarray(0, 77 * 64), 1e-5, 1e-5);
    expect(c1.ok, c1.report).toBe(true);
    expect(c2.ok, c2.report).toBe(true);
  });

  it('hidden_act gelu (exact erf) matches the float64 forward', async () => {
    const rt = await runtime();
    const f = await fixture();
    const { config, weights } = await freshFolder();
    const w = await hostWeights();
    const model = buildModel(CLIPTextModel, rt, weights, readClipTextConfig({ ...config, hidden_act: 'gelu' }));
    try {
      const ids = f.ids.slice(77, 154);
      const got = await encode(rt, model, ids, [1, 77]);
      const ref = clipTextRef(ids, w, { D: 64, heads: 4, layers: 2, inter: 256, act: 'gelu', eps: 1e-5 });
      // The quick_gelu reference differs by far more than the tolerance, so the activation is tested.
      const quick = clipTextRef(ids, w, { D: 64, heads: 4, layers: 2, inter: 256, act: 'quick_gelu', eps: 1e-5 });
      expect(compare(got.last, quick.last, 1e-4, 1e-4).ok).toBe(false);
      for (const [name, g, r] of [['last_hidden_state', got.last, ref.last], ['penultimate', got.penultimate, ref.penultimate]] as const) {
        const c = compare(g, r, 1e-5, 1e-5);
        console.log(`gelu ${name}: ${c.report.split('\n')[0]}`);
        expect(c.ok, c.report).toBe(true);
      }
    } finally {
      model.destroy();
    }
  });
});

describe('CLIPTextModel token table under the binding limit', () => {
  it('splits the token table into row chunks that each fit, with the same output as one table', async () => {
    const rt = await runtime();
    const f = await fixture();
    const whole = await loadClipTextModel(rt, DIR);
    let split: CLIPTextModel | null = null;
    try {
      expect(whole.tokenChunks.length).toBe(1);
      const ref = await encode(rt, whole, f.ids, f.idsShape);
      // 1e6 bytes: 3906 rows of 64 f32 per chunk, so the 49408-row table (12.6 MB) takes 13
      // chunks, the last one partial; the fixture's ids (up to 49407) hit several of them.
      const binding = 1_000_000;
      saved.push({ rt, limits: rt.planLimits });
      rt.planLimits = { binding, buffer: rt.planLimits.buffer };
      split = await loadClipTextModel(rt, DIR);
      expect(split.tokenChunks.length).toBe(13);
      for (const c of split.tokenChunks) expect(bytesOf(c)).toBeLessThanOrEqual(binding);
      expect(split.tokenChunks.reduce((a, c) => a + c.shape[0]!, 0)).toBe(49408);
      const got = await encode(rt, split, f.ids, f.idsShape);
      expect(got.maxBinding).toBeLessThanOrEqual(binding);
      // The same arithmetic on the same values: equal to the bit.
      expect(Array.from(got.last)).toEqual(Array.from(ref.last));
      expect(Array.from(got.penultimate)).toEqual(Array.from(ref.penultimate));
    } finally {
      whole.destroy();
      split?.destroy();
    }
  });
});

describe('CLIPTextModel errors', () => {
  const bad: [string, unknown, RegExp][] = [
    ['hidden_act', 'gelu_new', /config option hidden_act = "gelu_new" is not supported \(supported: "quick_gelu", "gelu"\)/],
    ['architectures', ['CLIPTextModelWithProjection'], /architectures = \["CLIPTextModelWithProjection"\] is not supported/],
    ['model_type', 'clip_vision_model', /model_type = "clip_vision_model"/],
    ['num_attention_heads', 5, /hidden_size = 64 does not split into num_attention_heads = 5/],
    ['layer_norm_eps', '1e-5', /layer_norm_eps = "1e-5" is not a finite number/],
    ['use_cache', true, /config option use_cache is not supported/],
  ];
  for (const [key, value, msg] of bad) {
    it(`config ${key} = ${JSON.stringify(value)}`, async () => {
      const { config } = await freshFolder();
      expect(() => readClipTextConfig({ ...config, [key]: value })).toThrow(msg);
    });
  }

  it('the GEMM epilogue takes one activation at most', async () => {
    const rt = await runtime();
    const g = new Graph(rt, 'epilogue');
    const x = input(rt, [1, 2, 3, 4], [2, 2]);
    const w = input(rt, [1, 0, 0, 1], [2, 2]);
    expect(() => linear(g, 'fc1', x, w, { quickGelu: true, gelu: true })).toThrow(/fc1: quickGelu and gelu cannot all end the epilogue/);
    expect(() => linear(g, 'fc1', x, w, { silu: true, quickGelu: true })).toThrow(ShapeError);
    g.destroy();
  });

  it('a config that does not fit the weights names the weight', async () => {
    const rt = await runtime();
    const { config, weights } = await freshFolder();
    expect(() => buildModel(CLIPTextModel, rt, weights, readClipTextConfig({ ...config, intermediate_size: 128 }))).toThrow(/text_model\.encoder\.layers\.0\.mlp\.fc1\.weight' has shape \[256, 64\], expected \[128, 64\]/);
    const fewer = await freshFolder();
    expect(() => buildModel(CLIPTextModel, rt, fewer.weights, readClipTextConfig({ ...config, num_hidden_layers: 1 }))).toThrow(/never used: text_model\.encoder\.layers\.1\./);
  });

  it('tolerates position_ids (real checkpoints keep them) and rejects over-long input', async () => {
    const rt = await runtime();
    const { config } = await freshFolder();
    const raw = await readSafetensorsFile(`${DIR}/model.safetensors`);
    const posIds = new BigInt64Array(77).map((_, i) => BigInt(i));
    raw.set('text_model.embeddings.position_ids', { name: 'text_model.embeddings.position_ids', dtype: 'I64', shape: [1, 77], bytes: new Uint8Array(posIds.buffer) });
    const model = buildModel(CLIPTextModel, rt, new WeightStore(raw, DIR), readClipTextConfig(config));
    try {
      const g = new Graph(rt, 'clip-long');
      const ids = uploadIds(rt, new Array<number>(78).fill(1), model.vocabSize);
      expect(() => model.encode(g, { ...ids, shape: [1, 78] })).toThrow(/input_ids \[1, 78\] should be \[B, T\] with 1 <= T <= 77/);
      expect(() => model.encode(g, ids)).toThrow(/input_ids \[78\] should be \[B, T\]/);
      g.destroy();
      rt.destroyBuffer(ids.buffer);
    } finally {
      model.destroy();
    }
  });
});

describe('CLIPTextModel clip skip', () => {
  it("clip_skip 1 is the final layer norm of the penultimate states (diffusers' clip_skip)", async () => {
    const rt = await runtime();
    const f = await fixture();
    const folder = await freshFolder();
    const model = buildModel(CLIPTextModel, rt, folder.weights, readClipTextConfig(folder.config));
    try {
      const got = await encode(rt, model, f.ids, f.idsShape, { clipSkip: 1 });
      const w = await hostWeights();
      const [gamma, beta] = [w('final_layer_norm.weight'), w('final_layer_norm.bias')];
      const D = gamma.length;
      const ref = new Float64Array(f.penultimate.length);
      for (let r = 0; r < f.penultimate.length / D; r++) {
        const row = f.penultimate.subarray(r * D, (r + 1) * D);
        const mean = row.reduce((a, b) => a + b, 0) / D;
        const v = row.reduce((a, b) => a + (b - mean) ** 2, 0) / D;
        for (let i = 0; i < D; i++) ref[r * D + i] = ((row[i]! - mean) / Math.sqrt(v + 1e-5)) * gamma[i]! + beta[i]!;
      }
      const c = compare(got.last, ref, 1e-5, 1e-5);
      console.log(`clip_skip 1: max|err| ${c.maxAbsErr.toExponential(2)} vs LN(fixture penultimate)`);
      expect(c.ok, c.report).toBe(true);
      await expect(encode(rt, model, f.ids, f.idsShape, { clipSkip: 2 })).rejects.toThrow(/clip_skip 2 must be an integer in \[0, 1\]/);
    } finally {
      model.destroy();
    }
  });
});

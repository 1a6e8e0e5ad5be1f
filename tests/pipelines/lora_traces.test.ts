// LoRA against diffusers v0.25.1's own pipelines (tests/fixtures/pipeline-*-lora*,
// scripts/reference/make_issue14.py): both key forms, fused and unfused (a runtime scale), two
// adapters with set_adapters weights, SDXL with both text encoders (diffusers and kohya's SGM
// names), and an LCM-LoRA run with LCMScheduler, each merged into the weights and again unfused;
// and textual inversion from all three file forms (.safetensors, diffusers' .bin, A1111's .pt).
import { describe, expect, it } from 'vitest';
import { loadModel } from '../../src/api.ts';
import { LoraError } from '../../src/errors.ts';
import { runtime } from '../helpers/gpu.ts';
import { traceTests } from '../helpers/traces.ts';

const TRACES = ['pipeline-sd-tiny-lora-fused', 'pipeline-sd-tiny-lora-kohya', 'pipeline-sd-tiny-lora-two', 'pipeline-sd-tiny-lcm-lora', 'pipeline-sdxl-tiny-lora', 'pipeline-sdxl-tiny-lora-kohya', 'pipeline-sd-tiny-textual-inversion'];

describe("LoRA: diffusers' pipeline traces (text states, every step's eps and latents, the image)", () => {
  for (const name of TRACES) traceTests(name);
});

// The same runs with every adapter unfused (Model.loadLora's fuse: false): the weights stay as
// loaded and each adapted GEMM adds scale·up·(down·x) in its epilogue, as diffusers' unfused
// LoRACompatibleLinear/Conv and PEFT layers do at runtime.
const UNFUSED = ['pipeline-sd-tiny-lora-fused', 'pipeline-sd-tiny-lora-kohya', 'pipeline-sd-tiny-lora-two', 'pipeline-sdxl-tiny-lora', 'pipeline-sdxl-tiny-lora-kohya'];

describe("unfused LoRA: diffusers' pipeline traces", () => {
  for (const name of UNFUSED) traceTests(name, 'unfused');
});

describe('LoRA files diffusers refuses, refused by name (tests/fixtures/lora-tiny/bad-*)', () => {
  it.each([
    ['bad-keys.safetensors', /bad-keys\.safetensors: none of its 2 LoRA layers names a module of this model \(first: unet: down_blocks\.3\.attentions\.0\.transformer_blocks\.0\.attn1\.to_q; unet: up_blocks\.4/],
    ['bad-keys-kohya.safetensors', /bad-keys-kohya\.safetensors: none of its 1 LoRA layers names a module of this model \(first: unet: input_blocks_7_1_transformer_blocks_0_attn1_to_q\)/],
    ['bad-rank.safetensors', /layer unet down_blocks\.0\.attentions\.0\.transformer_blocks\.0\.attn1\.to_k: up \[32, 3\] and down \[4, 32\] are not a rank-4 pair/],
    ['bad-shape.safetensors', /LoRA layer unet down_blocks\.0\.attentions\.0\.transformer_blocks\.0\.attn1\.to_k \(rank 4: up \[32, 4\], down \[4, 48\]\) does not fit the weight down_blocks\.0\.attentions\.0\.transformer_blocks\.0\.attn1\.to_k\.weight \[32, 32\]/],
  ])('%s', async (file, message) => {
    const model = await loadModel('tests/fixtures/sd-tiny', { gpu: (await runtime()).gpu, precision: 'f32' });
    try {
      await expect(model.loadLora(`tests/fixtures/lora-tiny/${file}`)).rejects.toThrow(LoraError);
      await expect(model.loadLora(`tests/fixtures/lora-tiny/${file}`)).rejects.toThrow(message);
      // Nothing was merged.
      expect(model.loraAdapters).toEqual([]);
    } finally {
      model.destroy();
    }
  });
});

// LoRA key forms read into one shape, without a GPU: every form diffusers v0.25.1 loads (its own
// saves, PEFT, transformers' text encoder layers, the first attention-processor form, kohya with
// alpha), and kohya's original-SD block names mapped as diffusers maps them.
import { describe, expect, it } from 'vitest';
import { readLoraLayers, sgmToDiffusers } from '../../src/io/lora_file.ts';
import { parseSafetensors, writeSafetensors, type DType } from '../../src/io/safetensors.ts';
import { LoraError } from '../../src/errors.ts';

type Spec = Record<string, { dtype: DType; shape: number[]; data: ArrayBufferView }>;
const f = (shape: number[], v = 1) => ({ dtype: 'F32' as const, shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(v) });
const read = (spec: Spec) => readLoraLayers(parseSafetensors(writeSafetensors(spec), 'l.safetensors'), 'l.safetensors');

describe('readLoraLayers', () => {
  it('reads every key form into component, module, down, up and alpha', () => {
    const layers = read({
      'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight': f([2, 8]),
      'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight': f([8, 2]),
      'unet.mid_block.resnets.0.conv1.lora.down.weight': f([2, 8, 3, 3]),
      'unet.mid_block.resnets.0.conv1.lora.up.weight': f([8, 2, 1, 1]),
      'text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_linear_layer.down.weight': f([4, 16]),
      'text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_linear_layer.up.weight': f([16, 4]),
      'text_encoder_2.text_model.encoder.layers.1.mlp.fc1.lora_A.weight': f([2, 16]),
      'text_encoder_2.text_model.encoder.layers.1.mlp.fc1.lora_B.weight': f([64, 2]),
      'up_blocks.1.attentions.0.transformer_blocks.0.attn2.processor.to_out_lora.down.weight': f([2, 8]),
      'up_blocks.1.attentions.0.transformer_blocks.0.attn2.processor.to_out_lora.up.weight': f([8, 2]),
      'lora_unet_down_blocks_1_resnets_0_time_emb_proj.lora_down.weight': f([4, 32]),
      'lora_unet_down_blocks_1_resnets_0_time_emb_proj.lora_up.weight': f([16, 4]),
      'lora_unet_down_blocks_1_resnets_0_time_emb_proj.alpha': f([], 2),
      'lora_te2_text_model_encoder_layers_0_self_attn_k_proj.lora_down.weight': f([1, 16]),
      'lora_te2_text_model_encoder_layers_0_self_attn_k_proj.lora_up.weight': f([16, 1]),
    });
    const brief = layers.map((l) => [l.component, l.module, l.flat, l.down.shape, l.up.shape, l.alpha]);
    expect(brief).toEqual([
      ['unet', 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q', false, [2, 8], [8, 2], null],
      ['unet', 'mid_block.resnets.0.conv1', false, [2, 8, 3, 3], [8, 2, 1, 1], null],
      ['text_encoder', 'text_model.encoder.layers.0.self_attn.q_proj', false, [4, 16], [16, 4], null],
      ['text_encoder_2', 'text_model.encoder.layers.1.mlp.fc1', false, [2, 16], [64, 2], null],
      ['unet', 'up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_out.0', false, [2, 8], [8, 2], null],
      ['unet', 'down_blocks_1_resnets_0_time_emb_proj', true, [4, 32], [16, 4], 2],
      ['text_encoder_2', 'text_model_encoder_layers_0_self_attn_k_proj', true, [1, 16], [16, 1], null],
    ]);
  });

  it("reads diffusers 0.15's text-encoder form (self_attn.to_q_lora) as the q/k/v/out projections", () => {
    const layers = read({
      'text_encoder.text_model.encoder.layers.0.self_attn.to_out_lora.down.weight': f([2, 16]),
      'text_encoder.text_model.encoder.layers.0.self_attn.to_out_lora.up.weight': f([16, 2]),
      'text_encoder.text_model.encoder.layers.0.self_attn.to_k_lora.down.weight': f([2, 16]),
      'text_encoder.text_model.encoder.layers.0.self_attn.to_k_lora.up.weight': f([16, 2]),
    });
    expect(layers.map((l) => [l.component, l.module])).toEqual([
      ['text_encoder', 'text_model.encoder.layers.0.self_attn.out_proj'],
      ['text_encoder', 'text_model.encoder.layers.0.self_attn.k_proj'],
    ]);
  });

  it('names what it cannot read', () => {
    expect(() => read({ 'lora_unet_x.alpha': f([], 1) })).toThrow(/layer unet x has an alpha but no up or down matrix/);
    expect(() => read({ 'unet.x.lora_A.weight': f([2, 4]) })).toThrow(/layer unet x has a down matrix but no up one/);
    expect(() => read({ 'unet.x.lora_A.weight': f([2, 4]), 'unet.x.lora_B.weight': f([4, 3]) })).toThrow(/are not a rank-2 pair/);
    expect(() => read({ 'model.diffusion_model.x.weight': f([2]) })).toThrow(/1 keys are not LoRA weights in a known form \(diffusers, PEFT or kohya\): model\.diffusion_model\.x\.weight/);
    expect(() => read({ 'lora_unet_x.lokr_w1': f([2]) })).toThrow(LoraError);
    expect(() => read({ 'lora_unet_x.lora_down.weight': f([2, 4]), 'lora_unet_x.lora_up.weight': f([4, 2]), 'lora_unet_x.alpha': f([2]) })).toThrow(/alpha must be one finite number/);
  });
});

describe('sgmToDiffusers (kohya names in the original SD layout, as diffusers v0.25.1 maps them)', () => {
  it.each([
    // SD 1.x: layers_per_block 2
    ['input_blocks_1_1_transformer_blocks_0_attn1_to_q', 2, 'down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q'],
    ['input_blocks_5_1_proj_in', 2, 'down_blocks_1_attentions_1_proj_in'],
    ['input_blocks_1_0_in_layers_2', 2, 'down_blocks_0_resnets_0_conv1'],
    ['input_blocks_4_0_emb_layers_1', 2, 'down_blocks_1_resnets_0_time_emb_proj'],
    ['input_blocks_4_0_skip_connection', 2, 'down_blocks_1_resnets_0_conv_shortcut'],
    ['input_blocks_3_0_op', 2, 'down_blocks_0_downsamplers_0_conv'],
    ['middle_block_1_transformer_blocks_0_attn2_to_k', 2, 'mid_block_attentions_0_transformer_blocks_0_attn2_to_k'],
    ['middle_block_2_out_layers_3', 2, 'mid_block_resnets_1_conv2'],
    ['output_blocks_4_1_transformer_blocks_0_ff_net_2', 2, 'up_blocks_1_attentions_1_transformer_blocks_0_ff_net_2'],
    ['output_blocks_8_2_conv', 2, 'up_blocks_2_upsamplers_0_conv'],
    // SDXL's input block 4 with layers_per_block 2 is the same formula
    ['input_blocks_7_1_transformer_blocks_9_attn1_to_out_0', 2, 'down_blocks_2_attentions_0_transformer_blocks_9_attn1_to_out_0'],
    // already diffusers' layout
    ['down_blocks_0_attentions_0_proj_in', 2, 'down_blocks_0_attentions_0_proj_in'],
  ])('%s (layers_per_block %d) -> %s', (flat, lpb, want) => {
    expect(sgmToDiffusers(flat, lpb)).toBe(want);
  });
});

describe('embedding files in torch.save form', () => {
  it("reads the original textual inversion's ParameterDict .pt, and leaves a bare tensor's token to the caller", async () => {
    const { readInversionBytes } = await import('../../src/io/textual_inversion.ts');
    const { readFileSync } = await import('node:fs');
    const pd = await readInversionBytes(new Uint8Array(readFileSync('tests/fixtures/torch-files/paramdict.pt')), 'paramdict.pt');
    expect(pd.text_encoder.n).toBeGreaterThanOrEqual(1);
    expect(pd.text_encoder.values.length).toBe(pd.text_encoder.n * pd.text_encoder.dim);
    const obj = await readInversionBytes(new Uint8Array(readFileSync('tests/fixtures/textual-inversion-tiny/tiny-obj.pt')), 'tiny-obj.pt');
    expect([obj.token, obj.text_encoder.n, obj.text_encoder.dim]).toEqual(['<tiny-obj>', 2, 64]);
    const cat = await readInversionBytes(new Uint8Array(readFileSync('tests/fixtures/textual-inversion-tiny/tiny-cat.bin')), 'tiny-cat.bin');
    expect([cat.token, cat.text_encoder.n, cat.text_encoder.dim]).toEqual(['<tiny-cat>', 1, 64]);
  });
});

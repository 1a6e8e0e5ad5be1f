// The real Stable Diffusion 1.5 and 2.1 component configs (bench/sd-configs/) are accepted as they
// are and run end to end, narrowed so they fit a CPU adapter: every width divided by 8 and the norm
// groups to 8, everything else (head counts per level, linear projections, upcast attention,
// exact-GELU 23-layer text encoder, v-prediction) kept. Weights are random, so this checks that
// the layouts build and run to a finite image of the right size, not what the image shows.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime.ts';
import { nodeFolderReader } from '../../src/io/model_folder.ts';
import { RandomWeightStore } from '../../src/io/random_weights.ts';
import { AutoencoderKL } from '../../src/models/autoencoder_kl.ts';
import { readAutoencoderKLConfig } from '../../src/models/autoencoder_kl_config.ts';
import { buildModel } from '../../src/models/model_loader.ts';
import { CLIPTextModel } from '../../src/models/clip_text_model.ts';
import { readClipTextConfig } from '../../src/models/clip_text_config.ts';
import { UNet2DConditionModel } from '../../src/models/unet_2d_condition.ts';
import { readUNet2DConditionConfig } from '../../src/models/unet_2d_condition_config.ts';
import type { SdModel } from '../../src/pipelines/sd_folder.ts';
import { generateFromText } from '../../src/pipelines/text_to_image.ts';
import type { SchedulerName } from '../../src/schedulers/scheduler.ts';
import { CLIPTokenizer } from '../../src/text/clip_tokenizer.ts';
import { runtime } from '../helpers/gpu.ts';

type Configs = Record<string, Record<string, unknown>>;
const NARROW = 8;

function narrowed(name: string): Configs {
  const c = JSON.parse(readFileSync(`bench/sd-configs/${name}.json`, 'utf8')) as Configs;
  const div = (v: unknown) => (v as number) / NARROW;
  const unet = { ...c.unet!, block_out_channels: (c.unet!.block_out_channels as number[]).map(div), cross_attention_dim: div(c.unet!.cross_attention_dim), norm_num_groups: 8, sample_size: 8 };
  const vae = { ...c.vae!, block_out_channels: (c.vae!.block_out_channels as number[]).map(div), norm_num_groups: 8 };
  const te = c.text_encoder!;
  const text = { ...te, hidden_size: div(te.hidden_size), intermediate_size: div(te.intermediate_size), projection_dim: div(te.projection_dim) };
  return { ...c, unet, vae, text_encoder: text };
}

async function build(rt: Runtime, c: Configs, tokenizer: CLIPTokenizer, scheduler: Record<string, unknown>): Promise<SdModel> {
  const store = new RandomWeightStore(5);
  const unet = buildModel(UNet2DConditionModel, rt, store, readUNet2DConditionConfig(c.unet!, 'unet'));
  const vae = buildModel(AutoencoderKL, rt, store, readAutoencoderKLConfig(c.vae!, 'vae'));
  const textEncoder = buildModel(CLIPTextModel, rt, store, readClipTextConfig(c.text_encoder!, 'text_encoder'));
  return {
    dir: 'narrowed', unet, vae, textEncoder, tokenizer, schedulerConfig: scheduler, precision: unet.precision, weightBytes: store.gpuBytes,
    destroy: () => [unet, vae, textEncoder].forEach((m) => m.destroy()),
  };
}

const SD15_SCHEDULER = JSON.parse(readFileSync('tests/fixtures/sd-tiny/scheduler/scheduler_config.json', 'utf8')) as Record<string, unknown>;

describe('Stable Diffusion 1.5 and 2.1 layouts (narrowed widths, random weights)', () => {
  const cases: [string, Record<string, unknown>, SchedulerName[]][] = [
    ['sd15', SD15_SCHEDULER, ['pndm']],
    ['sd21', narrowed('sd21').scheduler!, ['ddim', 'dpm++2m']],
  ];
  for (const [name, scheduler, schedulers] of cases) {
    it(`${name}: builds from its real configs and runs text-to-image to a finite image (${schedulers.join(', ')})`, async () => {
      const rt = await runtime();
      const tokenizer = await CLIPTokenizer.load(nodeFolderReader('tests/fixtures/tokenizer-clip'));
      const model = await build(rt, narrowed(name), tokenizer, scheduler);
      try {
        expect(model.textEncoder.hiddenSize).toBe(model.unet.crossAttentionDim);
        for (const s of schedulers) {
          const r = await generateFromText(rt, model, { prompt: 'a castle on a hill at dawn', negativePrompt: 'blurry', steps: 2, guidanceScale: 7.5, seed: 1, scheduler: s, width: 64, height: 48 });
          expect(r.imageShape).toEqual([1, 3, 48, 64]);
          const bad = r.image.filter((v) => !Number.isFinite(v)).length;
          expect(bad).toBe(0);
          console.log(`${name} ${s}: image range [${Math.min(...r.image).toFixed(2)}, ${Math.max(...r.image).toFixed(2)}]`);
        }
      } finally {
        model.destroy();
      }
    });
  }
});

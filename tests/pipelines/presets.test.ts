// Few-step presets and Hub sources, from the JSON files alone (no GPU, no network): inspectModel
// on hf: sources served by a stub fetch from the tiny fixture folders (the URLs it asks for are
// checked), preset detection by repository and by config, the preset option, and what
// resolveGenerateOptions then takes as defaults.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { inspectModel, resolveGenerateOptions } from '../../src/api.ts';
import { ConfigError, ModelSourceError } from '../../src/errors.ts';
import { detectPreset, PRESETS } from '../../src/pipelines/presets.ts';

const temps: string[] = [];
afterAll(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A fetch that serves `dir` under `base` (404 elsewhere, as a static host), recording every URL asked for. */
function serveFolder(base: string, dir: string) {
  const seen: string[] = [];
  const fetch = (async (input: RequestInfo | URL) => {
    const url = String(input);
    seen.push(url);
    if (!url.startsWith(base)) return new Response('not found', { status: 404 });
    const path = join(dir, decodeURIComponent(url.slice(base.length)));
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(readFileSync(path));
    } catch {
      return new Response('not found', { status: 404 });
    }
    return new Response(bytes as BodyInit, { headers: { 'content-length': String(bytes.length) } });
  }) as typeof globalThis.fetch;
  return { fetch, seen };
}

/** The JSON files of a fixture pipeline (no weights: inspectModel reads none), with edits. */
function configsOf(fixture: string, edit: (name: string, json: Record<string, unknown>) => void = () => {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'fresco-preset-'));
  temps.push(dir);
  cpSync(fixture, dir, { recursive: true, filter: (src) => !src.endsWith('.safetensors') && !src.endsWith('.txt') && !src.endsWith('vocab.json') });
  for (const name of ['unet/config.json', 'scheduler/scheduler_config.json']) {
    const json = JSON.parse(readFileSync(join(dir, name), 'utf8'));
    edit(name, json);
    writeFileSync(join(dir, name), JSON.stringify(json));
  }
  return dir;
}

const JSON_FILES = ['model_index.json', 'scheduler/scheduler_config.json', 'unet/config.json', 'vae/config.json'];

describe('inspectModel on hf: sources (stub fetch)', () => {
  it('reads hf:stabilityai/sd-turbo from its resolve/main URLs and gives it the sd-turbo preset', async () => {
    const base = 'https://huggingface.co/stabilityai/sd-turbo/resolve/main/';
    const { fetch, seen } = serveFolder(base, 'tests/fixtures/sd-tiny');
    const info = await inspectModel('hf:stabilityai/sd-turbo', { fetch });
    // Only the four JSON files: no weight is read before the GPU is asked for.
    expect(seen).toEqual(JSON_FILES.map((f) => base + f));
    expect(info).toMatchObject({
      kind: 'text',
      pipeline: 'StableDiffusionPipeline',
      defaults: { steps: 1, guidance: 0, scheduler: 'euler-a' },
      preset: { name: 'sd-turbo', source: 'repo', schedulerConfig: { timestep_spacing: 'trailing' } },
      // SD-Turbo keeps its U-Net's size (the fixture's 16 px; the real one's 512).
      imageSize: [16, 16],
    });
    expect(info.guidanceEmbedded).toBeUndefined();
    // generate() then runs one step without guidance at the model's size.
    expect(resolveGenerateOptions(info, { prompt: 'a fox', seed: 1 }, 'hf:stabilityai/sd-turbo')).toMatchObject({ steps: 1, guidance: 0, scheduler: 'euler-a', batch: 1, width: 16, height: 16 });
  });

  it('gives hf:stabilityai/sdxl-turbo its card size, 512x512, and an endpoint override and revision reach the URLs', async () => {
    const base = 'http://127.0.0.1:1/mirror/stabilityai/sdxl-turbo/resolve/refs%2Fpr%2F7/';
    const { fetch, seen } = serveFolder(base, 'tests/fixtures/sdxl-tiny');
    const info = await inspectModel('hf:stabilityai/sdxl-turbo', { fetch, revision: 'refs/pr/7', hubEndpoint: 'http://127.0.0.1:1/mirror' });
    expect(seen).toEqual(JSON_FILES.map((f) => base + f));
    expect(info).toMatchObject({ xl: true, defaults: { steps: 1, guidance: 0, scheduler: 'euler-a' }, preset: { name: 'sdxl-turbo', source: 'repo' }, imageSize: [512, 512] });
    expect(resolveGenerateOptions(info, { prompt: 'a fox' }, 'x')).toMatchObject({ width: 512, height: 512, guidance: 0 });
  });

  it('recognises a repository case-insensitively, and a Hub resolve URL as its hf: form', async () => {
    const base = 'https://huggingface.co/StabilityAI/SD-Turbo/resolve/v1/';
    expect((await inspectModel('hf:StabilityAI/SD-Turbo@v1', serveFolder(base, 'tests/fixtures/sd-tiny'))).preset?.name).toBe('sd-turbo');
    expect((await inspectModel(base, serveFolder(base, 'tests/fixtures/sd-tiny'))).preset).toMatchObject({ name: 'sd-turbo', source: 'repo' });
  });

  it('an unknown repository is a plain pipeline: no preset, the folder defaults', async () => {
    const base = 'https://huggingface.co/someone/sd-tiny/resolve/main/';
    const info = await inspectModel('hf:someone/sd-tiny', serveFolder(base, 'tests/fixtures/sd-tiny'));
    expect(info.preset).toBeUndefined();
    expect(info.defaults).toEqual({ steps: 50, guidance: 7.5, scheduler: 'pndm' });
  });

  it('a missing repository file names its URL; a malformed source fails before any fetch', async () => {
    const { fetch, seen } = serveFolder('https://nowhere/', 'tests/fixtures/sd-tiny');
    await expect(inspectModel('hf:o/missing', { fetch })).rejects.toThrow(/https:\/\/huggingface\.co\/o\/missing\/resolve\/main\/unet\/config\.json: not found/);
    seen.length = 0;
    await expect(inspectModel('hf:o/n@a@b', { fetch })).rejects.toThrow(ModelSourceError);
    expect(seen).toEqual([]);
  });
});

describe('presets', () => {
  it('detects an LCM-distilled U-Net (time_cond_proj_dim): 4 lcm steps at guidance 8.5, embedded', async () => {
    const dir = configsOf('tests/fixtures/sd-tiny', (name, j) => void (name === 'unet/config.json' && (j.time_cond_proj_dim = 8)));
    const info = await inspectModel(dir);
    expect(info).toMatchObject({ defaults: { steps: 4, guidance: 8.5, scheduler: 'lcm' }, preset: { name: 'lcm', source: 'config', schedulerConfig: {} }, guidanceEmbedded: true });
    // An embedded guidance never doubles the batch: resolveGenerateOptions's batch is the prompts'.
    expect(resolveGenerateOptions(info, { prompt: ['a', 'b'] }, dir)).toMatchObject({ batch: 2, guidance: 8.5, steps: 4 });
  });

  it('reads a LatentConsistencyModelPipeline folder (LCM Dreamshaper v7 layout) as an lcm text model', async () => {
    const dir = configsOf('tests/fixtures/sd-tiny', (name, j) => {
      if (name === 'unet/config.json') j.time_cond_proj_dim = 8;
      if (name.startsWith('scheduler')) j._class_name = 'LCMScheduler';
    });
    const index = JSON.parse(readFileSync(join(dir, 'model_index.json'), 'utf8'));
    writeFileSync(join(dir, 'model_index.json'), JSON.stringify({ ...index, _class_name: 'LatentConsistencyModelPipeline', scheduler: ['diffusers', 'LCMScheduler'] }));
    expect(await inspectModel(dir)).toMatchObject({ kind: 'text', pipeline: 'LatentConsistencyModelPipeline', defaults: { steps: 4, guidance: 8.5, scheduler: 'lcm' }, guidanceEmbedded: true });
  });

  it('detects an LCMScheduler folder without an embedded guidance (LCM-LoRA fused): guidance 1, no guidance batch', async () => {
    const dir = configsOf('tests/fixtures/sd-tiny', (name, j) => void (name.startsWith('scheduler') && (j._class_name = 'LCMScheduler')));
    expect(await inspectModel(dir)).toMatchObject({ defaults: { steps: 4, guidance: 1, scheduler: 'lcm' }, preset: { name: 'lcm', source: 'config' } });
  });

  it('takes the preset option for a folder it cannot recognise, and null for none', async () => {
    expect(await inspectModel('tests/fixtures/sd-tiny', { preset: 'sd-turbo' })).toMatchObject({ defaults: { steps: 1, guidance: 0, scheduler: 'euler-a' }, preset: { name: 'sd-turbo', source: 'option' } });
    expect(await inspectModel('tests/fixtures/sdxl-tiny', { preset: 'sdxl-turbo' })).toMatchObject({ imageSize: [512, 512], preset: { name: 'sdxl-turbo', source: 'option' } });
    expect(await inspectModel('tests/fixtures/sdxl-tiny', { preset: 'lcm' })).toMatchObject({ defaults: { steps: 4, guidance: 1, scheduler: 'lcm' } });
    const lcm = configsOf('tests/fixtures/sd-tiny', (name, j) => void (name === 'unet/config.json' && (j.time_cond_proj_dim = 8)));
    const none = await inspectModel(lcm, { preset: null });
    expect(none.preset).toBeUndefined();
    expect(none.defaults).toEqual({ steps: 50, guidance: 7.5, scheduler: 'pndm' });
    // The U-Net still embeds its guidance without the preset.
    expect(none.guidanceEmbedded).toBe(true);
    const base = 'https://huggingface.co/stabilityai/sd-turbo/resolve/main/';
    expect((await inspectModel('hf:stabilityai/sd-turbo', { ...serveFolder(base, 'tests/fixtures/sd-tiny'), preset: null })).preset).toBeUndefined();
  });

  it('refuses a preset for the other SD family, an unknown name, and any preset for a class model', async () => {
    await expect(inspectModel('tests/fixtures/sd-tiny', { preset: 'sdxl-turbo' })).rejects.toThrow(ConfigError);
    await expect(inspectModel('tests/fixtures/sd-tiny', { preset: 'sdxl-turbo' })).rejects.toThrow(/preset 'sdxl-turbo' is for Stable Diffusion XL pipelines, .* is an SD 1\.x\/2\.x pipeline \(use 'sd-turbo'\)/);
    await expect(inspectModel('tests/fixtures/sdxl-tiny', { preset: 'sd-turbo' })).rejects.toThrow(/use 'sdxl-turbo'/);
    await expect(inspectModel('tests/fixtures/sd-tiny', { preset: 'turbo' as never })).rejects.toThrow(/preset must be one of sd-turbo, sdxl-turbo, lcm, or null for none; got "turbo"/);
    await expect(inspectModel('weights/fashion-ldm', { preset: 'lcm' })).rejects.toThrow(/preset 'lcm' applies to text-to-image pipelines/);
  });

  it('a preset with its own scheduler does not need the folder scheduler class to be one Fresco has', async () => {
    const dir = configsOf('tests/fixtures/sd-tiny', (name, j) => void (name.startsWith('scheduler') && (j._class_name = 'HeunDiscreteScheduler')));
    await expect(inspectModel(dir)).rejects.toThrow(/HeunDiscreteScheduler/);
    expect((await inspectModel(dir, { preset: 'sd-turbo' })).defaults.scheduler).toBe('euler-a');
  });

  it('detectPreset: repository first, then the configs', () => {
    expect(detectPreset({ repo: 'SimianLuo/LCM_Dreamshaper_v7' })).toEqual({ name: 'lcm', source: 'repo' });
    expect(detectPreset({ repo: 'stabilityai/sdxl-turbo', schedulerClass: 'LCMScheduler' })).toEqual({ name: 'sdxl-turbo', source: 'repo' });
    expect(detectPreset({ repo: 'runwayml/stable-diffusion-v1-5', schedulerClass: 'PNDMScheduler', timeCondProjDim: null })).toBeNull();
    expect(detectPreset({ timeCondProjDim: 256 })).toEqual({ name: 'lcm', source: 'config' });
    expect(PRESETS['sd-turbo']).toMatchObject({ steps: 1, guidance: 0, scheduler: 'euler-a', schedulerConfig: { timestep_spacing: 'trailing' } });
  });
});

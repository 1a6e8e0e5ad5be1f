// What a folder is, from its JSON files alone (no GPU): kinds, classes, defaults, and the card and
// folder errors that must come before any weight or device is touched.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { inspectModel } from '../../src/api.ts';

/** A copy of fashion-ldm's small files with fresco.json replaced (the weights are not read). */
function withCard(card: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'fresco-card-'));
  for (const sub of ['unet', 'vae', 'scheduler']) mkdirSync(join(dir, sub));
  cpSync('weights/fashion-ldm/unet/config.json', join(dir, 'unet/config.json'));
  cpSync('weights/fashion-ldm/vae/config.json', join(dir, 'vae/config.json'));
  cpSync('weights/fashion-ldm/scheduler/scheduler_config.json', join(dir, 'scheduler/scheduler_config.json'));
  writeFileSync(join(dir, 'fresco.json'), JSON.stringify(card));
  return dir;
}

describe('inspectModel', () => {
  it('reads a class model: names, null class and the card defaults', async () => {
    const info = await inspectModel('weights/fashion-ldm');
    expect(info).toMatchObject({ kind: 'class', pipeline: null, xl: false, numClasses: 11, nullClass: 10, defaults: { steps: 25, guidance: 3, scheduler: 'ddim' }, imageSize: [32, 32], scaleFactor: 4, imageChannels: 1 });
    expect(info.classNames?.[7]).toBe('Sneaker');
  });

  it("reads text pipelines: diffusers' defaults (7.5; SDXL 5) and the folder's own scheduler", async () => {
    expect(await inspectModel('tests/fixtures/sd-tiny')).toMatchObject({ kind: 'text', pipeline: 'StableDiffusionPipeline', xl: false, classNames: null, defaults: { steps: 50, guidance: 7.5, scheduler: 'pndm' } });
    expect(await inspectModel('tests/fixtures/sdxl-tiny')).toMatchObject({ kind: 'text', xl: true, defaults: { steps: 50, guidance: 5, scheduler: 'euler' } });
  });

  it('a card without defaults takes 25 DDIM steps at guidance 3, null class the last label', async () => {
    expect(await inspectModel(withCard({}))).toMatchObject({ classNames: null, nullClass: 10, defaults: { steps: 25, guidance: 3, scheduler: 'ddim' } });
  });

  const bad: [unknown, RegExp][] = [
    [{ defaults: { scheduler: 'heun' } }, /fresco\.json: defaults\.scheduler must be one of ddim, .*, got "heun"/],
    [{ defaults: { steps: 0 } }, /defaults\.steps must be a positive whole number, got 0/],
    [{ defaults: { guidance: 'high' } }, /defaults\.guidance must be a number >= 0/],
    [{ class_names: 'shoes' }, /class_names must be a list of strings/],
    [{ null_class: 11 }, /null_class must be a label 0\.\.10, got 11/],
  ];
  it.each(bad)('refuses the card %j, naming the file', async (card, message) => {
    await expect(inspectModel(withCard(card))).rejects.toThrow(message);
  });

  it("runs the U-Net's and VAE's config readers: an unsupported option fails here, before any weight", async () => {
    const dir = withCard({});
    const unet = JSON.parse(readFileSync(join(dir, 'unet/config.json'), 'utf8'));
    writeFileSync(join(dir, 'unet/config.json'), JSON.stringify({ ...unet, time_embedding_type: 'imaginary' }));
    await expect(inspectModel(dir)).rejects.toThrow(/time_embedding_type/);
  });

  it('refuses a folder that is neither kind, and a pipeline it does not build, by name', async () => {
    await expect(inspectModel(mkdtempSync(join(tmpdir(), 'fresco-empty-')))).rejects.toThrow(/unet\/config\.json.*a class-conditional model folder needs unet\/, vae\/ and scheduler\/ \(a Stable Diffusion pipeline needs model_index\.json\)/);
    const dir = mkdtempSync(join(tmpdir(), 'fresco-xl-inpaint-'));
    writeFileSync(join(dir, 'model_index.json'), JSON.stringify({ _class_name: 'StableDiffusionXLInpaintPipeline' }));
    await expect(inspectModel(dir)).rejects.toThrow(/SDXL inpainting is not supported/);
  });
});

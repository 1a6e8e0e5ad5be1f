// Live previews without the VAE: a model card's own latent → image factors (fresco.json "preview"),
// their checks, and how well they show the shipped model's garments; 'normalize' stays for models
// without factors.
import { afterAll, describe, expect, it } from 'vitest';
import { generate, loadModel, type Model, type StepEvent } from '../../src/api.ts';
import { nodeFolderReader, type FolderReader } from '../../src/io/model_folder.ts';
import { latentPreview, parsePreviewFactors } from '../../src/preview.ts';
import { ConfigError } from '../../src/errors.ts';

const models: Model[] = [];
afterAll(() => models.forEach((m) => m.destroy()));

/** weights/fashion-ldm with fresco.json replaced (null: no card). */
function withCard(card: Record<string, unknown> | null): FolderReader {
  const base = nodeFolderReader('weights/fashion-ldm');
  return { where: base.where, read: (name) => (name === 'fresco.json' ? Promise.resolve(card && new TextEncoder().encode(JSON.stringify(card))) : base.read(name)) };
}

function pearson(a: number[], b: number[]): number {
  const ma = a.reduce((s, v) => s + v, 0) / a.length;
  const mb = b.reduce((s, v) => s + v, 0) / b.length;
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += (a[i]! - ma) * (b[i]! - mb);
    aa += (a[i]! - ma) ** 2;
    bb += (b[i]! - mb) ** 2;
  }
  return ab / Math.sqrt(aa * bb);
}

describe('factors preview', () => {
  it('maps a known latent through the factors: bias + Σ latent·weight, (v + 1)·127.5, gray for one image channel', () => {
    // B = 2, C = 2, 1x2 latents; 2 per row.
    const latents = Float32Array.from([1, -0.8, 0.5, 0, /* b1 */ 0, 2, -2, 4]);
    const factors = { latentToImage: [[0.5], [-0.25]], bias: [0.1] };
    const p = latentPreview(latents, [2, 2, 1, 2], { factors }, 2);
    expect([p.width, p.height]).toEqual([4, 1]);
    const v = [0.1 + 0.5 * 1 - 0.25 * 0.5, 0.1 - 0.4 - 0, 0.1 + 0 + 0.5, 0.1 + 1 - 1];
    const expected = v.flatMap((x) => {
      const g = Math.round(Math.min(255, Math.max(0, (x + 1) * 127.5)));
      return [g, g, g, 255];
    });
    expect(Array.from(p.data)).toEqual(expected);
    // Three image channels: R, G, B each from its own column.
    const rgb = latentPreview(Float32Array.from([1, 2]), [1, 2, 1, 1], { factors: { latentToImage: [[1, 0, -1], [0, 0.5, 0]], bias: [-1, 0, 0] } });
    expect(Array.from(rgb.data)).toEqual([128, 255, 0, 255]);
    expect(() => latentPreview(latents, [2, 2, 1, 2], { factors: { latentToImage: [[1]], bias: [0] } })).toThrow(/factors need 1 latent channels, got 2/);
  });

  it('rejects a card entry that does not fit the model, naming fresco.json', async () => {
    const ok = { latent_to_image: [[1], [2], [3], [4]], bias: [0] };
    expect(parsePreviewFactors(ok, 4, 1)).toEqual({ latentToImage: ok.latent_to_image, bias: [0] });
    for (const [entry, msg] of [
      [{ ...ok, latent_to_image: [[1], [2], [3]] }, /fresco\.json: "preview" "latent_to_image" must have one row per latent channel \(4\), got 3/],
      [{ ...ok, latent_to_image: [[1, 0], [2], [3], [4]] }, /"latent_to_image" row 0 must be 1 finite number/],
      [{ ...ok, latent_to_image: [[1], ['2'], [3], [4]] }, /row 1 must be 1 finite number/],
      [{ latent_to_image: ok.latent_to_image }, /"bias" must be 1 finite number/],
      [[1, 2], /must be an object/],
    ] as const) {
      expect(() => parsePreviewFactors(entry, 4, 1)).toThrow(ConfigError);
      expect(() => parsePreviewFactors(entry, 4, 1)).toThrow(msg);
    }
    expect(() => parsePreviewFactors(ok, 4, 2)).toThrow(/only for 1- or 3-channel images/);
    // At load, before any generation: the error names the card's full path.
    await expect(loadModel(withCard({ preview: { latent_to_image: [[1]], bias: [0] } }), { precision: 'f32' })).rejects.toThrow(/weights\/fashion-ldm\/fresco\.json: "preview" "latent_to_image" must have one row per latent channel \(4\), got 1/);
  });
});

describe('fashion-ldm previews', () => {
  // Per-image Pearson r between the final preview and the decoded image average-pooled to 8x8,
  // measured over all 10 classes x seeds 77..79 (30 images, none in the fit): mean 0.86 (0.855 to
  // 0.873 per seed), median 0.87, lowest 0.675 (a Sandal); the fit's own R² is 0.73 (r 0.86).
  // 7 of the 30 are under 0.8, so 0.8 bounds the mean, not each image. This run (llvmpipe):
  // 0.816 0.861 0.714 0.913, mean 0.826. Hence mean r > 0.8 and every image > 0.6: deterministic
  // for this seed, margin for other adapters' rounding, far above a preview unlike the garment.
  it("the card's factors: the final preview looks like the decoded image at latent size", async () => {
    const m = await loadModel('weights/fashion-ldm', { precision: 'f32' });
    models.push(m);
    const events: StepEvent[] = [];
    // A seed outside the fit (seeds 1000..1003), the card's defaults (25 DDIM steps, guidance 3);
    // Sandal (5), thin straps that a per-pixel linear map renders worst, is in on purpose.
    const classes = [0, 1, 5, 9];
    const r = await generate(m, { class: classes, seed: 77, previewEvery: 25, onStep: (e) => events.push(e) });
    const p = events.at(-1)!.preview!;
    const cols = Math.ceil(Math.sqrt(classes.length));
    expect([p.width, p.height]).toEqual([cols * 8, Math.ceil(classes.length / cols) * 8]);
    const rs = classes.map((_, b) => {
      const [x0, y0] = [(b % cols) * 8, Math.floor(b / cols) * 8];
      const prev: number[] = [];
      const pooled: number[] = [];
      for (let y = 0; y < 8; y++)
        for (let x = 0; x < 8; x++) {
          const o = 4 * ((y0 + y) * p.width + x0 + x);
          expect(p.data[o]).toBe(p.data[o + 1]); // gray: one image channel
          prev.push(p.data[o]!);
          let s = 0;
          for (let dy = 0; dy < 4; dy++) for (let dx = 0; dx < 4; dx++) s += r.raw[b * 1024 + (4 * y + dy) * 32 + 4 * x + dx]!;
          pooled.push(s / 16);
        }
      return pearson(prev, pooled);
    });
    console.log(`fashion-ldm factors preview vs pooled image, Pearson r per class ${classes.join(',')}: ${rs.map((v) => v.toFixed(3)).join(' ')}`);
    expect(rs.reduce((a, v) => a + v, 0) / rs.length).toBeGreaterThan(0.8);
    expect(Math.min(...rs)).toBeGreaterThan(0.6);
  });

  it("keeps 'normalize' for a model without factors: each image's first 3 channels stretched to 0..255", async () => {
    const m = await loadModel(withCard(null), { precision: 'f32' });
    models.push(m);
    const events: StepEvent[] = [];
    await generate(m, { class: [0, 7], count: 2, seed: 3, steps: 3, guidance: 1, previewEvery: 3, onStep: (e) => events.push(e) });
    const p = events.at(-1)!.preview!;
    expect([p.width, p.height]).toEqual([16, 16]);
    for (const [x0, y0] of [[0, 0], [8, 0], [0, 8], [8, 8]]) {
      for (let k = 0; k < 3; k++) {
        const tile = Array.from({ length: 64 }, (_, i) => p.data[4 * ((y0! + (i >> 3)) * 16 + x0! + (i & 7)) + k]!);
        expect([Math.min(...tile), Math.max(...tile)]).toEqual([0, 255]);
      }
    }
  });
});

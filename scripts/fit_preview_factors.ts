// Fits a class model's latent → image preview factors (fresco.json "preview", see src/preview.ts):
// least squares from the final latents (as the pipeline holds them, times scaling_factor) plus a
// bias to the decoded images average-pooled to latent size, as Keturn fitted SD's factors.
//
//   node --import tsx scripts/fit_preview_factors.ts weights/fashion-ldm [--seeds 4] [--steps 25] [--write]
//
// Prints R² and RMSE per image channel, on all samples and on odd seeds held out from a fit on the
// even ones (the factors are meant for images not in the fit). Only --write touches fresco.json,
// and then only its "preview" key.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual, parseArgs } from 'node:util';
import { loadModel } from '../src/api.ts';
import { generateClassConditional } from '../src/pipelines/class_conditional.ts';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { seeds: { type: 'string', default: '4' }, steps: { type: 'string', default: '25' }, write: { type: 'boolean', default: false } } });
const dir = positionals[0];
if (!dir) throw new Error('usage: fit_preview_factors.ts <class model folder> [--seeds N] [--steps N] [--write]');
const seeds = Number(values.seeds);
const steps = Number(values.steps);

const model = await loadModel(dir, { precision: 'f32' });
if (model.loaded.kind !== 'class') throw new Error(`${dir} is not a class-conditional model`);
const { ldm } = model.loaded;
const nullClass = model.nullClass!;
const C = ldm.unet.inChannels;
const K = ldm.vae.outChannels;
const labels = model.classNames?.map((_, i) => i) ?? Array.from({ length: model.numClasses! - 1 }, (_, i) => i);

/** One row per latent pixel: x = [latent channels..., 1], y = the pooled image channels. */
type Sample = { x: number[]; y: number[] };
const bySeed: Sample[][] = [];
for (let s = 0; s < seeds; s++) {
  const r = await generateClassConditional(model.rt, ldm, { classLabels: labels, nullClass, seed: 1000 + s, steps, guidanceScale: model.defaults.guidance, scheduler: model.defaults.scheduler });
  const [B, , H, W] = r.imageShape;
  const [h, w] = [ldm.unet.sampleSize, ldm.unet.sampleSize];
  const f = H / h;
  const rows: Sample[] = [];
  for (let b = 0; b < B; b++)
    for (let p = 0; p < h * w; p++) {
      const [py, px] = [Math.floor(p / w), p % w];
      const x = [...Array.from({ length: C }, (_, c) => r.latents[(b * C + c) * h * w + p]!), 1];
      const y = Array.from({ length: K }, (_, k) => {
        let sum = 0;
        for (let dy = 0; dy < f; dy++) for (let dx = 0; dx < f; dx++) sum += r.image[((b * K + k) * H + py * f + dy) * W + px * f + dx]!;
        return sum / (f * f);
      });
      rows.push({ x, y });
    }
  bySeed.push(rows);
  console.error(`seed ${1000 + s}: ${B} images`);
}

/** Normal equations (XᵀX) β = Xᵀy per image channel, solved by Gaussian elimination with pivoting. */
function fit(rows: Sample[]): number[][] {
  const n = C + 1;
  return Array.from({ length: K }, (_, k) => {
    const a = Array.from({ length: n }, () => new Array<number>(n + 1).fill(0));
    for (const { x, y } of rows)
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) a[i]![j]! += x[i]! * x[j]!;
        a[i]![n]! += x[i]! * y[k]!;
      }
    for (let i = 0; i < n; i++) {
      const piv = a.slice(i).reduce((best, r, j) => (Math.abs(r[i]!) > Math.abs(a[best]![i]!) ? i + j : best), i);
      [a[i], a[piv]] = [a[piv]!, a[i]!];
      for (let r = 0; r < n; r++) {
        if (r === i) continue;
        const m = a[r]![i]! / a[i]![i]!;
        for (let j = i; j <= n; j++) a[r]![j]! -= m * a[i]![j]!;
      }
    }
    return a.map((r, i) => r[n]! / r[i]!);
  });
}

function quality(beta: number[][], rows: Sample[]): string {
  return beta
    .map((bk, k) => {
      const mean = rows.reduce((s, r) => s + r.y[k]!, 0) / rows.length;
      let res = 0;
      let tot = 0;
      for (const { x, y } of rows) {
        res += (y[k]! - x.reduce((s, v, i) => s + v * bk[i]!, 0)) ** 2;
        tot += (y[k]! - mean) ** 2;
      }
      return `channel ${k}: R² ${(1 - res / tot).toFixed(4)}, RMSE ${Math.sqrt(res / rows.length).toFixed(4)}`;
    })
    .join('; ');
}

const all = bySeed.flat();
const beta = fit(all);
console.log(`${dir}: ${all.length} latent pixels (${labels.length} classes x ${seeds} seeds, ${steps} steps)`);
console.log(`fit, all samples:   ${quality(beta, all)}`);
if (seeds >= 2) {
  const even = bySeed.filter((_, i) => i % 2 === 0).flat();
  const odd = bySeed.filter((_, i) => i % 2 === 1).flat();
  console.log(`held out (odd seeds, fit on even): ${quality(fit(even), odd)}`);
}
const round = (v: number) => Math.round(v * 1e5) / 1e5;
const preview = {
  _comment: `Latent -> image factors for live previews, on the latents as the pipeline holds them (times scaling_factor): image = bias + latents x latent_to_image, in [-1, 1]. Least squares over ${labels.length} classes x ${seeds} seeds (${1000}..${1000 + seeds - 1}), ${steps} ${model.defaults.scheduler} steps, guidance ${model.defaults.guidance}: final latents vs the decoded images average-pooled to latent size (scripts/fit_preview_factors.ts).`,
  latent_to_image: Array.from({ length: C }, (_, c) => beta.map((bk) => round(bk[c]!))),
  bias: beta.map((bk) => round(bk[C]!)),
};
console.log(JSON.stringify({ latent_to_image: preview.latent_to_image, bias: preview.bias }));

if (values.write) {
  const path = join(dir, 'fresco.json');
  let card: Record<string, unknown> = {};
  try {
    card = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const next = { ...card, preview };
  // The card's layout: one top-level key a line, each value on one line with spaces after , and :.
  const inline = (v: unknown): string =>
    Array.isArray(v) ? `[${v.map(inline).join(', ')}]` : v && typeof v === 'object' ? `{ ${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${inline(x)}`).join(', ')} }` : JSON.stringify(v);
  const text = `{\n${Object.entries(next).map(([k, v]) => `  ${JSON.stringify(k)}: ${inline(v)}`).join(',\n')}\n}\n`;
  const back = JSON.parse(text) as Record<string, unknown>;
  for (const k of Object.keys(card)) if (k !== 'preview' && !isDeepStrictEqual(back[k], card[k])) throw new Error(`${path}: rewriting would change "${k}"; not written`);
  writeFileSync(path, text);
  console.log(`wrote "preview" into ${path}`);
}
model.destroy();

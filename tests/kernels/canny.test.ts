// Canny edges on the GPU (shaders/canny.wgsl, src/pipelines/canny.ts) against OpenCV's own
// cv2.Canny outputs (tests/fixtures/canny-opencv, scripts/reference/make_canny_cases.py: OpenCV
// 4.14) and the TypeScript port of cv::Canny (tests/ref/canny.ts): exact, pixel for pixel.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodePng } from '../../src/io/png.ts';
import { cannyEdges } from '../../src/pipelines/canny.ts';
import { cannyRef } from '../ref/canny.ts';
import { runtime } from '../helpers/gpu.ts';

const DIR = 'tests/fixtures/canny-opencv';
const spec = JSON.parse(readFileSync(`${DIR}/canny.json`, 'utf8')) as { cases: { input: string; low: number; high: number; output: string; edges: number }[] };
const png = (name: string) => decodePng(new Uint8Array(readFileSync(`${DIR}/${name}`)));

/** Pixels where `got` (RGBA, edges white) and `want` (one byte per pixel, or RGBA with `stride` 4) differ. */
function differing(got: ArrayLike<number>, want: ArrayLike<number>, stride: number, n: number): number {
  let d = 0;
  for (let p = 0; p < n; p++) if (got[4 * p]! !== want[stride * p]! || got[4 * p + 1]! !== got[4 * p]! || got[4 * p + 3]! !== 255) d++;
  return d;
}

/** Smoothed noise in RGB, like a photo's soft edges (a 5x5 box blur of uniform bytes). */
function softImage(w: number, h: number, seed: number): Uint8ClampedArray {
  let s = seed >>> 0;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) >>> 24);
  const raw = Uint8Array.from({ length: w * h * 3 }, rnd);
  const out = new Uint8ClampedArray(w * h * 4);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        let k = 0;
        for (let oy = -2; oy <= 2; oy++)
          for (let ox = -2; ox <= 2; ox++) {
            const [qx, qy] = [x + ox, y + oy];
            if (qx < 0 || qy < 0 || qx >= w || qy >= h) continue;
            sum += raw[(qy * w + qx) * 3 + c]!;
            k++;
          }
        out[(y * w + x) * 4 + c] = Math.round(sum / k);
      }
      out[(y * w + x) * 4 + 3] = 255;
    }
  return out;
}

describe('Canny edges (OpenCV cv2.Canny, aperture 3, L1)', () => {
  for (const c of spec.cases) {
    it(`${c.output}: the GPU and the reference give OpenCV's ${c.edges} edge pixels exactly`, async () => {
      const img = png(c.input);
      const want = png(c.output);
      const n = img.width * img.height;
      const ref = cannyRef(img.pixels, img.width, img.height, c.low, c.high);
      let refDiff = 0;
      for (let p = 0; p < n; p++) if (ref[p] !== want.pixels[4 * p]) refDiff++;
      expect(refDiff).toBe(0);
      const got = await cannyEdges(await runtime(), { width: img.width, height: img.height, data: img.pixels }, { low: c.low, high: c.high });
      expect([got.width, got.height]).toEqual([img.width, img.height]);
      expect(differing(got.data, want.pixels, 4, n)).toBe(0);
    });
  }

  it('a 320x200 image with long soft edges (many hysteresis passes) equals the reference; the defaults are 100 and 200', async () => {
    const [w, h] = [320, 200];
    const data = softImage(w, h, 11);
    const rt = await runtime();
    // 40/160: 21914 edges from 6033 above high; 60/200: 18663 from 1181 (long chains through candidates).
    for (const [low, high] of [[40, 160], [60, 200]] as const) {
      const got = await cannyEdges(rt, { width: w, height: h, data }, { low, high });
      const ref = cannyRef(data, w, h, low, high);
      const edges = ref.reduce((a, v) => a + (v ? 1 : 0), 0);
      console.log(`soft 320x200, thresholds ${low}/${high}: ${edges} edge pixels`);
      expect(edges).toBeGreaterThan(1000);
      expect(differing(got.data, ref, 1, w * h)).toBe(0);
    }
    const def = await cannyEdges(rt, { width: w, height: h, data });
    expect(differing(def.data, cannyRef(data, w, h, 100, 200), 1, w * h)).toBe(0);
  });

  it('refuses a size that does not match the pixels, and thresholds that are not numbers', async () => {
    const rt = await runtime();
    await expect(cannyEdges(rt, { width: 4, height: 4, data: new Uint8ClampedArray(10) })).rejects.toThrow('cannyEdges: a 4x4 image needs 64 RGBA bytes, got 10');
    await expect(cannyEdges(rt, { width: 2, height: 2, data: new Uint8ClampedArray(16) }, { low: NaN })).rejects.toThrow('cannyEdges: thresholds must be finite numbers, got NaN, 200');
  });
});

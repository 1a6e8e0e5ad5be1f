// Init images and masks as diffusers' processors prepare them, and the Lanczos resize, on the CPU.
import { describe, expect, it } from 'vitest';
import { checkRgba, grayRgba, resizeRgba, rgbaToImageTensor, rgbaToMask } from '../../src/io/image_input.ts';

const img = (width: number, height: number, f: (x: number, y: number, k: number) => number) => {
  const data = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) for (let k = 0; k < 4; k++) data[(y * width + x) * 4 + k] = f(x, y, k);
  return { width, height, data };
};

describe('image input', () => {
  it('maps pixels to 2·(v/255) − 1 per channel, one channel by PIL luma, and masks at 0.5', () => {
    const px = img(2, 1, (x, _y, k) => (k === 3 ? 255 : x === 0 ? [255, 0, 0][k]! : 128));
    const rgb = rgbaToImageTensor(px, 3);
    expect(Array.from(rgb)).toEqual([1, Math.fround(Math.fround(128 / 255) * 2 - 1), -1, Math.fround(Math.fround(128 / 255) * 2 - 1), -1, Math.fround(Math.fround(128 / 255) * 2 - 1)]);
    // PIL's L of pure red is 76; of gray 128, 128.
    const gray = rgbaToImageTensor(px, 1);
    expect(gray[0]).toBe(Math.fround(Math.fround(76 / 255) * 2 - 1));
    expect(gray[1]).toBe(Math.fround(Math.fround(128 / 255) * 2 - 1));
    expect(Array.from(rgbaToMask(img(3, 1, (x, _y, k) => (k === 3 ? 255 : [0, 127, 128][x]!))))).toEqual([0, 0, 1]);
    // Gray first (as diffusers' mask processor): pure red is L 76 in every channel, alpha opaque.
    expect(Array.from(grayRgba(img(1, 1, (_x, _y, k) => [255, 0, 0, 7][k]!)).data)).toEqual([76, 76, 76, 255]);
  });

  it('resizes: the same size is a no-op, a constant stays constant, a 2x downscale of 2x2 blocks gives the blocks', () => {
    const a = img(4, 4, (x, y, k) => (k === 3 ? 255 : (x * 31 + y * 7 + k) % 256));
    expect(resizeRgba(a, 4, 4)).toBe(a);
    const flat = resizeRgba(img(7, 5, () => 200), 13, 3);
    expect([flat.width, flat.height]).toEqual([13, 3]);
    expect(flat.data.every((v) => v === 200)).toBe(true);
    // Blocks of 2x2 equal pixels, far apart in value: each output pixel lands near its block.
    const blocks = img(16, 16, (x, y, k) => (k === 3 ? 255 : ((x >> 1) + (y >> 1)) % 2 ? 180 : 60));
    const half = resizeRgba(blocks, 8, 8);
    let worst = 0;
    for (let y = 1; y < 7; y++) for (let x = 1; x < 7; x++) worst = Math.max(worst, Math.abs(half.data[(y * 8 + x) * 4]! - ((x + y) % 2 ? 180 : 60)));
    // Lanczos rings at sharp edges; the block's own value still dominates.
    expect(worst).toBeLessThan(45);
    const up = resizeRgba(img(2, 2, (x, _y, k) => (k === 3 ? 255 : x ? 255 : 0)), 8, 8);
    expect(up.data[0]).toBeLessThan(10);
    expect(up.data[7 * 4]).toBeGreaterThan(245);
  });

  it('names what is wrong with a malformed image', () => {
    const fail = (m: string) => new Error(m);
    expect(() => checkRgba({ width: 2, height: 2, data: new Uint8Array(15) }, 'initImage', fail)).toThrow('initImage is 2x2, which needs 16 RGBA bytes; its data has 15');
    expect(() => checkRgba({ width: 0, height: 2, data: new Uint8Array(0) }, 'mask', fail)).toThrow(/mask needs a positive whole width and height/);
    expect(() => checkRgba({ width: 1, height: 1, data: [1, 2, 3, 4] as unknown as Uint8Array }, 'mask', fail)).toThrow(/Uint8Array or Uint8ClampedArray/);
  });
});

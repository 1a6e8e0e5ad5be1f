import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodePng, encodePng, tensorToImage, toPixel, writeFileNoClobber } from '../../src/io/png.ts';

describe('PNG encode/decode', () => {
  it('RGB round trip', () => {
    const px = Uint8Array.from({ length: 5 * 3 * 3 }, (_, i) => (i * 37) % 256);
    const d = decodePng(encodePng(5, 3, 3, px));
    expect([d.width, d.height, d.channels]).toEqual([5, 3, 4]);
    for (let i = 0; i < 15; i++) {
      expect([...d.pixels.subarray(i * 4, i * 4 + 4)]).toEqual([px[i * 3], px[i * 3 + 1], px[i * 3 + 2], 255]);
    }
  });

  it('gray and RGBA round trip', () => {
    const gray = Uint8Array.from({ length: 4 * 2 }, (_, i) => i * 30);
    const g = decodePng(encodePng(4, 2, 1, gray));
    for (let i = 0; i < 8; i++) expect([...g.pixels.subarray(i * 4, i * 4 + 4)]).toEqual([gray[i], gray[i], gray[i], 255]);
    const rgba = Uint8Array.from({ length: 3 * 2 * 4 }, (_, i) => 255 - i * 7);
    expect([...decodePng(encodePng(3, 2, 4, rgba)).pixels]).toEqual([...rgba]);
  });

  it('rejects a wrong pixel count', () => {
    expect(() => encodePng(2, 2, 3, new Uint8Array(11))).toThrow(/needs 12 bytes/);
  });
});

describe('tensorToImage', () => {
  it('maps [-1, 1] as diffusers does, with numpy rounding and clamping', () => {
    expect(toPixel(-1)).toBe(0);
    expect(toPixel(0)).toBe(128); // 127.5 rounds half to even
    expect(toPixel(1)).toBe(255);
    expect(toPixel(-3)).toBe(0);
    expect(toPixel(2.5)).toBe(255);
    expect(toPixel(NaN)).toBe(0);
    // (x/2 + 0.5)·255 = 126.5 exactly: numpy rounds to the even 126, Math.round would give 127.
    const x = Math.fround(126.5 / 255 * 2 - 1);
    expect(Math.fround(Math.fround(Math.fround(x / 2) + 0.5) * 255)).toBe(126.5);
    expect(toPixel(x)).toBe(126);
  });

  it('keeps gray as gray and RGB as interleaved RGB', () => {
    const g = tensorToImage(new Float32Array([-1, 0, 1, 5]), [1, 1, 2, 2]);
    expect(g).toMatchObject({ width: 2, height: 2, channels: 1 });
    expect([...g.pixels]).toEqual([0, 128, 255, 255]);
    // Planes R = -1, G = 0, B = 1 over a 1×2 image.
    const c = tensorToImage(new Float32Array([-1, -1, 0, 0, 1, 1]), [1, 3, 1, 2]);
    expect([...c.pixels]).toEqual([0, 128, 255, 0, 128, 255]);
  });

  it('tiles a batch of 3 into a 2×2 grid, the empty cell black', () => {
    // Image b is filled with the value that maps to pixel 10·(b+1).
    const H = 2;
    const W = 3;
    const data = new Float32Array(3 * H * W);
    for (let b = 0; b < 3; b++) data.fill(((10 * (b + 1)) / 255) * 2 - 1, b * H * W, (b + 1) * H * W);
    const img = tensorToImage(data, [3, 1, H, W]);
    expect([img.width, img.height]).toEqual([2 * W, 2 * H]);
    const at = (x: number, y: number) => img.pixels[y * img.width + x];
    expect([at(0, 0), at(2, 1), at(3, 0), at(5, 1), at(0, 2), at(2, 3), at(3, 2), at(5, 3)]).toEqual([10, 10, 20, 20, 30, 30, 0, 0]);
    const row = tensorToImage(data, [3, 1, H, W], { cols: 3 });
    expect([row.width, row.height]).toEqual([3 * W, H]);
    expect([row.pixels[0], row.pixels[W], row.pixels[2 * W]]).toEqual([10, 20, 30]);
  });

  it('rejects unsupported channel counts', () => {
    expect(() => tensorToImage(new Float32Array(4), [1, 4, 1, 1])).toThrow(/1 or 3 channels/);
  });
});

describe('writeFileNoClobber', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('refuses to overwrite unless forced', async () => {
    const d = await mkdtemp(join(tmpdir(), 'fresco-png-'));
    dirs.push(d);
    const p = join(d, 'sub', 'a.png');
    await writeFileNoClobber(p, new Uint8Array([1, 2]), false);
    await expect(writeFileNoClobber(p, new Uint8Array([3]), false)).rejects.toThrow(/already exists.*--force/);
    expect([...(await readFile(p))]).toEqual([1, 2]);
    await writeFileNoClobber(p, new Uint8Array([3]), true);
    expect([...(await readFile(p))]).toEqual([3]);
  });
});

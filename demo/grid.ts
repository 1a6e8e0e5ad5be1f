// How the demo lays out several images: a near-square grid (2x2 for 4, 3x3 for 9) rather than
// the one long row generate() returns for a count, so each image can be shown large enough.
import type { RgbaImage } from '../src/index.ts';

/** Images per row for n images. */
export function gridColumns(n: number): number {
  return Math.ceil(Math.sqrt(n));
}

/**
 * The n tiles of `img` (generate()'s grid, either the finished images or a latent preview) laid
 * out `cols` per row; cells past the last tile stay transparent. generate() picks its own column
 * count, so it is recovered here from the tile shape, which has the image's aspect ratio
 * [height, width]: only one column count gives such tiles, since the grid's width/height ratio
 * grows strictly with it. A grid no column count explains is returned as it is.
 */
export function regrid(img: RgbaImage, n: number, [ah, aw]: readonly [number, number], cols: number): RgbaImage {
  let from = 0;
  for (let c = 1; c <= n && !from; c++) {
    const rows = Math.ceil(n / c);
    if (img.width % c === 0 && img.height % rows === 0 && (img.width / c) * ah === (img.height / rows) * aw) from = c;
  }
  if (!from || from === cols) return img;
  const tw = img.width / from;
  const th = img.height / Math.ceil(n / from);
  const width = cols * tw;
  const data = new Uint8ClampedArray(width * Math.ceil(n / cols) * th * 4);
  for (let i = 0; i < n; i++) {
    const [sx, sy] = [(i % from) * tw, Math.floor(i / from) * th];
    const [dx, dy] = [(i % cols) * tw, Math.floor(i / cols) * th];
    for (let y = 0; y < th; y++) {
      const s = ((sy + y) * img.width + sx) * 4;
      data.set(img.data.subarray(s, s + tw * 4), ((dy + y) * width + dx) * 4);
    }
  }
  return { width, height: data.length / 4 / width, data };
}

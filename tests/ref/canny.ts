// OpenCV's cv::Canny(image, low, high) with aperture 3 and the L1 gradient, on an 8-bit RGB image,
// in plain TypeScript: Sobel derivatives per channel (borders replicated), the channel of largest
// |dx| + |dy| per pixel (the first on ties), non-maximum suppression along the gradient's sector
// (tan 22.5° in OpenCV's 15-bit fixed point; neighbours outside the image count as 0), then
// hysteresis: candidates above `low` that pass suppression are edges when above `high` or
// 8-connected through candidates to such a pixel. Thresholds are floored, and swapped when low > high.

/** rgba: width·height RGBA bytes. Returns width·height bytes, 255 on edges. */
export function cannyRef(rgba: ArrayLike<number>, width: number, height: number, lowThreshold: number, highThreshold: number): Uint8Array {
  let [lo, hi] = [lowThreshold, highThreshold];
  if (lo > hi) [lo, hi] = [hi, lo];
  const low = Math.floor(lo);
  const high = Math.floor(hi);
  const n = width * height;
  const px = (x: number, y: number, c: number) => rgba[4 * (Math.min(height - 1, Math.max(0, y)) * width + Math.min(width - 1, Math.max(0, x))) + c]!;
  const dx = new Int32Array(n);
  const dy = new Int32Array(n);
  const mag = new Int32Array(n);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      let best = -1;
      for (let c = 0; c < 3; c++) {
        const gx = px(x + 1, y - 1, c) - px(x - 1, y - 1, c) + 2 * (px(x + 1, y, c) - px(x - 1, y, c)) + px(x + 1, y + 1, c) - px(x - 1, y + 1, c);
        const gy = px(x - 1, y + 1, c) - px(x - 1, y - 1, c) + 2 * (px(x, y + 1, c) - px(x, y - 1, c)) + px(x + 1, y + 1, c) - px(x + 1, y - 1, c);
        const m = Math.abs(gx) + Math.abs(gy);
        if (m > best) {
          best = m;
          const p = y * width + x;
          dx[p] = gx;
          dy[p] = gy;
          mag[p] = m;
        }
      }
    }
  const at = (x: number, y: number) => (x < 0 || y < 0 || x >= width || y >= height ? 0 : mag[y * width + x]!);
  const TG22 = Math.floor(0.4142135623730950488016887242097 * (1 << 15) + 0.5);
  // 0: not an edge, 1: candidate, 2: edge.
  const state = new Uint8Array(n);
  const stack: number[] = [];
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const p = y * width + x;
      const m = mag[p]!;
      if (m <= low) continue;
      const ax = Math.abs(dx[p]!);
      const ay = Math.abs(dy[p]!) * (1 << 15);
      const tg22x = ax * TG22;
      let keep: boolean;
      if (ay < tg22x) keep = m > at(x - 1, y) && m >= at(x + 1, y);
      else if (ay > tg22x + ax * (1 << 16)) keep = m > at(x, y - 1) && m >= at(x, y + 1);
      else {
        const s = dx[p]! < 0 !== dy[p]! < 0 ? -1 : 1;
        keep = m > at(x - s, y - 1) && m > at(x + s, y + 1);
      }
      if (!keep) continue;
      state[p] = m > high ? 2 : 1;
      if (m > high) stack.push(p);
    }
  while (stack.length) {
    const p = stack.pop()!;
    const [x, y] = [p % width, Math.floor(p / width)];
    for (let oy = -1; oy <= 1; oy++)
      for (let ox = -1; ox <= 1; ox++) {
        const [qx, qy] = [x + ox, y + oy];
        if (qx < 0 || qy < 0 || qx >= width || qy >= height) continue;
        const q = qy * width + qx;
        if (state[q] === 1) {
          state[q] = 2;
          stack.push(q);
        }
      }
  }
  return Uint8Array.from(state, (s) => (s === 2 ? 255 : 0));
}

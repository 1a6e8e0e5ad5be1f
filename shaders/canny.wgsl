// Canny edge detection as OpenCV's cv::Canny(image, low, high) computes it with aperture 3 and the
// L1 gradient, on an 8-bit RGB image (ControlNet's canny preprocessing), in four variants over one
// thread per pixel (8x8 tiles):
// GRADIENT: 3x3 Sobel dx, dy of each RGB channel, borders replicated, and of the channel with the
//   largest |dx| + |dy| (the first on ties) its magnitude and its dx, dy packed as two i16 halves.
// SUPPRESS: non-maximum suppression along the gradient's sector, with OpenCV's integer test
//   (tan 22.5° as 13573 / 2^15, tan 67.5° through x·2^16 added; a neighbour outside the image is
//   0): state 2 (edge) above `high`, 1 (candidate) above `low`, else 0.
// HYSTERESIS: a candidate with an edge among its 8 neighbours becomes an edge, and `changed` is
//   set. Run until no pass changes anything, this is OpenCV's stack-driven edge tracking: both
//   give every candidate 8-connected through candidates to an edge. States are read and written
//   atomically, so a pass may already see the edges it made (it only converges sooner).
// OUTPUT: edges as white RGBA pixels (packed u32, alpha 255), the rest black.
// Images are packed RGBA8, one u32 per pixel (red in the low byte).

struct U { width: u32, height: u32, low: i32, high: i32 }
@group(0) @binding(0) var<uniform> u: U;

#if GRADIENT
@group(0) @binding(1) var<storage, read> img: array<u32>;
@group(0) @binding(2) var<storage, read_write> grad: array<u32>;
@group(0) @binding(3) var<storage, read_write> mag: array<i32>;

fn px(x: i32, y: i32) -> vec3<i32> {
  let cx = u32(clamp(x, 0, i32(u.width) - 1));
  let cy = u32(clamp(y, 0, i32(u.height) - 1));
  let v = img[cy * u.width + cx];
  return vec3<i32>(i32(v & 0xffu), i32((v >> 8u) & 0xffu), i32((v >> 16u) & 0xffu));
}
#elif SUPPRESS
@group(0) @binding(1) var<storage, read> grad: array<u32>;
@group(0) @binding(2) var<storage, read> mag: array<i32>;
@group(0) @binding(3) var<storage, read_write> state: array<u32>;

fn mag_at(x: i32, y: i32) -> i32 {
  if (x < 0 || y < 0 || x >= i32(u.width) || y >= i32(u.height)) { return 0; }
  return mag[u32(y) * u.width + u32(x)];
}
#elif HYSTERESIS
@group(0) @binding(1) var<storage, read_write> state: array<atomic<u32>>;
@group(0) @binding(2) var<storage, read_write> changed: array<atomic<u32>>;
#else
@group(0) @binding(1) var<storage, read> state: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
#endif

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  if (gid.x >= u.width || gid.y >= u.height) { return; }
  let x = i32(gid.x);
  let y = i32(gid.y);
  let p = gid.y * u.width + gid.x;
#if GRADIENT
  let a = px(x - 1, y - 1);
  let b = px(x, y - 1);
  let c = px(x + 1, y - 1);
  let d = px(x - 1, y);
  let f = px(x + 1, y);
  let g = px(x - 1, y + 1);
  let h = px(x, y + 1);
  let k = px(x + 1, y + 1);
  let dx = (c - a) + 2 * (f - d) + (k - g);
  let dy = (g - a) + 2 * (h - b) + (k - c);
  let m = abs(dx) + abs(dy);
  var best = 0u;
  if (m.y > m[best]) { best = 1u; }
  if (m.z > m[best]) { best = 2u; }
  grad[p] = (u32(dx[best]) & 0xffffu) | (u32(dy[best]) << 16u);
  mag[p] = m[best];
#elif SUPPRESS
  let m = mag[p];
  var s = 0u;
  if (m > u.low) {
    let packed = grad[p];
    // The halves back to signed values (arithmetic shifts sign-extend).
    let gx = i32(packed << 16u) >> 16u;
    let gy = i32(packed) >> 16u;
    let ax = abs(gx);
    let ay = abs(gy) << 15u;
    let tg22x = ax * 13573;
    var keep = false;
    if (ay < tg22x) {
      keep = m > mag_at(x - 1, y) && m >= mag_at(x + 1, y);
    } else if (ay > tg22x + (ax << 16u)) {
      keep = m > mag_at(x, y - 1) && m >= mag_at(x, y + 1);
    } else {
      let sg = select(1, -1, (gx ^ gy) < 0);
      keep = m > mag_at(x - sg, y - 1) && m > mag_at(x + sg, y + 1);
    }
    if (keep) { s = select(1u, 2u, m > u.high); }
  }
  state[p] = s;
#elif HYSTERESIS
  if (atomicLoad(&state[p]) != 1u) { return; }
  for (var oy = -1; oy <= 1; oy++) {
    for (var ox = -1; ox <= 1; ox++) {
      let qx = x + ox;
      let qy = y + oy;
      if (qx < 0 || qy < 0 || qx >= i32(u.width) || qy >= i32(u.height)) { continue; }
      if (atomicLoad(&state[u32(qy) * u.width + u32(qx)]) == 2u) {
        atomicStore(&state[p], 2u);
        atomicStore(&changed[0], 1u);
        return;
      }
    }
  }
#else
  out[p] = select(0xff000000u, 0xffffffffu, state[p] == 2u);
#endif
}

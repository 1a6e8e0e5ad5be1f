// VectorQuantizer's nearest-codebook lookup (diffusers.models.autoencoders.vae.VectorQuantizer,
// legacy path): every pixel's D-vector of z [B, D, h, w] is replaced by the codebook row [K, D]
// closest to it. One thread per pixel, 64 pixels per workgroup; the codebook is scanned in tiles
// staged in workgroup memory (with each row's squared norm), so K can reach 8192 and beyond.
//
// The distance mirrors torch.cdist's matmul path (used whenever either side has more than 25
// rows, which every real codebook does): ||z||² − 2 z·e + ||e||², clamped at 1e-30, then sqrt.
// Near-ties decide which row wins, so the same roundings matter more than the exact distance.
// A strict < keeps the first of equal distances, as torch.argmin does.
#include "common"

const WG = 64u;
// 16 KiB of workgroup memory: up to 256 codebook norms and 3840 codebook values.
const TILE_VALUES = 3840u;
const TILE_ROWS_MAX = 256u;

struct U { pixels: u32, hw: u32, d: u32, k: u32, tile_rows: u32, direct: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> z: array<st>;
// The codebook is a model weight, stored as wst (common.wgsl).
@group(0) @binding(2) var<storage, read> codebook: array<wst>;
fn code(i: u32) -> f32 { return wval(codebook[widx(i)], i); }
@group(0) @binding(3) var<storage, read_write> out: array<st>;

var<workgroup> tile: array<f32, TILE_VALUES>;
var<workgroup> norms: array<f32, TILE_ROWS_MAX>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let p = flat_workgroup(wid, nwg) * WG + lid.x;
  let live = p < u.pixels;
  // z is NCHW: the pixel's components are hw apart. Threads of a workgroup read neighbouring
  // pixels, so these loads coalesce and stay cached through the scan.
  let pc = min(p, u.pixels - 1u);
  let b = pc / u.hw;
  let base = b * u.d * u.hw + (pc - b * u.hw);

  var z_norm = 0.0;
  for (var c = 0u; c < u.d; c++) {
    let v = f32(z[base + c * u.hw]);
    z_norm += v * v;
  }

  var best = 0u;
  var best_dist = 0.0;
  var first = true;
  for (var row0 = 0u; row0 < u.k; row0 += u.tile_rows) {
    let rows = min(u.tile_rows, u.k - row0);
    workgroupBarrier();
    for (var i = lid.x; i < rows * u.d; i += WG) {
      tile[i] = code(row0 * u.d + i);
    }
    workgroupBarrier();
    for (var r = lid.x; r < rows; r += WG) {
      var n = 0.0;
      for (var c = 0u; c < u.d; c++) {
        let v = tile[r * u.d + c];
        n += v * v;
      }
      norms[r] = n;
    }
    workgroupBarrier();
    for (var r = 0u; r < rows; r++) {
      var dist = 0.0;
      if (u.direct != 0u) {
        // torch.cdist's direct path, for tiny problems: sqrt of the summed squared differences.
        for (var c = 0u; c < u.d; c++) {
          let diff = f32(z[base + c * u.hw]) - tile[r * u.d + c];
          dist += diff * diff;
        }
        dist = sqrt(dist);
      } else {
        var dot = 0.0;
        for (var c = 0u; c < u.d; c++) {
          dot += f32(z[base + c * u.hw]) * tile[r * u.d + c];
        }
        // torch sums [-2z, ||z||², 1]·[e, 1, ||e||²] in that order; -2 scales exactly.
        dist = sqrt(max((-2.0 * dot + z_norm) + norms[r], 1e-30));
      }
      if (first || dist < best_dist) {
        best = row0 + r;
        best_dist = dist;
        first = false;
      }
    }
  }

  if (!live) { return; }
  for (var c = 0u; c < u.d; c++) {
    let zc = f32(z[base + c * u.hw]);
    // z + (z_q - z): the straight-through estimator's value, rounded as torch rounds it.
    out[base + c * u.hw] = st(zc + (code(best * u.d + c) - zc));
  }
}

// Two small lookups that start every U-Net forward.
//  TIMESTEP: diffusers' get_timestep_embedding, fused into one pass (t * freq, scale, sin/cos,
//    flip, odd-dim pad). The frequencies come in as a table computed on the host with torch's
//    float32 rounding, because arguments reach ~1000 rad, where one ulp of a frequency is already
//    6e-5 rad; sin/cos use the portable precise_math versions for the same reason. With LOG it
//    is GaussianFourierProjection (UNet2DModel's fourier time embedding): the table holds its
//    weight and the argument is (ln t * w) * 2pi.
//  LOOKUP: nn.Embedding rows gathered by u32 id (class labels); ids past the table are clamped
//    so a bad id can never read out of bounds. With IDS_F32 the ids are f32 values truncated to
//    an index (UNet2DModel's learned time embedding, an nn.Embedding over the timesteps).
//  TOKENS: CLIP's token embedding plus its position embedding, from one row chunk of the token
//    table: a real vocabulary (49408 x 768 f32 = 151 MB) is over the 128 MiB binding limit, so
//    the table is bound in chunks, one pass each, and a pass writes only the tokens whose (clamped)
//    id falls in its chunk. Every id falls in exactly one chunk, so every output is written once.
#include "common"
#include "precise_math"

const WG = 256u;

#if TIMESTEP
struct U { n: u32, dim: u32, half_dim: u32, scale: f32, flip: u32, broadcast: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> timesteps: array<f32>;
@group(0) @binding(2) var<storage, read> freqs: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<st>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat_workgroup(wid, nwg) * WG + lid.x;
  if (i >= u.n) { return; }
  let b = i / u.dim;
  let j = i - b * u.dim;
  if (j >= 2u * u.half_dim) {
    out[i] = st(0.0);
    return;
  }
  let second = j >= u.half_dim;
  let f = select(j, j - u.half_dim, second);
#if LOG
  let t = log_precise(timesteps[select(b, 0u, u.broadcast != 0u)]);
#else
  let t = timesteps[select(b, 0u, u.broadcast != 0u)];
#endif
  // Two roundings, as torch does: t * freq, then scale * that.
  let arg = (t * freqs[f]) * u.scale;
  let sc = sincos_precise(arg);
  // [sin | cos], or [cos | sin] with flip_sin_to_cos.
  out[i] = st(select(sc.x, sc.y, second != (u.flip != 0u)));
}
#endif

#if LOOKUP
// broadcast: every row reads ids[0]. The table is a model weight (stored as wst, common.wgsl) or,
// for CLIP's pooled rows, an activation (then wst is st).
struct U { n: u32, dim: u32, num: u32, broadcast: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> table: array<wst>;
#if IDS_F32
@group(0) @binding(2) var<storage, read> ids: array<f32>;
#else
@group(0) @binding(2) var<storage, read> ids: array<u32>;
#endif
@group(0) @binding(3) var<storage, read_write> out: array<st>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat_workgroup(wid, nwg) * WG + lid.x;
  if (i >= u.n) { return; }
  let b = i / u.dim;
  let j = i - b * u.dim;
#if IDS_F32
  // Truncated toward zero (torch's .long()), clamped to the table.
  let id = u32(clamp(ids[select(b, 0u, u.broadcast != 0u)], 0.0, f32(u.num - 1u)));
#else
  let id = min(ids[select(b, 0u, u.broadcast != 0u)], u.num - 1u);
#endif
  let k = id * u.dim + j;
  out[i] = st(wval(table[widx(k)], k));
}
#endif

#if TOKENS
// n = rows·dim of the output; seq: tokens per sequence (position = row % seq); the chunk holds
// table rows [first, first + rows); total: rows of the whole table.
struct U { n: u32, dim: u32, seq: u32, first: u32, rows: u32, total: u32 }
@group(0) @binding(0) var<uniform> u: U;
// The table chunk and the positions are model weights, stored as wst (common.wgsl).
@group(0) @binding(1) var<storage, read> table: array<wst>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read> pos: array<wst>;
@group(0) @binding(4) var<storage, read_write> out: array<st>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat_workgroup(wid, nwg) * WG + lid.x;
  if (i >= u.n) { return; }
  let r = i / u.dim;
  let j = i - r * u.dim;
  let id = min(ids[r], u.total - 1u);
  if (id < u.first || id - u.first >= u.rows) { return; }
  // One f32 add, as torch adds inputs_embeds and position_embeds.
  let k = (id - u.first) * u.dim + j;
  let p = (r % u.seq) * u.dim + j;
  out[i] = st(wval(table[widx(k)], k) + wval(pos[widx(p)], p));
}
#endif

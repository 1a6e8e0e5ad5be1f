// Multi-head scaled-dot-product attention, flash style: out = softmax(q·kᵀ·scale)·v per head,
// without ever holding the [Tq, Tk] score matrix. q: [B, Tq, C], k and v: [B, Tk, C], out:
// [B, Tq, C]; head h owns channels [h·D, (h+1)·D) in all four (torch's view(B, T, heads, D)).
//
// One workgroup handles BQ query rows of one (batch, head), one thread per row. The workgroup
// walks the keys in tiles of BK rows: with STAGE_KV it stages the K and V tiles in workgroup
// memory (every thread reads the same element at the same time, so the reads broadcast; GPUs),
// without it every thread reads them from the inputs itself (CPU adapters, whose caches do the
// sharing and whose workgroup memory is emulated, and costs SwiftShader compile time: Dawn zeroes
// it, and compiling that grows faster than the memory). Each thread scores its row against the
// tile, and folds the tile into its running max m, denominator l and D-wide accumulator with the
// online-softmax rescale. Statistics and accumulation are f32 (diffusers'
// upcast_softmax). The softmax runs in base 2: scale·log2(e) is folded into the q row once, so
// each weight is one exp2.
//
// Workgroup memory: 2 tiles · BK · D · 4 bytes <= 16 KiB, i.e. BK·D <= 2048 (attention.ts picks
// BK = min(64, 2048 / D) rounded down to a multiple of 4: D 40 -> 48, D 64 -> 32, D 128 -> 16,
// D 160 -> 12, D 512 -> 4; shorter when the keys are few, always a multiple of 4).
//
// Params: D (head dim), BQ (query rows per workgroup = threads), BK (keys per tile), KG (groups of
// four keys scored per step; BK is a multiple of 4·KG), STAGE_KV (above), CAUSAL (query i sees keys j <= i),
// UNROLL_D (the head-dim loops run to the constant D; without it to the same value read from the
// uniforms, see `dh` below).
// Workgroups are (q tile, head, batch) flattened and folded over x/y.
#include "common"

struct U {
  Tq: u32, Tk: u32, C: u32, heads: u32,
  // ceil(Tq / BQ), and q_tiles · heads · B: the real workgroup count before folding
  q_tiles: u32, total: u32,
  scale_log2: f32,
}

@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> q: array<st>;
@group(0) @binding(2) var<storage, read> k: array<st>;
@group(0) @binding(3) var<storage, read> v: array<st>;
@group(0) @binding(4) var<storage, read_write> out: array<st>;

const D = {{D}}u;
const BQ = {{BQ}}u;
const BK = {{BK}}u;
const TILE = BK * D;
// Stands in for -inf (a masked score, a max over no keys) without inf arithmetic, which
// fast-math compilers may assume away.
const NEG = -3.0e38;

// Channel-major tiles of four keys: kt[c · BK/4 + r/4] holds channel c of keys r .. r+3, so the
// four-key score and accumulate steps each read one vec4 (one 16-byte load per four FMAs; with
// key-major scalars, four loads, and a GPU's shared-memory load rate bounds the kernel).
const BK4 = BK / 4u;
const KG = {{KG}}u;
// Named here so that a spec without STAGE_KV fails to expand (as for D, BQ, BK, KG) instead of
// quietly getting the CPU adapters' form.
const STAGED = {{STAGE_KV}};
#if STAGE_KV
var<workgroup> kt: array<vec4<f32>, TILE / 4u>;
var<workgroup> vt: array<vec4<f32>, TILE / 4u>;

// Channel c of the four keys at slot (keys 4·slot .. 4·slot + 3 of the tile); `rows` is the
// direct form's and unused here.
fn k4(c: u32, slot: u32, rows: vec4<u32>) -> vec4<f32> { return kt[c * BK4 + slot]; }
fn v4(c: u32, slot: u32, rows: vec4<u32>) -> vec4<f32> { return vt[c * BK4 + slot]; }
#else
// The same values read from the inputs: `rows` holds the four keys' offsets (key_rows).
fn k4(c: u32, slot: u32, rows: vec4<u32>) -> vec4<f32> { return vec4<f32>(f32(k[rows.x + c]), f32(k[rows.y + c]), f32(k[rows.z + c]), f32(k[rows.w + c])); }
fn v4(c: u32, slot: u32, rows: vec4<u32>) -> vec4<f32> { return vec4<f32>(f32(v[rows.x + c]), f32(v[rows.y + c]), f32(v[rows.z + c]), f32(v[rows.w + c])); }
#endif

// Where keys j .. j + 3 of this (batch, head) start; rows past Tk read a real row (clamped) and
// are masked out of the scores.
fn key_rows(kvbase: u32, j: u32) -> vec4<u32> {
  return kvbase + min(vec4<u32>(j) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(u.Tk - 1u)) * u.C;
}

@compute @workgroup_size({{BQ}}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let flat = flat_workgroup(wid, nwg);
  if (flat >= u.total) { return; }
  let q0 = (flat % u.q_tiles) * BQ;
  let bh = flat / u.q_tiles;
  let h = bh % u.heads;
  let b = bh / u.heads;
  let i = q0 + lid;
#if !STAGE_KV
  // No tile to help stage: a row past Tq has nothing to do.
  if (i >= u.Tq) { return; }
#endif
#if UNROLL_D
  let dh = D;
#else
  // A bound the compiler cannot see: lavapipe's LLVM unrolls the constant-D loops with the key
  // loops around them into code that took it up to 99 s to compile per kernel (d32, 64 keys), for
  // no speed on either CPU adapter; GPU compilers want the constant (registers, not memory).
  let dh = u.C / u.heads;
#endif

  // Rows past Tq still run when staging: they help stage every tile and pass every barrier, and never store.
  let qbase = (b * u.Tq + min(i, u.Tq - 1u)) * u.C + h * D;
  var qr: array<f32, D>;
  var acc: array<f32, D>;
  for (var c = 0u; c < dh; c++) {
    qr[c] = f32(q[qbase + c]) * u.scale_log2;
    acc[c] = 0.0;
  }
  var m = NEG;
  var l = 0.0;

#if CAUSAL
  // Keys past the tile's last row are masked for every row in it.
  let k_end = min(u.Tk, q0 + BQ);
#else
  let k_end = u.Tk;
#endif
  let kvbase = b * u.Tk * u.C + h * D;
  for (var j0 = 0u; j0 < k_end; j0 += BK) {
#if STAGE_KV
    // Everyone is done with the previous tile before it is overwritten.
    workgroupBarrier();
    // Each thread writes whole vec4s (never one component: a component store may rewrite the
    // whole vector, racing with a neighbour). Channels run fastest across threads, so each of the
    // four global reads is contiguous over the workgroup.
    for (var e = lid; e < TILE / 4u; e += BQ) {
      let c = e % D;
      let r = (e / D) * 4u;
      let at = key_rows(kvbase, j0 + r) + vec4<u32>(c);
      kt[c * BK4 + r / 4u] = vec4<f32>(f32(k[at.x]), f32(k[at.y]), f32(k[at.z]), f32(k[at.w]));
      vt[c * BK4 + r / 4u] = vec4<f32>(f32(v[at.x]), f32(v[at.y]), f32(v[at.z]), f32(v[at.w]));
    }
    workgroupBarrier();
#endif

    var s: array<f32, BK>;
    var mt = m;
    // KG groups of four keys at a time (BK is a multiple of 4·KG): 4·KG independent FMA chains per
    // q value instead of one, which a single running dot would serialise on its latency, and each
    // q value (and below, each accumulator) is read once per 4·KG keys.
    for (var r = 0u; r < BK; r += 4u * KG) {
      // Zeroed explicitly: a bare declaration inside the loop was seen keeping the last
      // iteration's values (Dawn on lavapipe), though WGSL zero-initializes it each time.
      var dots: array<vec4<f32>, KG>;
      var rows: array<vec4<u32>, KG>;
      for (var g = 0u; g < KG; g++) {
        dots[g] = vec4<f32>(0.0);
#if !STAGE_KV
        rows[g] = key_rows(kvbase, j0 + r + 4u * g);
#endif
      }
      for (var c = 0u; c < dh; c++) {
        let qc = vec4<f32>(qr[c]);
        for (var g = 0u; g < KG; g++) {
          dots[g] = fma(qc, k4(c, r / 4u + g, rows[g]), dots[g]);
        }
      }
      for (var e = 0u; e < 4u * KG; e++) {
        let j = j0 + r + e;
#if CAUSAL
        let live = j < u.Tk && j <= i;
#else
        let live = j < u.Tk;
#endif
        s[r + e] = select(NEG, dots[e / 4u][e % 4u], live);
        mt = max(mt, s[r + e]);
      }
    }

    // Rescale once per tile. While no key has been seen m = mt = NEG and corr = 1 over zeros;
    // the first live tile gives exp2(NEG - mt) = 0.
    let corr = exp2(m - mt);
    l *= corr;
    for (var c = 0u; c < dh; c++) { acc[c] *= corr; }
    for (var r = 0u; r < BK; r += 4u * KG) {
      var p: array<vec4<f32>, KG>;
      for (var e = 0u; e < 4u * KG; e++) { p[e / 4u][e % 4u] = select(0.0, exp2(s[r + e] - mt), s[r + e] > NEG); }
      var rows: array<vec4<u32>, KG>;
      for (var g = 0u; g < KG; g++) {
        l += p[g].x + p[g].y + p[g].z + p[g].w;
#if !STAGE_KV
        rows[g] = key_rows(kvbase, j0 + r + 4u * g);
#endif
      }
      // One read-modify-write of each accumulator per 4·KG keys.
      for (var c = 0u; c < dh; c++) {
        var a = acc[c];
        for (var g = 0u; g < KG; g++) { a += dot(p[g], v4(c, r / 4u + g, rows[g])); }
        acc[c] = a;
      }
    }
    m = mt;
  }

  // Tk >= 1 (attention.ts) and key 0 is visible to every row even when causal, so l >= 1.
  if (i < u.Tq) {
    let inv = 1.0 / l;
    for (var c = 0u; c < dh; c++) {
      out[qbase + c] = st(acc[c] * inv);
    }
  }
}

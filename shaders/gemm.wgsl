// The one GEMM core: out[m, n] = sum_k A(m, k) * W[n, k], batched over z.
// W is a PyTorch Linear/Conv weight ([N, K] row-major, shared by the batch, or W_N4: four output
// channels interleaved per k, what models load for the direct feed), stored like the activations or
// as f16 beside f32 ones (wst in common.wgsl). What differs between
// a linear layer, a channel projection over an NCHW tensor and an implicit-GEMM conv2d is only
// how A is read (A_ROWMAJOR / A_COLMAJOR / A_IM2COL) and how the result is written
// (OUT_ROWMAJOR / OUT_COLMAJOR), plus the fused epilogue (an unfused LoRA's low-rank term, bias,
// per-channel time embedding, residual, scale, then one activation: SiLU, Mish, exact GELU, ReLU or
// quick GELU).
//
// Each thread keeps a TM x TN block of accumulators in registers (8 x 8 by default: on CPU
// adapters each k costs TM + TN loads for TM·TN FMAs, and 8 x 8 measured 1.8-2.1x faster than
// 4 x 4 on lavapipe, 1.3-1.6x on SwiftShader). Two ways to feed them:
// - direct (default): every thread reads its own A and W values from global memory, with the
//   im2col addressing hoisted per tap. Best on CPU adapters, where workgroup memory and barriers
//   are emulated (a tiled kernel measured 3x slower on SwiftShader).
// - TILED: the workgroup stages BK-deep slices of A and W in workgroup memory with coalesced
//   loads (neighbouring threads read neighbouring addresses) and every thread reads its operands
//   from there: the usual GPU GEMM, where direct reads of W rows K apart would each touch their
//   own cache line.
// A dispatch whose tiles alone would leave most of a GPU idle (a 1280-channel conv at 8 x 8 has
// 20 of them) splits K: SPLITK writes each slice's raw sums to an f32 scratch, and the REDUCE
// variant of this template adds the slices and applies the epilogue (src/kernels/gemm.ts sizes it).
//
// HEADS: attention's two GEMMs per z = b·heads + h (src/kernels/attention.ts), S = scale·Q·Kᵀ and
// out = P·V, read their operands in place as views of the [B, T, C] activations, where head h owns
// channels h·d .. h·d + d - 1: A_STRIDED (A(m, k) at view(z) + m·lda + k: q's rows are C apart),
// W_BATCHED (W(n, k) at view(z) + n·ldw + k: k's rows), W_KMAJOR with it (W(n, k) at
// view(z) + k·ldw + n: v, whose n = channel is the contiguous one), OUT_STRIDED (out(m, n) at
// view(z) + m·ldo + n). The scores stay f32 beside f16 activations: A_F32 (P) and OUT_F32 (S).
// These never split K (out_index would address the scratch outside its batch·M·N).
//
// Winograd convs (src/kernels/winograd.ts, shaders/winograd.wgsl) run their 16 GEMMs here with
// W_PLANES (z = ξ reads plane z of a 16-plane 'n4' weight) and SPLITK (raw sums to the scratch,
// on either feed); the WINO_OUT variant of REDUCE then adds the slices, takes each tile's 16 sums
// through the output transform and stores its 2x2 outputs under the conv's epilogue.
#include "common"

struct U {
  M: u32, N: u32, K: u32,
  // conv geometry (A_IM2COL); unused otherwise
  Cin: u32, H: u32, W: u32, kh: u32, kw: u32, stride: u32,
  padT: u32, padL: u32, Hout: u32, Wout: u32,
  // UPSAMPLE: the nearest-upsampled size the conv reads (2H, or a skip's 2H - 1 in a U-Net).
  upH: u32, upW: u32,
  scale: f32,
  // z = batch·yfold + fold: M tiles past 65535 workgroups continue in z (see gemmGrid).
  yfold: u32,
  // TEMB: row z of the [B, tembStride] time embedding, from column tembOffset (an output channel
  // chunk of a conv split to fit the binding limit reads its own columns of the full row).
  tembStride: u32, tembOffset: u32,
  // SPLITK / REDUCE: K slices of kChunk (a multiple of BK) each, and the batch·M·N outputs of one.
  splits: u32, kChunk: u32, total: u32,
  // LORA: the stacked rank of the adapters (lora_t's and lora_up's R).
  lora_rank: u32,
  // W's row stride in elements (K, or a q4 weight's K padded to whole blocks) and, for a quantized
  // W (WQ), the word where its f16 scales start.
  ldw: u32, scaleWord: u32,
#if W_PLANES
  // W(z, n, k): plane z of an 'n4' weight starts z·wPlane vec4s in.
  wPlane: u32,
#endif
#if WINO_OUT
  // Tiles per row and per image of the Winograd conv's output (M here is Hout·Wout, store's).
  tw: u32, tiles: u32,
#endif
#if HEADS
  // view(z) = base + (z / heads)·per batch item + (z % heads)·per head, for A, W and out.
  heads: u32,
  aBase: u32, aBatch: u32, aHead: u32, lda: u32,
  wBatch: u32, wHead: u32,
  oBase: u32, oBatch: u32, oHead: u32, ldo: u32,
#endif
}

@group(0) @binding(0) var<uniform> u: U;
#if HEADS
fn view(z: u32, base: u32, batch: u32, head: u32) -> u32 { return base + (z / u.heads) * batch + (z % u.heads) * head; }
#endif
#if WQ
// A quantized W (src/io/quant.ts): its values, then its f16 scales from word scaleWord, in one
// buffer (the main variant's 8 storage bindings are all taken with an unfused LoRA). The REDUCE
// variant binds it only for a q8 weight's row scales.
@group(0) @binding(2) var<storage, read> w: array<u32>;
fn wscale(j: u32) -> f32 { return unpack2x16float(w[u.scaleWord + (j >> 1u)])[j & 1u]; }
#endif
#if REDUCE
@group(0) @binding(1) var<storage, read> part: array<f32>;
#elif A_F32
@group(0) @binding(1) var<storage, read> a: array<f32>;
#else
@group(0) @binding(1) var<storage, read> a: array<st>;
#endif
#if !REDUCE
#if WQ8
// int8 values four to a word; the row's scale is applied once per output, in store().
fn w_at(i: u32) -> f32 { return f32(extractBits(bitcast<i32>(w[i >> 2u]), (i & 3u) * 8u, 8u)); }
#elif WQ4
// Nibbles eight to a word, low first, stored as q + 8; one scale per 32 along a row.
fn w_at(i: u32) -> f32 { return (f32(extractBits(w[i >> 3u], (i & 7u) * 4u, 4u)) - 8.0) * wscale(i >> 5u); }
#elif W_N4
// A weight stored for the direct feed (Tensor.layout 'n4', src/graph/tensor.ts): four output
// channels interleaved per k, W(n, k) at element ((n / 4)·ldw + k)·4 + n % 4, N padded to a
// multiple of 4 (zero rows in a loaded weight; a channel slice's may hold the next channels: no
// column past N is ever stored, so their products are never read). The four columns one vec4 of accumulators needs at one k are then
// one vector load: one vec4 of f32 or f16, or two packed words, instead of four scattered reads
// that each unpack a word and select a half (as costly as the FMAs on SwiftShader). w4(g·ldw + k)
// is W(4g .. 4g + 3, k).
#if W_PACKED
@group(0) @binding(2) var<storage, read> w: array<vec2<u32>>;
fn w4(i: u32) -> vec4<f32> { let p = w[i]; return vec4<f32>(unpack2x16float(p.x), unpack2x16float(p.y)); }
#else
@group(0) @binding(2) var<storage, read> w: array<vec4<wst>>;
fn w4(i: u32) -> vec4<f32> { return vec4<f32>(w[i]); }
#endif
// Where batch item z's weight starts, in vec4s: plane z with W_PLANES, else the one shared weight.
fn w_plane(z: u32) -> u32 {
#if W_PLANES
  return z * u.wPlane;
#else
  return 0u;
#endif
}
#else
// w and bias are model weights: stored as wst (common.wgsl), read as f32 by wval.
@group(0) @binding(2) var<storage, read> w: array<wst>;
fn w_at(i: u32) -> f32 { return wval(w[widx(i)], i); }
#endif
#endif
#if BIAS
@group(0) @binding(3) var<storage, read> bias: array<wst>;
#endif
#if TEMB
@group(0) @binding(4) var<storage, read> temb: array<st>;
#endif
#if RESIDUAL
@group(0) @binding(5) var<storage, read> res: array<st>;
#endif
#if SPLITK
@group(0) @binding(6) var<storage, read_write> part: array<f32>;
#elif OUT_F32
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
#else
@group(0) @binding(6) var<storage, read_write> out: array<st>;
#endif
#if LORA
// An unfused LoRA (src/kernels/lora_attach.ts): t = x·downᵀ for this GEMM's rows, laid out like the
// output ([batch, M, R], or [batch, R, M] with OUT_COLMAJOR: a conv's channel-major t), and up
// [N, R] with each adapter's scale·alpha/rank folded in. With every epilogue binding that is 8
// storage buffers in the main variant (a, w, bias, temb, res, out, lora_t, lora_up), and 7 in
// REDUCE (8 with a q8 weight's scales): WebGPU's default maxStorageBuffersPerShaderStage. SPLITK never binds them (the reduce adds
// the term once, to the slices' sum).
@group(0) @binding(7) var<storage, read> lora_t: array<st>;
@group(0) @binding(8) var<storage, read> lora_up: array<f32>;

// sum_r t[z, m, r] · up[n, r]: diffusers' LoRACompatibleLinear/Conv add scale·up(down(x)) to the
// layer's own output, before the block's residual, output scale and activation.
fn lora_term(z: u32, m: u32, n: u32) -> f32 {
  let R = u.lora_rank;
  var s = 0.0;
  for (var r = 0u; r < R; r++) {
#if OUT_COLMAJOR
    let tv = f32(lora_t[(z * R + r) * u.M + m]);
#else
    let tv = f32(lora_t[(z * u.M + m) * R + r]);
#endif
    s = fma(tv, lora_up[n * R + r], s);
  }
  return s;
}
#endif

fn out_index(z: u32, m: u32, n: u32) -> u32 {
#if OUT_COLMAJOR
  return z * u.N * u.M + n * u.M + m;
#elif OUT_STRIDED
  return view(z, u.oBase, u.oBatch, u.oHead) + m * u.ldo + n;
#else
  return z * u.M * u.N + m * u.N + n;
#endif
}

#if !SPLITK
fn store(z: u32, m: u32, n: u32, v: f32) {
  var x = v;
#if WQ8
  x *= wscale(n);
#endif
#if LORA
  x += lora_term(z, m, n);
#endif
#if BIAS
  x += wval(bias[widx(n)], n);
#endif
#if TEMB
  x += f32(temb[z * u.tembStride + u.tembOffset + n]);
#endif
  let idx = out_index(z, m, n);
#if RESIDUAL
  x += f32(res[idx]);
#endif
  x *= u.scale;
  // The one fused activation (act in common.wgsl, picked by ACT_*): SiLU, Mish, GELU, ReLU or quick GELU.
  x = act(x);
#if OUT_F32
  out[idx] = x;
#else
  out[idx] = st(x);
#endif
}
#endif

#if WINO_OUT
// A row s of four through A (Aᵀ = [1 1 1 0; 0 1 -1 -1]): its two outputs.
fn at_rows(s: vec4<f32>) -> vec2<f32> {
  return vec2<f32>(s.x + s.y + s.z, s.y - s.z - s.w);
}
#endif

#if REDUCE
// Output i's raw sum: its K slices' sums in slice order (deterministic).
fn slice_sum(i: u32) -> f32 {
  var sum = 0.0;
  for (var s = 0u; s < u.splits; s++) { sum += part[s * u.total + i]; }
  return sum;
}

#if WINO_OUT
// One thread per (tile, output channel), channels fastest: the 16 GEMMs' sums at that tile (each
// the K slices' sums in slice order), through Aᵀ·M·A to the tile's 2x2 outputs, each stored under
// the epilogue (outputs past an odd Hout or Wout are not). The scratch is [splits][16][B·tiles][N].
@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = (wid.y * nwg.x + wid.x) * 256u + lid.x;
  let per = u.total / 16u;
  if (idx >= per) { return; }
  let n = idx % u.N;
  let mw = idx / u.N;
  let b = mw / u.tiles;
  let t = mw % u.tiles;
  let oy = 2u * (t / u.tw);
  let ox = 2u * (t % u.tw);
  // Row r of the tile's 4x4 sums M (element ξ = 4r + c of the 16 GEMMs).
  var mr: array<vec4<f32>, 4>;
  for (var r = 0u; r < 4u; r++) {
    let o = 4u * r * per + idx;
    mr[r] = vec4<f32>(slice_sum(o), slice_sum(o + per), slice_sum(o + 2u * per), slice_sum(o + 3u * per));
  }
  // Aᵀ·M·A: rows of Aᵀ·M, each through A.
  let y0 = at_rows(mr[0] + mr[1] + mr[2]);
  let y1 = at_rows(mr[1] - mr[2] - mr[3]);
  let m = oy * u.Wout + ox;
  let right = ox + 1u < u.Wout;
  store(b, m, n, y0.x);
  if (right) { store(b, m + 1u, n, y0.y); }
  if (oy + 1u < u.Hout) {
    store(b, m + u.Wout, n, y1.x);
    if (right) { store(b, m + u.Wout + 1u, n, y1.y); }
  }
}
#else
// One thread per output: its slices' sum, then the epilogue.
@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = (wid.y * nwg.x + wid.x) * 256u + lid.x;
  if (idx >= u.total) { return; }
  let sum = slice_sum(idx);
  let per = u.M * u.N;
  let r = idx % per;
#if OUT_COLMAJOR
  store(idx / per, r % u.M, r / u.M, sum);
#else
  store(idx / per, r / u.N, r % u.N, sum);
#endif
}
#endif
#else
const TM = {{TM}}u;
// Output columns per thread come in groups of four, each held as one vec4 per row: vector FMAs.
const TN4 = {{TN4}}u;
const TN = 4u * TN4;
const WG = 16u;

// acc[i * TN4 + j] holds row i's columns 4j .. 4j + 3 (the tiled feed's accumulators, and where
// the direct feed's named ones go for the store loop).
var<private> acc: array<vec4<f32>, TM * TN4>;

#if TILED
// The workgroup's tile: BM rows x BN columns, walked in BK-deep slices. Threads own TM contiguous
// rows (the 16 threads of a row of the workgroup read the same A values: a broadcast) and TN4
// groups of four columns 64 apart (neighbouring threads read neighbouring vec4s of a W slice).
const BM = WG * TM;
const BN = WG * TN;
const BK = {{BK}}u;
const THREADS = WG * WG;
// k-major slices, f32 whatever the storage type: BK·(BM + BN)·4 bytes (16 KiB at 16 x 128 + 128).
// F16_MATH (f16 activations, opt-in: Runtime.gemmMath) stages them as f16 and multiplies with f16
// FMAs, which GPUs with packed half math issue two to an instruction, over half the
// workgroup-memory traffic; each slice's BK products are summed in f16 and then added to the f32
// accumulators, so no sum rounds to f16 over more than BK terms.
#if F16_MATH
alias tile_t = f16;
#else
alias tile_t = f32;
#endif
var<workgroup> at: array<vec4<tile_t>, BK * BM / 4u>;
var<workgroup> wt: array<vec4<tile_t>, BK * BN / 4u>;
#if F16_MATH
// One slice's f16 sums, added to acc after the slice.
var<private> part16: array<vec4<f16>, TM * TN4>;
#endif

// A(m, k) of batch item z for the layouts read as plain matrices, zero outside (a conv's
// implicit im2col stages its own way, below).
fn read_a(z: u32, m: u32, k: u32) -> f32 {
  if (m >= u.M || k >= u.K) { return 0.0; }
#if A_COLMAJOR
  return f32(a[z * u.K * u.M + k * u.M + m]);
#elif A_STRIDED
  return f32(a[view(z, u.aBase, u.aBatch, u.aHead) + m * u.lda + k]);
#else
  return f32(a[z * u.M * u.K + m * u.K + k]);
#endif
}

#if !W_N4
fn read_w(z: u32, n: u32, k: u32) -> f32 {
  if (n >= u.N || k >= u.K) { return 0.0; }
#if W_KMAJOR
  return w_at(view(z, 0u, u.wBatch, u.wHead) + k * u.ldw + n);
#elif W_BATCHED
  return w_at(view(z, 0u, u.wBatch, u.wHead) + n * u.ldw + k);
#else
  return w_at(n * u.ldw + k);
#endif
}
#endif

// The slice k0 .. k0 + BK - 1 of the tile at (mt, nt) goes to workgroup memory in whole vec4s
// (4 neighbouring m, or n, at one k): a store to one component of a vector may touch the whole
// vector (WGSL's memory model; Dawn's HLSL writes it back entire), so threads must never share
// one. Which index runs fastest across threads follows the memory layout, so a warp's loads are
// contiguous: m for im2col and channel-major A (neighbouring pixels), k for row-major A and for W,
// n for a k-major W (v's channels).
#if A_COLMAJOR
const A_M_FAST = true;
#else
const A_M_FAST = false;
#endif
#if W_KMAJOR
const W_N_FAST = true;
#else
const W_N_FAST = false;
#endif

#if A_IM2COL
// With m fastest across threads and THREADS a multiple of BM / 4, a thread stages the same four
// output pixels of its tile at every k: their input origins are worked out once (im2col_rows),
// and each k's (ci, ky, kx) once per four pixels, instead of six integer divisions per value.
var<private> org_y: array<i32, 4>;
var<private> org_x: array<i32, 4>;
var<private> org_ok: array<bool, 4>;

fn im2col_rows(mt: u32, t: u32) {
  let m4 = t % (BM / 4u);
  for (var j = 0u; j < 4u; j++) {
    let m = mt + 4u * m4 + j;
    let mm = min(m, u.M - 1u);
    org_y[j] = i32((mm / u.Wout) * u.stride) - i32(u.padT);
    org_x[j] = i32((mm % u.Wout) * u.stride) - i32(u.padL);
    org_ok[j] = m < u.M;
  }
}
#endif

// The next slice is read from global memory into registers while the current one is multiplied
// out of workgroup memory (fetch before the FMAs, put after the barrier): the loads' latency hides
// behind arithmetic instead of stalling every thread once per slice. NA / NW: this thread's vec4s
// of the A and W slices (BK·BM/4 and BK·BN/4 are whole multiples of THREADS).
const NA = BK * BM / 4u / THREADS;
const NW = BK * BN / 4u / THREADS;
// Every staged vec4 has exactly one owner, and a thread's im2col pixels stay the same at every k.
const_assert NA * THREADS == BK * BM / 4u;
const_assert NW * THREADS == BK * BN / 4u;
const_assert THREADS % (BM / 4u) == 0u;
var<private> pa: array<vec4<tile_t>, NA>;
var<private> pai: array<u32, NA>;
var<private> pw: array<vec4<tile_t>, NW>;
var<private> pwi: array<u32, NW>;

fn fetch(z: u32, mt: u32, nt: u32, k0: u32, t: u32) {
#if A_IM2COL
  let taps = u.kh * u.kw;
  let m4 = t % (BM / 4u);
  for (var i = 0u; i < NA; i++) {
    let kl = t / (BM / 4u) + i * (THREADS / (BM / 4u));
    let k = k0 + kl;
    var val = vec4<f32>(0.0);
    if (k < u.K) {
      let ci = k / taps;
      let tap = k % taps;
      let ky = i32(tap / u.kw);
      let kx = i32(tap % u.kw);
      let plane = (z * u.Cin + ci) * u.H;
      for (var j = 0u; j < 4u; j++) {
        let iy = org_y[j] + ky;
        let ix = org_x[j] + kx;
#if UPSAMPLE
        if (org_ok[j] && iy >= 0 && iy < i32(u.upH) && ix >= 0 && ix < i32(u.upW)) {
          val[j] = f32(a[(plane + u32(iy) / 2u) * u.W + u32(ix) / 2u]);
        }
#else
        if (org_ok[j] && iy >= 0 && iy < i32(u.H) && ix >= 0 && ix < i32(u.W)) {
          val[j] = f32(a[(plane + u32(iy)) * u.W + u32(ix)]);
        }
#endif
      }
    }
    pa[i] = vec4<tile_t>(val);
    pai[i] = kl * (BM / 4u) + m4;
  }
#else
  for (var i = 0u; i < NA; i++) {
    let e = t + i * THREADS;
    var m4 = e % (BM / 4u);
    var kl = e / (BM / 4u);
    if (!A_M_FAST) {
      kl = e % BK;
      m4 = e / BK;
    }
    let m = mt + 4u * m4;
    let k = k0 + kl;
    pa[i] = vec4<tile_t>(vec4<f32>(read_a(z, m, k), read_a(z, m + 1u, k), read_a(z, m + 2u, k), read_a(z, m + 3u, k)));
    pai[i] = kl * (BM / 4u) + m4;
  }
#endif
  for (var i = 0u; i < NW; i++) {
    let e = t + i * THREADS;
    var kl = e % BK;
    var n4 = e / BK;
    if (W_N_FAST) {
      kl = e / (BN / 4u);
      n4 = e % (BN / 4u);
    }
    let n = nt + 4u * n4;
    let k = k0 + kl;
#if W_N4
    // n is a multiple of 4, so the group is one stored vec4 (columns past N are never stored).
    var wv = vec4<f32>(0.0);
    if (n < u.N && k < u.K) { wv = w4(w_plane(z) + (n / 4u) * u.ldw + k); }
    pw[i] = vec4<tile_t>(wv);
#else
    pw[i] = vec4<tile_t>(vec4<f32>(read_w(z, n, k), read_w(z, n + 1u, k), read_w(z, n + 2u, k), read_w(z, n + 3u, k)));
#endif
    pwi[i] = kl * (BN / 4u) + n4;
  }
}

// The fetched slice into workgroup memory, whole vec4s only (see above).
fn put() {
  for (var i = 0u; i < NA; i++) { at[pai[i]] = pa[i]; }
  for (var i = 0u; i < NW; i++) { wt[pwi[i]] = pw[i]; }
}
#endif

// A finished sum: the epilogue and the output, or (SPLITK) this K slice's raw sum in the scratch.
fn emit(slice: u32, z: u32, m: u32, n: u32, v: f32) {
#if SPLITK
  part[slice * u.total + out_index(z, m, n)] = v;
#else
  store(z, m, n, v);
#endif
}

#if TILED
@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  // z = (batch·yfold + fold)·splits + K slice.
  let slice = wid.z % u.splits;
  let zf = wid.z / u.splits;
  let z = zf / u.yfold;
  let mt = ((zf % u.yfold) * nwg.y + wid.y) * BM;
  let nt = wid.x * BN;
  let t = lid.y * WG + lid.x;
  for (var i = 0u; i < TM * TN4; i++) { acc[i] = vec4<f32>(0.0); }
  // No early return: every thread stages its share and meets every barrier. A slice's last
  // BK-deep step never reaches into the next (kChunk is a multiple of BK); read_a/read_w zero k >= K.
  let kEnd = min(u.K, (slice + 1u) * u.kChunk);
#if A_IM2COL
  im2col_rows(mt, t);
#endif
  let kBegin = slice * u.kChunk;
  if (kBegin < kEnd) { fetch(z, mt, nt, kBegin, t); }
  for (var k0 = kBegin; k0 < kEnd; k0 += BK) {
    // Everyone is done reading the previous slice before it is overwritten.
    workgroupBarrier();
    put();
    workgroupBarrier();
    if (k0 + BK < kEnd) { fetch(z, mt, nt, k0 + BK, t); }
#if F16_MATH
    for (var i = 0u; i < TM * TN4; i++) { part16[i] = vec4<f16>(0.0); }
#endif
    for (var kl = 0u; kl < BK; kl++) {
      var av: array<tile_t, TM>;
      for (var q = 0u; q < TM / 4u; q++) {
        let v = at[(kl * BM + lid.y * TM) / 4u + q];
        av[4u * q] = v.x;
        av[4u * q + 1u] = v.y;
        av[4u * q + 2u] = v.z;
        av[4u * q + 3u] = v.w;
      }
      for (var j = 0u; j < TN4; j++) {
        let bv = wt[(kl * BN) / 4u + j * WG + lid.x];
        for (var i = 0u; i < TM; i++) {
#if F16_MATH
          part16[i * TN4 + j] = fma(vec4<f16>(av[i]), bv, part16[i * TN4 + j]);
#else
          acc[i * TN4 + j] = fma(vec4<f32>(av[i]), bv, acc[i * TN4 + j]);
#endif
        }
      }
    }
#if F16_MATH
    for (var i = 0u; i < TM * TN4; i++) { acc[i] += vec4<f32>(part16[i]); }
#endif
  }
  let m0 = mt + lid.y * TM;
  for (var i = 0u; i < TM; i++) {
    let m = m0 + i;
    if (m >= u.M) { break; }
    for (var j = 0u; j < TN4; j++) {
      for (var c = 0u; c < 4u; c++) {
        let n = nt + (j * WG + lid.x) * 4u + c;
        if (n < u.N) { emit(slice, z, m, n, acc[i * TN4 + j][c]); }
      }
    }
  }
}
#else
// The direct feed, written out by #unroll: TM x TN4 named vec4 accumulators, TM A values and TN4
// weight vec4s per k, all in registers. CPU adapters' compilers keep a private array indexed in
// a loop in memory (SwiftShader does not unroll): this form measured 5x faster there than the
// loop over arrays (bench/README.md); lavapipe, whose LLVM unrolls, runs both alike.
@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let z = wid.z / u.yfold;
  let m0 = (((wid.z % u.yfold) * nwg.y + wid.y) * WG + lid.y) * TM;
  let n0 = (wid.x * WG + lid.x) * TN;
  if (m0 >= u.M || n0 >= u.N) { return; }
  // Where this thread's weight rows start, four per vec4. Columns past N read row N - 1 (in
  // bounds) and are never stored, so the loop needs no mask: on a CPU adapter every select in it
  // is paid per k.
#if W_N4
  // Interleaved weights: where each group of four columns starts, in vec4s (in plane z with W_PLANES).
  let wp = w_plane(z);
#unroll j TN4
  let wr{{j}} = wp + min(n0 / 4u + {{j}}u, (u.N + 3u) / 4u - 1u) * u.ldw;
#endunroll
#else
#if W_BATCHED
  let wz = view(z, 0u, u.wBatch, u.wHead);
#else
  let wz = 0u;
#endif
  // A k-major W (attention's v) has its n contiguous: k steps by ldw in the loop instead.
#if W_KMAJOR
  let wn = 1u;
#else
  let wn = u.ldw;
#endif
#unroll j TN4
  let wr{{j}} = wz + min(vec4<u32>(n0 + 4u * {{j}}u) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(u.N - 1u)) * wn;
#endunroll
#endif
#unroll i TM
#unroll j TN4
  var c{{i}}_{{j}} = vec4<f32>(0.0);
#endunroll
#endunroll

  // One loop nest for every layout: k runs over (tap, channel) like the weight layout, the tap
  // outer so each row's address and padding test are worked out once per tap, the channel inner
  // stepping A by astride. A plain matrix is one tap of K channels.
#if A_IM2COL
  // Implicit im2col: row m is an output pixel, k = ci·taps + tap.
#if UPSAMPLE
  // Nearest upsample fused into the read: the conv sees an (upH, upW) input, upH = 2H or 2H - 1,
  // where source row y / 2 is torch's nearest (floor(y·H / upH)) for both.
  let inH = i32(u.upH);
  let inW = i32(u.upW);
#else
  let inH = i32(u.H);
  let inW = i32(u.W);
#endif
  let astride = u.H * u.W;
  let base = z * u.Cin * astride;
  let taps = u.kh * u.kw;
  let channels = u.Cin;
  // Each row's offset and padding test for the tap, in small arrays read at constant indices: kept
  // as TM named values live across both loops, they cost SwiftShader 7.5 s to compile per conv
  // pipeline (0.08 s this way), for 5-10% of the speed.
  var offs: array<u32, TM>;
  var inside: array<bool, TM>;
  for (var tap = 0u; tap < taps; tap++) {
    let ky = tap / u.kw;
    let kx = tap % u.kw;
    for (var i = 0u; i < TM; i++) {
      let mr = min(m0 + i, u.M - 1u);
      let iy = i32((mr / u.Wout) * u.stride) - i32(u.padT) + i32(ky);
      let ix = i32((mr % u.Wout) * u.stride) - i32(u.padL) + i32(kx);
      inside[i] = iy >= 0 && iy < inH && ix >= 0 && ix < inW;
#if UPSAMPLE
      offs[i] = base + min(u32(max(iy, 0)) / 2u, u.H - 1u) * u.W + min(u32(max(ix, 0)) / 2u, u.W - 1u);
#else
      offs[i] = base + min(u32(max(iy, 0)), u.H - 1u) * u.W + min(u32(max(ix, 0)), u.W - 1u);
#endif
    }
    var k = tap;
#else
  // Rows past M read row M - 1 and are never stored.
#if A_COLMAJOR
  let astride = u.M;
#else
  let astride = 1u;
#endif
  let taps = 1u;
  let channels = u.K;
  {
#unroll i TM
    let mr{{i}} = min(m0 + {{i}}u, u.M - 1u);
#if A_COLMAJOR
    let off{{i}} = z * u.K * u.M + mr{{i}};
#elif A_STRIDED
    let off{{i}} = view(z, u.aBase, u.aBatch, u.aHead) + mr{{i}} * u.lda;
#else
    let off{{i}} = (z * u.M + mr{{i}}) * u.K;
#endif
#endunroll
    var k = 0u;
#endif
    for (var ci = 0u; ci < channels; ci++) {
      let ca = ci * astride;
#unroll i TM
#if A_IM2COL
      let a{{i}} = select(0.0, f32(a[offs[{{i}}u] + ca]), inside[{{i}}u]);
#else
      let a{{i}} = f32(a[off{{i}} + ca]);
#endif
#endunroll
#if W_KMAJOR
      let wk = k * u.ldw;
#else
      let wk = k;
#endif
#unroll j TN4
#if W_N4
      let b{{j}} = w4(wr{{j}} + wk);
#else
      let b{{j}} = vec4<f32>(w_at(wr{{j}}.x + wk), w_at(wr{{j}}.y + wk), w_at(wr{{j}}.z + wk), w_at(wr{{j}}.w + wk));
#endif
#endunroll
#unroll i TM
#unroll j TN4
      c{{i}}_{{j}} = fma(vec4<f32>(a{{i}}), b{{j}}, c{{i}}_{{j}});
#endunroll
#endunroll
      k += taps;
    }
  }

  // The epilogue once, in one flat loop over the accumulators: lavapipe's compiler unrolls a
  // nested loop of constant bounds whole (TM·TN inlined epilogues, 0.8 s to compile a TM = 4 conv
  // pipeline) but not a flat one (0.1 s); the loop runs once per thread, after the K loop.
#unroll i TM
#unroll j TN4
  acc[{{i}}u * TN4 + {{j}}u] = c{{i}}_{{j}};
#endunroll
#endunroll
  for (var e = 0u; e < TM * TN; e++) {
    let m = m0 + e / TN;
    let n = n0 + e % TN;
    if (m < u.M && n < u.N) { emit(0u, z, m, n, acc[e / 4u][e % 4u]); }
  }
}
#endif
#endif

// Helpers shared by the kernels (pulled in with #include "common").
//
// `st` is the storage element type of activation arrays (and of weight arrays, see wst below).
// With F16 they hold f16 (half the memory and bandwidth); kernels still load every value as
// f32(x[i]), compute, accumulate and take norm and softmax statistics in f32, and round once on
// store with st(y). Every includer puts #include "common" before its first declaration, because
// `enable` must come first.
#if SUBGROUPS
enable subgroups;
#endif
#if F16
enable f16;
alias st = f16;
#else
#if W_F16
enable f16;
#endif
alias st = f32;
#endif

// `wst` is the storage element type of the model-weight arrays a kernel binds (a GEMM's w and bias,
// a norm's gamma and beta, an embedding table, a codebook). By default it is `st`: weights stored
// like the activations. f16 weights beside f32 activations (halving a model's GPU memory where
// activations stay f32) take one of two forms, chosen by src/kernels/dtype.ts weightParams:
//  W_F16: array<f16>, on a device with shader-f16.
//  W_PACKED: array<u32> holding two halves per word (element i is word i / 2, the low half for
//    even i), read with unpack2x16float, which needs no shader-f16.
// Every weight read is wval(arr[widx(i)], i): the element exactly as f32 in every variant, so an
// f16-weight kernel computes exactly what the f32 kernel computes on the f16-rounded weights.
#if W_PACKED
alias wst = u32;
fn widx(i: u32) -> u32 { return i >> 1u; }
fn wval(word: u32, i: u32) -> f32 { return unpack2x16float(word)[i & 1u]; }
#else
#if W_F16
alias wst = f16;
#else
alias wst = st;
#endif
fn widx(i: u32) -> u32 { return i; }
fn wval(v: wst, i: u32) -> f32 { return f32(v); }
#endif

// Dispatches larger than 65535 workgroups are folded over x and y (see fold1d in graph.ts);
// this recovers the flat workgroup index.
fn flat_workgroup(wid: vec3u, nwg: vec3u) -> u32 {
  return wid.x + wid.y * nwg.x;
}

fn silu(x: f32) -> f32 {
  return x / (1.0 + exp(-x));
}

// act(x): the activation a kernel fuses, chosen by one ACT_* template parameter (see
// activationParams in src/kernels/gemm.ts); without one it is the identity. torch's forms:
// SiLU x·sigmoid(x) (silu above, unchanged), Mish x·tanh(softplus(x)), exact erf GELU, ReLU,
// and transformers' quick_gelu x·sigmoid(1.702·x).
#if ACT_GELU
#include "precise_math"
#endif

// Mish without tanh or log: tanh(log(1 + e)) = n / (n + 2) with n = e·(e + 2), e = exp(x), which
// has no cancellation for negative x; past x = 20 the ratio is 1 in f32 (torch's softplus
// threshold), so exp is capped there and never overflows.
fn mish(x: f32) -> f32 {
  let e = exp(min(x, 20.0));
  let n = e * (e + 2.0);
  return x * (n / (n + 2.0));
}

fn act(x: f32) -> f32 {
#if ACT_SILU
  return silu(x);
#elif ACT_MISH
  return mish(x);
#elif ACT_GELU
  return gelu_erf(x);
#elif ACT_RELU
  return max(x, 0.0);
#elif ACT_QUICK_GELU
  // torch: x * sigmoid(1.702 * x); exp overflowing to inf for very negative x still gives -0.
  return x / (1.0 + exp(-1.702 * x));
#else
  return x;
#endif
}

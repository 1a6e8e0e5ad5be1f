// Helpers shared by the kernels (pulled in with #include "common").
//
// `st` is the storage element type of activation and weight arrays. With F16 they hold f16 (half
// the memory and bandwidth); kernels still load every value as f32(x[i]), compute, accumulate and
// take norm and softmax statistics in f32, and round once on store with st(y). Every includer
// puts #include "common" before its first declaration, because `enable` must come first.
#if F16
enable f16;
alias st = f16;
#else
alias st = f32;
#endif

// Dispatches larger than 65535 workgroups are folded over x and y (see fold1d in graph.ts);
// this recovers the flat workgroup index.
fn flat_workgroup(wid: vec3u, nwg: vec3u) -> u32 {
  return wid.x + wid.y * nwg.x;
}

fn silu(x: f32) -> f32 {
  return x / (1.0 + exp(-x));
}

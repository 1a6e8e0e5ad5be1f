// Helpers shared by the kernels (pulled in with #include "common").

// Dispatches larger than 65535 workgroups are folded over x and y (see fold1d in graph.ts);
// this recovers the flat workgroup index.
fn flat_workgroup(wid: vec3u, nwg: vec3u) -> u32 {
  return wid.x + wid.y * nwg.x;
}

fn silu(x: f32) -> f32 {
  return x / (1.0 + exp(-x));
}

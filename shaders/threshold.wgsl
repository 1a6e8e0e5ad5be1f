// Dynamic thresholding's statistic (diffusers' _threshold_sample): per batch item b, the quantile
// of |x0[b]| at rank `rank` by torch.quantile's linear interpolation between the order statistics
// lo and hi, clamped to [1, smax]. x0 is [B, n] f32 (the scheduler step's X0_ONLY pass wrote it);
// s is [B].
//
// One workgroup per item finds each order statistic exactly by radix select on the bit patterns
// of |x| (for non-negative floats, integer order is float order): four rounds of an 8-bit
// histogram, each keeping the elements whose higher bytes match the prefix found so far, so
// nothing is sorted and nothing is held beyond 256 counters.
#include "common"

struct U {
  n: u32,
  batch: u32,
  // floor and ceil of the rank q·(n − 1), its fraction, and sample_max_value
  lo: u32,
  hi: u32,
  frac: f32,
  smax: f32,
}

@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x0: array<f32>;
@group(0) @binding(2) var<storage, read_write> s: array<f32>;

const WG = 256u;
var<workgroup> hist: array<atomic<u32>, 256>;
var<workgroup> found_prefix: u32;
var<workgroup> found_rank: u32;

// The k-th smallest |x| (0-based) of item `base`, as float bits.
fn kth_abs_bits(base: u32, k: u32, lid: u32) -> u32 {
  var prefix = 0u;
  var mask = 0u;
  var rank = k;
  for (var round = 0u; round < 4u; round++) {
    let shift = 24u - 8u * round;
    atomicStore(&hist[lid], 0u);
    workgroupBarrier();
    for (var e = lid; e < u.n; e += WG) {
      let bits = bitcast<u32>(abs(x0[base + e]));
      if ((bits & mask) == prefix) {
        atomicAdd(&hist[(bits >> shift) & 255u], 1u);
      }
    }
    workgroupBarrier();
    if (lid == 0u) {
      // The bin holding the rank-th of the remaining elements; ranks below it drop out.
      var below = 0u;
      var bin = 0u;
      for (; bin < 255u; bin++) {
        let c = atomicLoad(&hist[bin]);
        if (below + c > rank) { break; }
        below += c;
      }
      found_prefix = prefix | (bin << shift);
      found_rank = rank - below;
    }
    workgroupBarrier();
    prefix = found_prefix;
    rank = found_rank;
    mask |= 255u << shift;
    // The next round clears the histogram only after everyone has read the result.
    workgroupBarrier();
  }
  return prefix;
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let b = flat_workgroup(wid, nwg);
  if (b >= u.batch) { return; }
  let base = b * u.n;
  let below = bitcast<f32>(kth_abs_bits(base, u.lo, lid));
  var above = below;
  if (u.hi != u.lo) {
    above = bitcast<f32>(kth_abs_bits(base, u.hi, lid));
  }
  if (lid == 0u) {
    // torch.lerp, which switches formula at weight 0.5 so both ends are exact.
    let d = above - below;
    let q = select(above - d * (1.0 - u.frac), below + u.frac * d, u.frac < 0.5);
    s[b] = clamp(q, 1.0, u.smax);
  }
}

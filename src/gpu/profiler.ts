// Per-kernel GPU time of a planned graph from timestamp queries. Each recorded dispatch gets its
// own compute pass with begin/end timestamps, so the times are those of dispatches run one after
// another with a pass boundary between them: close to, not exactly, what one pass of the whole
// graph takes (the bench reports both). Needs the 'timestamp-query' feature (src/gpu/device.ts
// asks for it where the adapter has it).
import type { Graph, OpCost } from '../graph/graph.ts';
import type { Runtime } from './runtime.ts';
import { GpuError, ProfilerError } from '../errors.ts';

export interface OpTiming {
  label: string;
  /** The shader the op ran (e.g. `gemm`). */
  kernel: string;
  /** What the op does, for grouping (see kernelKind). */
  kind: string;
  /** Median GPU time over the runs. */
  ms: number;
  cost?: OpCost;
}

export interface KindTiming {
  kind: string;
  ops: number;
  ms: number;
  /** Fraction of the profile's total. */
  share: number;
  /** From the ops' cost estimates; null where no op of this kind carries flops (or bytes). */
  gflops: number | null;
  gbps: number | null;
}

export interface GraphProfile {
  ops: OpTiming[];
  /** Sum of the ops' times. */
  totalMs: number;
  runs: number;
  /**
   * Largest common divisor of all raw timestamps, in ns: about 1 when they are exact, 100000 when
   * the implementation quantizes them to 100 µs (Chrome without developer features).
   */
  granularityNs: number;
}

/** Queries per query set: WebGPU caps a set at 4096. */
const MAX_QUERIES = 4096;

/**
 * Groups ops by what they compute: convolutions apart from other GEMMs, attention's GEMM path (its
 * per-head GEMMs and row softmax) with the flash kernel, then by shader.
 */
export function kernelKind(kernelKey: string): string {
  const shader = kernelKey.split(/[:|]/)[0] ?? kernelKey;
  if (shader === 'softmax_rows') return 'attention';
  if (shader === 'gemm') return /\bREDUCE=true\b/.test(kernelKey) ? 'split-K sum' : /\bA_IM2COL=true\b/.test(kernelKey) ? 'conv2d' : /\bHEADS=true\b/.test(kernelKey) ? 'attention' : 'gemm';
  return shader;
}

/** Times every op of a finalized graph over `runs` submits (after one untimed warm-up). */
export async function profileGraph(rt: Runtime, graph: Graph, runs = 3): Promise<GraphProfile> {
  if (!rt.gpu.features.has('timestamp-query')) throw new ProfilerError(`this adapter (${rt.gpu.adapterName}) has no 'timestamp-query' feature: per-kernel GPU times are not available`);
  if (!Number.isInteger(runs) || runs < 1) throw new ProfilerError(`runs must be a positive integer, got ${runs}`);
  const ops = graph.ops;
  if (ops.length === 0) throw new ProfilerError(`${graph.label}: no ops recorded (was finalize() called?)`);
  const device = rt.device;
  const perSet = MAX_QUERIES / 2;
  const sets: { set: GPUQuerySet; resolve: GPUBuffer; read: GPUBuffer; first: number; count: number }[] = [];
  for (let first = 0; first < ops.length; first += perSet) {
    const count = Math.min(perSet, ops.length - first);
    const bytes = count * 2 * 8;
    sets.push({
      set: device.createQuerySet({ type: 'timestamp', count: count * 2, label: `${graph.label}/profile` }),
      resolve: device.createBuffer({ size: bytes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC }),
      read: device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }),
      first,
      count,
    });
  }
  const times: number[][] = ops.map(() => []);
  let gcd = 0n;
  const bigGcd = (a: bigint, b: bigint): bigint => (b === 0n ? a : bigGcd(b, a % b));
  try {
    for (let r = 0; r < runs + 1; r++) {
      const enc = device.createCommandEncoder({ label: `${graph.label}/profile` });
      rt.watch(`profiling ${graph.label}`, () => {
        for (const s of sets) {
          for (let i = 0; i < s.count; i++) {
            const op = ops[s.first + i]!;
            const pass = enc.beginComputePass({ label: op.label, timestampWrites: { querySet: s.set, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
            pass.setPipeline(op.kernel.pipeline);
            pass.setBindGroup(0, op.bindGroup);
            pass.dispatchWorkgroups(...op.workgroups);
            pass.end();
          }
          enc.resolveQuerySet(s.set, 0, s.count * 2, s.resolve, 0);
          enc.copyBufferToBuffer(s.resolve, 0, s.read, 0, s.read.size);
        }
        device.queue.submit([enc.finish()]);
      });
      for (const s of sets) {
        const lost = rt.gpu.lost.then((m) => Promise.reject(new GpuError(m)));
        await Promise.race([s.read.mapAsync(GPUMapMode.READ), lost]);
        const stamps = new BigUint64Array(s.read.getMappedRange().slice(0));
        s.read.unmap();
        if (r === 0) continue;
        for (let i = 0; i < s.count; i++) {
          const begin = stamps[2 * i]!;
          const end = stamps[2 * i + 1]!;
          gcd = bigGcd(bigGcd(gcd, begin), end);
          // A quantizing implementation can report end < begin for a short pass; it took ~0.
          times[s.first + i]!.push(end > begin ? Number(end - begin) / 1e6 : 0);
        }
      }
    }
    await rt.assertHealthy();
  } finally {
    for (const s of sets) {
      s.set.destroy();
      s.resolve.destroy();
      s.read.destroy();
    }
  }
  const timings: OpTiming[] = ops.map((op, i) => ({
    label: op.label,
    kernel: op.kernel.key.split(':')[0]!,
    kind: kernelKind(op.kernel.key),
    ms: median(times[i]!),
    ...(op.cost ? { cost: op.cost } : {}),
  }));
  return { ops: timings, totalMs: timings.reduce((a, o) => a + o.ms, 0), runs, granularityNs: Number(gcd) };
}

/** Time per kind, largest first, with throughput from the ops' cost estimates. */
export function summarizeByKind(profile: GraphProfile): KindTiming[] {
  const byKind = new Map<string, { ops: number; ms: number; flops: number; flopMs: number; bytes: number; byteMs: number }>();
  for (const op of profile.ops) {
    const k = byKind.get(op.kind) ?? { ops: 0, ms: 0, flops: 0, flopMs: 0, bytes: 0, byteMs: 0 };
    k.ops++;
    k.ms += op.ms;
    // Throughput only over the ops that carry an estimate, so one op without one does not dilute it.
    if (op.cost?.flops !== undefined) {
      k.flops += op.cost.flops;
      k.flopMs += op.ms;
    }
    if (op.cost?.bytes !== undefined) {
      k.bytes += op.cost.bytes;
      k.byteMs += op.ms;
    }
    byKind.set(op.kind, k);
  }
  return [...byKind.entries()]
    .map(([kind, k]) => ({
      kind,
      ops: k.ops,
      ms: k.ms,
      share: profile.totalMs > 0 ? k.ms / profile.totalMs : 0,
      gflops: k.flopMs > 0 ? k.flops / (k.flopMs * 1e6) : null,
      gbps: k.byteMs > 0 ? k.bytes / (k.byteMs * 1e6) : null,
    }))
    .sort((a, b) => b.ms - a.ms);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

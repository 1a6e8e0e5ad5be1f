// Wall and pass GPU time of one recorded graph, shared by the Node and browser benches.
import type { Runtime } from '../../src/gpu/runtime.ts';
import type { Graph } from '../../src/graph/graph.ts';
import { GpuError } from '../../src/errors.ts';

export interface Timing {
  medianMs: number;
  minMs: number;
  runs: number;
  /** Median GPU time of the pass from timestamp queries; null without 'timestamp-query'. */
  gpuMedianMs: number | null;
  gpuMinMs: number | null;
}

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export function summarize(wall: number[], gpu: number[]): Timing {
  return {
    medianMs: median(wall),
    minMs: Math.min(...wall),
    runs: wall.length,
    gpuMedianMs: gpu.length ? median(gpu) : null,
    gpuMinMs: gpu.length ? Math.min(...gpu) : null,
  };
}

export async function done(rt: Runtime): Promise<void> {
  await Promise.race([rt.device.queue.onSubmittedWorkDone(), rt.gpu.lost.then((m) => Promise.reject(new GpuError(m)))]);
}

/** Times `repeat` submits of one recorded graph after `warmup` untimed ones. */
export async function timeGraph(rt: Runtime, g: Graph, repeat: number, warmup: number): Promise<Timing> {
  const device = rt.device;
  // Timestamps bracket the one compute pass, so they leave out submit and wake-up latency.
  const ts = rt.gpu.features.has('timestamp-query')
    ? {
        set: device.createQuerySet({ type: 'timestamp', count: 2 }),
        resolve: device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC }),
        read: device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }),
      }
    : null;
  const wall: number[] = [];
  const gpu: number[] = [];
  try {
    for (let r = 0; r < warmup + repeat; r++) {
      const t0 = performance.now();
      const enc = device.createCommandEncoder({ label: g.label });
      const pass = enc.beginComputePass({ label: g.label, timestampWrites: ts ? { querySet: ts.set, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } : undefined });
      g.encode(pass);
      pass.end();
      if (ts) {
        enc.resolveQuerySet(ts.set, 0, 2, ts.resolve, 0);
        enc.copyBufferToBuffer(ts.resolve, 0, ts.read, 0, 16);
      }
      device.queue.submit([enc.finish()]);
      await done(rt);
      const ms = performance.now() - t0;
      if (r < warmup) continue;
      wall.push(ms);
      if (ts) {
        await ts.read.mapAsync(GPUMapMode.READ);
        const [begin, end] = new BigUint64Array(ts.read.getMappedRange().slice(0));
        ts.read.unmap();
        // Some drivers leave both stamps at 0 (or quantize them away); such runs carry no GPU time.
        if (end! > begin!) gpu.push(Number(end! - begin!) / 1e6);
      }
    }
  } finally {
    ts?.set.destroy();
    ts?.resolve.destroy();
    ts?.read.destroy();
  }
  return summarize(wall, gpu);
}

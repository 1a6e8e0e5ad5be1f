// Per-kernel GPU time of one recorded graph: each dispatch in its own pass between two timestamps.
// Separate passes cost a little more than the one-pass step, so this shows shares, not the step.
import type { Runtime } from '../../src/gpu/runtime.ts';
import type { Graph } from '../../src/graph/graph.ts';

export interface KernelTotal {
  name: string;
  calls: number;
  ms: number;
}

export async function profileGraph(rt: Runtime, g: Graph): Promise<KernelTotal[]> {
  const device = rt.device;
  const n = g.ops.length * 2;
  const set = device.createQuerySet({ type: 'timestamp', count: n });
  const resolve = device.createBuffer({ size: n * 8, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ size: n * 8, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  try {
    const enc = device.createCommandEncoder();
    g.ops.forEach((op, i) => {
      const pass = enc.beginComputePass({ timestampWrites: { querySet: set, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
      pass.setPipeline(op.kernel.pipeline);
      pass.setBindGroup(0, op.bindGroup);
      pass.dispatchWorkgroups(...op.workgroups);
      pass.end();
    });
    enc.resolveQuerySet(set, 0, n, resolve, 0);
    enc.copyBufferToBuffer(resolve, 0, read, 0, n * 8);
    device.queue.submit([enc.finish()]);
    await read.mapAsync(GPUMapMode.READ);
    const ts = new BigUint64Array(read.getMappedRange().slice(0));
    read.unmap();
    const totals = new Map<string, KernelTotal>();
    g.ops.forEach((op, i) => {
      // The key names the variant (tile, epilogue), which is what a profile needs to tell apart.
      const k = totals.get(op.kernel.key) ?? { name: op.kernel.key, calls: 0, ms: 0 };
      k.calls++;
      k.ms += Number(ts[2 * i + 1]! - ts[2 * i]!) / 1e6;
      totals.set(op.kernel.key, k);
    });
    return [...totals.values()].sort((a, b) => b.ms - a.ms);
  } finally {
    set.destroy();
    resolve.destroy();
    read.destroy();
  }
}

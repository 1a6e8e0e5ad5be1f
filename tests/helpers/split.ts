// Reading back what chunked ops produce: a Split's parts reassembled into one NCHW f32 array.
import type { Runtime } from '../../src/gpu/runtime.ts';
import type { Graph } from '../../src/graph/graph.ts';
import type { Tensor } from '../../src/graph/tensor.ts';
import type { Split } from '../../src/models/channel_split.ts';

/** The parts (f32) of `s`, each [B, c_k, H, W], put back at their channels. */
export async function readSplit(rt: Runtime, s: Split): Promise<Float32Array> {
  const [B, C, H, W] = s.shape;
  const full = new Float32Array(B * C * H * W);
  for (let k = 0; k < s.parts.length; k++) {
    const c = s.parts[k]!.shape[1]!;
    const data = await rt.read(s.parts[k]!.buffer, B * c * H * W * 4);
    for (let b = 0; b < B; b++) full.set(data.subarray(b * c * H * W, (b + 1) * c * H * W), (b * C + s.starts[k]!) * H * W);
  }
  return full;
}

/** Runs the graph, reads every output (f32; a split reassembled), and destroys the graph. */
export async function runAndRead(rt: Runtime, g: Graph, outs: (Tensor | Split)[]): Promise<Float32Array[]> {
  g.finalize();
  g.submit();
  await rt.assertHealthy();
  const result: Float32Array[] = [];
  for (const o of outs) result.push('buffer' in o ? await rt.read(o.buffer, o.shape.reduce((a, b) => a * b, 1) * 4) : await readSplit(rt, o));
  g.destroy();
  return result;
}

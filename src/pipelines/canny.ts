// Canny edges on the GPU, as the canny ControlNets' control images are made: diffusers' examples
// run OpenCV's cv2.Canny(image, 100, 200) on the RGB image and stack the result into three
// channels. The gradient and suppression run once; hysteresis passes run in batches until one
// changes nothing (a readback of one flag per batch); the edges come back as white-on-black RGBA.
import type { Runtime } from '../gpu/runtime.ts';
import { Graph } from '../graph/graph.ts';
import type { RgbaPixels } from '../io/image_input.ts';
import { cannyBuffers, cannyGradient, cannyHysteresis, cannyOutput, cannySuppress, destroyCannyBuffers } from '../kernels/canny.ts';
import { GenerateOptionsError } from '../errors.ts';

export interface CannyOptions {
  /** cv2.Canny's threshold1 and threshold2 (default 100 and 200, as diffusers' ControlNet examples); floored, and swapped when low > high, as OpenCV does. */
  low?: number;
  high?: number;
}

/** Hysteresis passes recorded per submit (each pass extends every edge by at least one pixel). */
const PASSES = 8;

/** OpenCV's cv2.Canny(rgb, low, high) (aperture 3, L1 gradient) of `image`'s RGB (alpha ignored), as white edges on black. */
export async function cannyEdges(rt: Runtime, image: RgbaPixels, opts: CannyOptions = {}): Promise<RgbaPixels> {
  const { width, height, data } = image;
  if (data.length !== 4 * width * height) throw new GenerateOptionsError(`cannyEdges: a ${width}x${height} image needs ${4 * width * height} RGBA bytes, got ${data.length}`);
  let [low, high] = [opts.low ?? 100, opts.high ?? 200];
  if (!Number.isFinite(low) || !Number.isFinite(high)) throw new GenerateOptionsError(`cannyEdges: thresholds must be finite numbers, got ${low}, ${high}`);
  if (low > high) [low, high] = [high, low];
  const b = cannyBuffers(rt, width, height);
  const graphs: Graph[] = [];
  try {
    rt.device.queue.writeBuffer(b.image, 0, data.buffer, data.byteOffset, data.byteLength);
    // All three graphs planned first, so their pipelines are made at once (Runtime.compilePending).
    const first = new Graph(rt, 'canny');
    graphs.push(first);
    cannyGradient(first, 'canny-gradient', b);
    cannySuppress(first, 'canny-suppress', b, Math.floor(low), Math.floor(high));
    first.finalize();
    const pass = new Graph(rt, 'canny-hysteresis');
    graphs.push(pass);
    for (let i = 0; i < PASSES; i++) cannyHysteresis(pass, `canny-hysteresis-${i}`, b);
    pass.finalize();
    const last = new Graph(rt, 'canny-output');
    graphs.push(last);
    cannyOutput(last, 'canny-output', b);
    last.finalize();
    await rt.compilePending();
    first.submit('canny');
    await rt.assertHealthy();
    // A chain of n candidates needs at most n passes; the flag says when a batch added nothing.
    for (let i = 0; i * PASSES <= width * height; i++) {
      const enc = rt.device.createCommandEncoder({ label: 'canny-hysteresis' });
      enc.clearBuffer(b.changed);
      pass.record(enc);
      rt.watch('canny hysteresis', () => rt.device.queue.submit([enc.finish()]));
      const flag = await rt.read(b.changed, 4);
      if (new Uint32Array(flag.buffer, flag.byteOffset, 1)[0] === 0) break;
    }
    last.submit('canny output');
    await rt.assertHealthy();
    const out = await rt.read(b.out, 4 * width * height);
    return { width, height, data: new Uint8ClampedArray(out.buffer, out.byteOffset, 4 * width * height) };
  } finally {
    for (const g of graphs) g.destroy();
    destroyCannyBuffers(rt, b);
  }
}

// Canny edge detection (OpenCV's cv::Canny, aperture 3, L1 gradient) through shaders/canny.wgsl:
// the gradient, the suppression with both thresholds, one hysteresis pass, and the output, each a
// dispatch over the image's pixels. Images and the per-pixel state are u32 buffers the caller
// makes (cannyBuffers); src/pipelines/canny.ts runs the hysteresis passes until they converge.
import type { Runtime } from '../gpu/runtime.ts';
import type { Graph } from '../graph/graph.ts';
import { ShapeError } from '../errors.ts';

const TILE = 8;

/** The buffers one image needs: packed RGBA in and out, packed gradients, magnitudes, states, the changed flag. */
export interface CannyBuffers {
  width: number;
  height: number;
  image: GPUBuffer;
  grad: GPUBuffer;
  mag: GPUBuffer;
  state: GPUBuffer;
  changed: GPUBuffer;
  out: GPUBuffer;
}

export function cannyBuffers(rt: Runtime, width: number, height: number, label = 'canny'): CannyBuffers {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) throw new ShapeError(`${label}: image size ${width}x${height} is not positive whole pixels`);
  const bytes = 4 * width * height;
  if (bytes > rt.planLimits.binding) throw new ShapeError(`${label}: a ${width}x${height} image needs ${bytes}-byte buffers, over this device's binding limit ${rt.planLimits.binding}`);
  const b = (what: string) => rt.createBuffer(bytes, `${label}/${what}`);
  return { width, height, image: b('image'), grad: b('grad'), mag: b('mag'), state: b('state'), changed: rt.createBuffer(4, `${label}/changed`), out: b('out') };
}

export function destroyCannyBuffers(rt: Runtime, b: CannyBuffers): void {
  for (const x of [b.image, b.grad, b.mag, b.state, b.changed, b.out]) rt.destroyBuffer(x);
}

function run(g: Graph, label: string, variant: string, b: CannyBuffers, bind: Record<string, GPUBuffer>, low = 0, high = 0): void {
  const n = b.width * b.height;
  g.dispatch(label, { shader: 'canny', params: { [variant]: true } }, bind, { width: b.width, height: b.height, low, high }, [Math.ceil(b.width / TILE), Math.ceil(b.height / TILE)], { bytes: 16 * n });
}

/** Sobel gradients of b.image's RGB, the strongest channel's per pixel. */
export function cannyGradient(g: Graph, label: string, b: CannyBuffers): void {
  run(g, label, 'GRADIENT', b, { img: b.image, grad: b.grad, mag: b.mag });
}

/** Non-maximum suppression and both thresholds (integers: OpenCV floors them) into b.state. */
export function cannySuppress(g: Graph, label: string, b: CannyBuffers, low: number, high: number): void {
  if (!Number.isInteger(low) || !Number.isInteger(high) || low > high) throw new ShapeError(`${label}: thresholds ${low}, ${high} must be whole numbers, low <= high`);
  // Magnitudes are at most 2040 (|dx| + |dy| of 3x3 Sobel on bytes): thresholds past i32 are clamped.
  const clamp = (v: number) => Math.max(-1, Math.min(2 ** 31 - 1, v));
  run(g, label, 'SUPPRESS', b, { grad: b.grad, mag: b.mag, state: b.state }, clamp(low), clamp(high));
}

/** One hysteresis pass over b.state; sets b.changed when a candidate became an edge. */
export function cannyHysteresis(g: Graph, label: string, b: CannyBuffers): void {
  run(g, label, 'HYSTERESIS', b, { state: b.state, changed: b.changed });
}

/** b.state's edges as white RGBA pixels in b.out, the rest black. */
export function cannyOutput(g: Graph, label: string, b: CannyBuffers): void {
  run(g, label, 'OUTPUT', b, { state: b.state, out: b.out });
}

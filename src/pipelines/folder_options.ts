// How a pipeline folder is loaded: the models' precision, the weight variant to prefer, and
// download progress per weight file.
import type { FillProgress, WeightStore } from '../io/weights.ts';
import type { Runtime } from '../gpu/runtime.ts';
import type { ModelOptions } from '../models/precision.ts';
import { GpuMemoryError } from '../errors.ts';

const SETTLE_BYTES = 64 * 2 ** 20;
/** Bytes as MiB with one decimal, as the load and quantize messages print them. */
export const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

export interface FolderLoadOptions extends ModelOptions {
  /** Weight files of this variant first ('fp16'), then the plain ones (see openModelFrom). */
  variant?: string | null;
  /** Bytes of a weight file's tensors streamed so far, of all it holds; `file` is its path in the folder. */
  onProgress?: FillProgress;
  /**
   * GPU bytes the weights may take: more fails before any weight byte is downloaded. WebGPU does
   * not say how much memory an adapter has, so the caller says what its users' devices can spare.
   */
  maxGpuBytes?: number;
}

/**
 * The last step of a load: every model is built (shapes checked, GPU buffers made) before this,
 * so an allocation the device refuses fails here before a weight byte is downloaded; then each
 * store streams its files into the buffers. Returns the GPU bytes the weights take.
 */
export async function fillStores(rt: Runtime, stores: WeightStore[], opts: FolderLoadOptions, prefixes: string[]): Promise<number> {
  const weightBytes = stores.reduce((n, s) => n + s.gpuBytes, 0);
  if (opts.maxGpuBytes !== undefined && weightBytes > opts.maxGpuBytes) {
    throw new GpuMemoryError(`the model's weights need ${weightBytes} bytes (${mib(weightBytes)}) of GPU memory, over maxGpuBytes ${opts.maxGpuBytes} (${mib(opts.maxGpuBytes)}); no weight byte was downloaded`);
  }
  await rt.assertHealthy();
  // writeBuffer copies into staging that the device frees only as it runs the copies; without a
  // pause every so often, a browser's renderer and GPU process would both hold what was written.
  let unsettled = 0;
  const pace = async (bytes: number) => {
    unsettled += bytes;
    if (unsettled < SETTLE_BYTES) return;
    unsettled = 0;
    rt.device.queue.submit([]);
    await rt.queueDone();
  };
  for (const [i, store] of stores.entries()) {
    const prefix = prefixes[i] ? `${prefixes[i]}/` : '';
    await store.fill(opts.onProgress && ((loaded, total, file) => opts.onProgress!(loaded, total, prefix + file)), pace);
  }
  await rt.queueDone();
  return weightBytes;
}

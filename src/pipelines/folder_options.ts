// How a pipeline folder is loaded: the models' precision, the weight variant to prefer, and
// download progress per weight file.
import type { FillProgress, WeightStore } from '../io/weights.ts';
import type { Runtime } from '../gpu/runtime.ts';
import type { ModelOptions } from '../models/precision.ts';

export interface FolderLoadOptions extends ModelOptions {
  /** Weight files of this variant first ('fp16'), then the plain ones (see openModelFrom). */
  variant?: string | null;
  /** Bytes of a weight file's tensors streamed so far, of all it holds; `file` is its path in the folder. */
  onProgress?: FillProgress;
}

/**
 * The last step of a load: every model is built (shapes checked, GPU buffers made) before this,
 * so an allocation the device refuses fails here before a weight byte is downloaded; then each
 * store streams its files into the buffers.
 */
export async function fillStores(rt: Runtime, stores: WeightStore[], opts: FolderLoadOptions, prefixes: string[]): Promise<void> {
  await rt.assertHealthy();
  for (const [i, store] of stores.entries()) {
    const prefix = prefixes[i] ? `${prefixes[i]}/` : '';
    await store.fill(opts.onProgress && ((loaded, total, file) => opts.onProgress!(loaded, total, prefix + file)));
  }
}

// Messages between the demo page and its generation worker. Everything is structured-clone data;
// image pixels travel as transferred buffers.
import type { GenerateOptions, ModelDefaults, ModelKind, Precision, RgbaImage, WeightFormat } from '../src/index.ts';
import type { PresetName } from '../src/pipelines/presets.ts';
import type { LoraInfo } from '../src/models/lora.ts';

export type { LoraInfo };

export type ToWorker =
  /**
   * url: a URL, or a Hub repository (hf:owner/name[@revision]); preset: absent to detect, null for
   * none; controlnet: ControlNet sources (URLs or hf:) to load with the model; weights: the
   * U-Net's weights quantized at load.
   */
  | { type: 'load'; url: string; precision: Precision; weights?: WeightFormat; preset?: PresetName | null; controlnet?: string[] }
  | { type: 'generate'; options: Omit<GenerateOptions, 'signal' | 'onStep'> }
  | { type: 'cancel' }
  | AdapterRequest;

/**
 * LoRA and textual inversion changes to the loaded model (text-to-image models only). Files are
 * read in the page and their bytes transferred. Each request is answered by one 'adapter-done'
 * with its id. The library orders them with generations: a change waits for the runs already
 * started, and a run asked for later sees it whole.
 */
export type AdapterRequest = { id: number } & (
  /** Merges a LoRA file under `name` at `scale`. */
  | { type: 'lora-load'; name: string; bytes: ArrayBuffer; scale: number }
  /** New scales for loaded LoRAs, by name (the difference is merged, nothing is read again). */
  | { type: 'lora-scales'; scales: Record<string, number> }
  | { type: 'lora-unload'; name: string }
  /** Adds an embedding; `token` empty: the file's own token, else (A1111's files) the file's name. */
  | { type: 'embedding-load'; file: string; bytes: ArrayBuffer; token: string }
);

export interface ModelInfo {
  kind: ModelKind;
  classNames: string[] | null;
  numClasses: number | null;
  adapterName: string;
  precision: string;
  defaults: ModelDefaults;
  imageSize: readonly [number, number];
  /** The few-step preset whose defaults the model took, or null. */
  preset: PresetName | null;
  /** Files read from the Cache API instead of the network during this load. */
  cacheHits: string[];
  /** GPU bytes the weights take (Model.weightBytes). */
  weightBytes: number;
  /** ControlNets loaded with the model (each generation needs a control image). */
  controlnets: number;
}

/** A file the browser could not keep (the library's StorageWarning, its error as text). */
export interface StorageWarningInfo {
  file: string;
  url: string;
  bytesNeeded: number | null;
  usage: number | null;
  quota: number | null;
  /** The StorageError's message: what failed, and the Cache API's own error. */
  message: string;
}

export type FromWorker =
  /** Per file: bytes of `file` delivered so far, of `total` (0: unknown). */
  | { type: 'progress'; loaded: number; total: number; file: string }
  /** `file` is read from browser storage, not the network. */
  | { type: 'cache-hit'; file: string }
  /** A file that could not be stored; the load goes on from the network. */
  | { type: 'storage-warning'; warning: StorageWarningInfo }
  | { type: 'loaded'; info: ModelInfo }
  /** Shaders about to be compiled for a stage (the library's CompileEvent): a first run's wait before step 1. */
  | { type: 'compile'; stage: string; pipelines: number }
  /** One denoising step of `total`, the steps asked for (the library's StepEvent). */
  | { type: 'step'; index: number; total: number; timestep: number; ms: number; preview?: RgbaImage }
  /** Images (and previews) come laid out as the page shows them: gridColumns(count) per row. */
  | { type: 'done'; image: RgbaImage; steps: number; stepMs: number[]; totalMs: number; seed: number }
  | { type: 'cancelled' }
  | { type: 'error'; name: string; message: string }
  /**
   * An AdapterRequest finished: the LoRAs merged now (whether it worked or not), the tokens an
   * embedding added, or the error (LoraError, TokenizerError, …) that left the model as it was.
   */
  | { type: 'adapter-done'; id: number; loras: LoraInfo[]; tokens?: string[]; error?: { name: string; message: string } };

// Messages between the demo page and its generation worker. Everything is structured-clone data;
// image pixels travel as transferred buffers.
import type { GenerateOptions, ModelDefaults, ModelKind, Precision, RgbaImage } from '../src/index.ts';
import type { PresetName } from '../src/pipelines/presets.ts';

export type ToWorker =
  /** url: a URL, or a Hub repository (hf:owner/name[@revision]); preset: absent to detect, null for none. */
  | { type: 'load'; url: string; precision: Precision; preset?: PresetName | null }
  | { type: 'generate'; options: Omit<GenerateOptions, 'signal' | 'onStep'> }
  | { type: 'cancel' };

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
}

export type FromWorker =
  | { type: 'progress'; loaded: number; total: number; file: string }
  | { type: 'loaded'; info: ModelInfo }
  /** One denoising step of `total`, the steps asked for (the library's StepEvent). */
  | { type: 'step'; index: number; total: number; timestep: number; ms: number; preview?: RgbaImage }
  /** Images (and previews) come laid out as the page shows them: gridColumns(count) per row. */
  | { type: 'done'; image: RgbaImage; steps: number; stepMs: number[]; totalMs: number; seed: number }
  | { type: 'cancelled' }
  | { type: 'error'; name: string; message: string };

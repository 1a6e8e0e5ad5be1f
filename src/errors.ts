// Every error Fresco raises on purpose, in one place and free of imports, so any layer (and a
// caller's catch) can name them. Each has an explicit `name`: class names do not survive minifiers.

/** The base of Fresco's own errors: `instanceof FrescoError` separates them from bugs. */
export class FrescoError extends Error {
  override name = 'FrescoError';
}

// ---------------------------------------------------------------- files and folders
export type SafetensorsErrorCode =
  | 'too-small'
  | 'header-length'
  | 'header-json'
  | 'header-not-object'
  | 'bad-entry'
  | 'unknown-dtype'
  | 'size-mismatch'
  | 'out-of-range'
  | 'overlap'
  | 'bad-metadata'
  | 'bad-dtype';

/** A .safetensors file that is not well formed; `code` says how. */
export class SafetensorsError extends FrescoError {
  override name = 'SafetensorsError';
  constructor(
    readonly code: SafetensorsErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export type WeightErrorCode = 'missing' | 'shape' | 'unused' | 'duplicate' | 'not-filled';

/** A weight a model needs that is missing or misshapen, or one it never used. */
export class WeightError extends FrescoError {
  override name = 'WeightError';
  constructor(
    readonly code: WeightErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export type ModelFolderErrorCode = 'missing' | 'bad-json';

/** A model folder without a file it needs, or with one that is not valid JSON. */
export class ModelFolderError extends FrescoError {
  override name = 'ModelFolderError';
  constructor(
    readonly code: ModelFolderErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export type LoraErrorCode = 'format' | 'shape' | 'no-match' | 'name' | 'scale' | 'unfused' | 'quantized';

/** A LoRA file Fresco cannot apply to this model: its form, a shape, keys matching nothing; a bad adapter name or scale; or an unfused adapter on a layer that cannot take one ('unfused'); or a fused LoRA on a quantized weight ('quantized'). */
export class LoraError extends FrescoError {
  override name = 'LoraError';
  constructor(
    readonly code: LoraErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** A URL source that could not be fetched. */
export class DownloadError extends FrescoError {
  override name = 'DownloadError';
}

/** tokenizer files (vocab.json, merges.txt, tokenizer_config.json) that cannot be used. */
export class TokenizerError extends FrescoError {
  override name = 'TokenizerError';
}

// ---------------------------------------------------------------- configs
/** A model config option or value Fresco does not support, or that contradicts another. */
export class ConfigError extends FrescoError {
  override name = 'ConfigError';
}

/** A scheduler config (or a step count) the chosen scheduler cannot run. */
export class SchedulerConfigError extends FrescoError {
  override name = 'SchedulerConfigError';
}

/** f16 asked for on a device without shader-f16. */
export class PrecisionError extends FrescoError {
  override name = 'PrecisionError';
}

// ---------------------------------------------------------------- kernels and the GPU
/** Tensors whose shapes do not fit an op. */
export class ShapeError extends FrescoError {
  override name = 'ShapeError';
}

/** A tensor of the wrong element type for an op. */
export class DTypeError extends FrescoError {
  override name = 'DTypeError';
}

/** No WebGPU adapter: the message says what to install. */
export class NoAdapterError extends FrescoError {
  override name = 'NoAdapterError';
  constructor(detail: string) {
    super(
      `No WebGPU adapter found. ${detail}\n` +
        'Install a GPU driver with Vulkan support, or a CPU Vulkan driver: on Debian/Ubuntu ' +
        '`apt install chromium libvulkan1` (SwiftShader) or Mesa >= 23 lavapipe (`mesa-vulkan-drivers`). ' +
        'In a browser, use a recent Chrome/Edge (or start Chromium with --enable-unsafe-webgpu).',
    );
  }
}

/** The device reported an error, ran out of memory or was lost. */
export class GpuError extends FrescoError {
  override name = 'GpuError';
}

/** A planned tensor or binding larger than the plan's limits allow (see planGraph in graph/graph.ts). */
export class PlanLimitError extends GpuError {
  override name = 'PlanLimitError';
}

/** A model whose weights need more GPU memory than the caller allows (LoadModelOptions.maxGpuBytes). */
export class GpuMemoryError extends GpuError {
  override name = 'GpuMemoryError';
}

/** Timestamp profiling asked for where the device cannot give it. */
export class ProfilerError extends FrescoError {
  override name = 'ProfilerError';
}

// ---------------------------------------------------------------- running
/** A generate() option that does not fit the model (a prompt for a class model, an unknown class). */
export class GenerateOptionsError extends FrescoError {
  override name = 'GenerateOptionsError';
}

/** A generation stopped through its AbortSignal. */
export class CancelledError extends FrescoError {
  override name = 'CancelledError';
  constructor() {
    super('generation cancelled');
  }
}

/** A command-line flag that is missing, malformed or does not fit the model. */
export class UsageError extends FrescoError {
  override name = 'UsageError';
}

/** A model source that is malformed: an `hf:` id that is not hf:owner/name[@revision][/subfolder], a bad revision or Hub endpoint. */
export class ModelSourceError extends FrescoError {
  override name = 'ModelSourceError';
}

/**
 * Browser storage (the Cache API) that could not keep a model file: over quota, or a write that
 * failed. A load never throws it (it goes on from the network); onStorageWarning is given it.
 */
export class StorageError extends FrescoError {
  override name = 'StorageError';
}

export type TorchFileErrorCode = 'legacy' | 'not-torch' | 'zip' | 'compressed' | 'pickle' | 'global' | 'tensor';

/**
 * A PyTorch torch.save file (.pt/.bin/.ckpt) Fresco will not read: the legacy pre-1.6 format, a broken zip, a
 * compression it cannot undo, a malformed pickle, a Python global outside the whitelist (`global`: code, never
 * run), or a tensor it cannot rebuild (non-contiguous, out of its storage).
 */
export class TorchFileError extends FrescoError {
  override name = 'TorchFileError';
  constructor(
    readonly code: TorchFileErrorCode,
    message: string,
  ) {
    super(message);
  }
}

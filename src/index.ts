// Fresco's public API, the same in a page, a Web Worker and Node: loadModel(url | folder) and
// generate(model, options). Nothing here imports Node modules at load time (Node-only paths are
// dynamic imports behind checks), so bundlers can ship it to browsers; PNG files are in 'fresco/node'.
export { loadModel, inspectModel, generate, randomSeed, cannyEdges, Model, type LoadModelOptions, type GenerateOptions, type GenerateResult, type StepEvent, type CompileEvent, type ModelKind, type ModelDefaults, type ModelInfo, type RgbaPixels } from './api.ts';
export { latentPreview, imageToRgba, parsePreviewFactors, SD_LATENT_RGB, type RgbaImage, type PreviewMode, type PreviewFactors } from './preview.ts';
export { urlFolderReader, DEFAULT_CACHE_NAME, type UrlReaderOptions, type UrlFolderReader } from './io/url_reader.ts';
export { listStoredModels, deleteStoredModel, clearStoredModels, type StorageWarning, type StoredModel, type StoredFile } from './io/model_cache.ts';
export type { FolderReader } from './io/model_folder.ts';
export { getGpu, createGpu, type GpuContext, type DeviceOptions } from './gpu/device.ts';
export { Runtime } from './gpu/runtime.ts';
export { loadLdmFrom, type LdmModel } from './pipelines/ldm_folder.ts';
export { loadSdFrom, type SdModel, type SdxlParts } from './pipelines/sd_folder.ts';
export { generateClassConditional, type ClassConditionalOptions, type GenerationResult, type StepInfo } from './pipelines/class_conditional.ts';
export { generateFromText, type TextToImageOptions, type Size } from './pipelines/text_to_image.ts';
export { tensorToImage, type Image } from './io/image.ts';
export type { Precision, WeightFormat } from './models/precision.ts';
export { SCHEDULER_NAMES, type SchedulerName } from './schedulers/scheduler.ts';
// Every error Fresco raises on purpose (FrescoError is their base), for callers' catch blocks.
export { resolveHubSource, type WeightVariant } from './io/hub.ts';
export { PRESETS, type PresetName } from './pipelines/presets.ts';
export * from './errors.ts';

// Fresco's public API. The browser-friendly loadModel/generate facade comes with the library
// work (model loading by URL); today models load from a local folder in Node.
export { getGpu, createGpu, NoAdapterError, type GpuContext, type DeviceOptions } from './gpu/device.ts';
export { Runtime, GpuError } from './gpu/runtime.ts';
export { loadLdmFolder, type LdmModel } from './pipelines/ldm_folder.ts';
export { generateClassConditional, CancelledError, type ClassConditionalOptions, type GenerationResult, type StepInfo } from './pipelines/class_conditional.ts';
export { tensorToImage, encodePng } from './io/png.ts';
export { ConfigError } from './models/loader.ts';
export { SafetensorsError } from './io/safetensors.ts';
export { WeightError } from './io/weights.ts';

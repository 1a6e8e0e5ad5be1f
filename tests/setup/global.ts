// @ts-expect-error plain ESM script without types
import { bundleShaders } from '../../scripts/bundle-shaders.mjs';
import { getGpu } from '../../src/gpu/device.ts';

export default async function setup(): Promise<void> {
  bundleShaders();
  // Probe once in the main process: when it falls back to a CPU Vulkan driver it sets
  // VK_ICD_FILENAMES for real (setenv), and the test worker threads inherit that environment.
  const gpu = await getGpu();
  console.log(`tests run on: ${gpu.adapterName}`);

}

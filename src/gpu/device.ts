// One way to get a GPUDevice in a browser (navigator.gpu) and in Node (the `webgpu` package, Dawn).
// On a machine without a GPU driver, Node retries with a CPU Vulkan driver that is already on the
// system, so that nobody has to set VK_ICD_FILENAMES by hand.
import { NoAdapterError } from '../errors.ts';

export interface GpuContext {
  device: GPUDevice;
  adapterName: string;
  features: Set<string>;
  /** WGSL language features of the implementation (navigator.gpu.wgslLanguageFeatures), e.g. subgroup_id. */
  wgslFeatures: Set<string>;
  limits: GPUSupportedLimits;
  /** Resolves with a message when the device is lost; checked by long runs. */
  lost: Promise<string>;
  isLost(): boolean;
}

/** CPU Vulkan drivers we know how to find, best first. */
const CPU_ICDS = [
  '/usr/share/vulkan/icd.d/lvp_icd.json',
  '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json',
  '/usr/share/vulkan/icd.d/lvp_icd.aarch64.json',
  '/usr/lib/chromium/vk_swiftshader_icd.json',
];

function isNode(): boolean {
  // Node 21+ has a global navigator too, but without gpu.
  const nav = (globalThis as { navigator?: Navigator }).navigator;
  return typeof process !== 'undefined' && !!process.versions?.node && !nav?.gpu;
}

const nodeInstances: GPU[] = [];

async function nodeAdapter(powerPreference: GPUPowerPreference): Promise<{ adapter: GPUAdapter; gpu: GPU }> {
  const webgpu = await import('webgpu');
  Object.assign(globalThis, webgpu.globals);
  const fs = await import('node:fs');
  const tried: string[] = [];
  const attempt = async (): Promise<GPUAdapter | null> => {
    // Dawn options for benchmarks, e.g. disable-dawn-features=timestamp_quantization (exact timestamps).
    const gpu = webgpu.create(process.env.FRESCO_DAWN_FLAGS?.split(/\s+/).filter(Boolean) ?? []);
    // The Dawn instance must outlive every device made from it: once it is garbage-collected,
    // its event processing goes away under the devices and the process crashes.
    nodeInstances.push(gpu);
    return gpu.requestAdapter({ powerPreference });
  };
  let adapter = await attempt();
  tried.push(`default Vulkan drivers${process.env.VK_ICD_FILENAMES ? ` (VK_ICD_FILENAMES=${process.env.VK_ICD_FILENAMES})` : ''}`);
  if (!adapter && !process.env.VK_ICD_FILENAMES) {
    for (const icd of CPU_ICDS) {
      if (!fs.existsSync(icd)) continue;
      process.env.VK_ICD_FILENAMES = icd;
      adapter = await attempt();
      tried.push(icd);
      if (adapter) {
        console.error(`fresco: no GPU adapter with the default Vulkan drivers; using the CPU driver ${icd}`);
        break;
      }
      delete process.env.VK_ICD_FILENAMES;
    }
  }
  if (!adapter) throw new NoAdapterError(`Tried: ${tried.join('; ')}.`);
  return { adapter, gpu: nodeInstances[nodeInstances.length - 1]! };
}

function describe(adapter: GPUAdapter): string {
  const i = adapter.info;
  const parts = [i.vendor, i.architecture, i.device, i.description].filter((s) => s && s.length > 0);
  return [...new Set(parts)].join(' / ') || 'unknown adapter';
}

export interface DeviceOptions {
  powerPreference?: GPUPowerPreference;
  /** createGpu: ask for shader-f16 when present (the f16 path). getGpu's device always does. */
  wantF16?: boolean;
}

let shared: Promise<GpuContext> | null = null;

/**
 * The process-wide device; created on first use, with shader-f16 wherever the adapter has it: it
 * serves every model and precision loaded later, so the first caller's precision must not decide
 * for the rest (an f32 load first once left every later 'auto' load, and a test run's f16 cases, without it).
 */
export function getGpu(options: Omit<DeviceOptions, 'wantF16'> = {}): Promise<GpuContext> {
  shared ??= createGpu({ ...options, wantF16: true }).catch((e) => {
    shared = null;
    throw e;
  });
  return shared;
}

export async function createGpu(options: DeviceOptions = {}): Promise<GpuContext> {
  const powerPreference = options.powerPreference ?? 'high-performance';
  let adapter: GPUAdapter | null;
  let gpu: GPU;
  if (isNode()) {
    ({ adapter, gpu } = await nodeAdapter(powerPreference));
  } else {
    const nav = (globalThis as { navigator?: Navigator }).navigator?.gpu;
    if (!nav) throw new NoAdapterError('This browser has no navigator.gpu (WebGPU is missing or disabled).');
    gpu = nav;
    adapter = await gpu.requestAdapter({ powerPreference });
    if (!adapter) throw new NoAdapterError('navigator.gpu.requestAdapter() returned null.');
  }
  const wgslFeatures = new Set<string>([...(gpu.wgslLanguageFeatures ?? [])].map(String));
  const requiredFeatures: GPUFeatureName[] = [];
  // subgroups: the norms' and softmax's workgroup reductions (shaders/wg_reduce.wgsl).
  for (const f of ['timestamp-query', 'subgroups', ...(options.wantF16 ? ['shader-f16'] : [])] as GPUFeatureName[]) {
    if (adapter.features.has(f)) requiredFeatures.push(f);
  }
  // Ask for the adapter's real buffer limits: the plan still keeps every binding under the
  // default 128 MiB, larger limits only help where an adapter has them.
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures,
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    },
  });
  let lostMessage: string | null = null;
  const lost = device.lost.then((info) => {
    lostMessage = `GPU device lost (${info.reason}): ${info.message}`;
    return lostMessage;
  });
  return {
    device,
    adapterName: describe(adapter),
    features: new Set([...device.features].map(String)),
    wgslFeatures,
    limits: device.limits,
    lost,
    isLost: () => lostMessage !== null,
  };
}

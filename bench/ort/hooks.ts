// Counts what each engine asks of WebGPU in one U-Net step: submits, passes, dispatches per
// pipeline, and what each used shader does (workgroup memory, vec4 loads, subgroups). ORT builds
// its WGSL inside wasm, so wrapping the WebGPU prototypes is the one way to see its kernel choices.
export interface ShaderUse {
  label: string;
  dispatches: number;
  workgroups: number;
  workgroupSize: string;
  workgroupMemory: boolean;
  vec4: boolean;
  subgroups: boolean;
  bytes: number;
  /** The WGSL, for GEMM-like kernels only (to read tile sizes). */
  code?: string;
}
export interface StepCounts {
  submits: number;
  passes: number;
  dispatches: number;
  shaders: ShaderUse[];
}

const moduleCode = new WeakMap<GPUShaderModule, { code: string; label: string }>();
const pipelineModule = new WeakMap<GPUComputePipeline, { code: string; label: string }>();
const current = new WeakMap<GPUComputePassEncoder, GPUComputePipeline>();
let counting: { submits: number; passes: number; uses: Map<string, ShaderUse> } | null = null;

export function installHooks(): void {
  const dev = GPUDevice.prototype;
  const createShaderModule = dev.createShaderModule;
  dev.createShaderModule = function (d) {
    const m = createShaderModule.call(this, d);
    moduleCode.set(m, { code: d.code, label: d.label ?? '' });
    return m;
  };
  const wrapPipeline = (p: GPUComputePipeline, d: GPUComputePipelineDescriptor) => {
    const m = moduleCode.get(d.compute.module);
    if (m) pipelineModule.set(p, { code: m.code, label: d.label || m.label });
    return p;
  };
  const createComputePipeline = dev.createComputePipeline;
  dev.createComputePipeline = function (d) {
    return wrapPipeline(createComputePipeline.call(this, d), d);
  };
  const createComputePipelineAsync = dev.createComputePipelineAsync;
  dev.createComputePipelineAsync = async function (d) {
    return wrapPipeline(await createComputePipelineAsync.call(this, d), d);
  };
  const submit = GPUQueue.prototype.submit;
  GPUQueue.prototype.submit = function (b) {
    if (counting) counting.submits++;
    return submit.call(this, b);
  };
  const beginComputePass = GPUCommandEncoder.prototype.beginComputePass;
  GPUCommandEncoder.prototype.beginComputePass = function (d) {
    if (counting) counting.passes++;
    return beginComputePass.call(this, d);
  };
  const pass = GPUComputePassEncoder.prototype;
  const setPipeline = pass.setPipeline;
  pass.setPipeline = function (p) {
    current.set(this, p);
    return setPipeline.call(this, p);
  };
  const dispatchWorkgroups = pass.dispatchWorkgroups;
  pass.dispatchWorkgroups = function (x, y = 1, z = 1) {
    const p = current.get(this);
    if (counting && p) {
      const m = pipelineModule.get(p) ?? { code: '', label: '(unknown)' };
      const key = `${m.label}#${m.code.length}`;
      let u = counting.uses.get(key);
      if (!u) {
        const ws = m.code.match(/@workgroup_size\(([^)]*)\)/)?.[1] ?? '?';
        u = {
          label: m.label,
          dispatches: 0,
          workgroups: 0,
          workgroupSize: ws.replace(/\s+/g, ''),
          workgroupMemory: /var<workgroup>/.test(m.code),
          vec4: /array<\s*vec4/.test(m.code),
          subgroups: /subgroup/.test(m.code),
          bytes: m.code.length,
          ...(/matmul|conv|gemm/i.test(m.label) ? { code: m.code } : {}),
        };
        counting.uses.set(key, u);
      }
      u.dispatches++;
      u.workgroups += x * y * z;
    }
    return dispatchWorkgroups.call(this, x, y, z);
  };
}

/** Counts the GPU work `fn` records. */
export async function countStep(fn: () => Promise<unknown>): Promise<StepCounts> {
  counting = { submits: 0, passes: 0, uses: new Map() };
  try {
    await fn();
    const shaders = [...counting.uses.values()].sort((a, b) => b.dispatches - a.dispatches);
    return { submits: counting.submits, passes: counting.passes, dispatches: shaders.reduce((s, u) => s + u.dispatches, 0), shaders };
  } finally {
    counting = null;
  }
}

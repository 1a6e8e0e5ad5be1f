// The GPU runtime: compiled kernels cached by a key derived from all of their template
// parameters, buffers, uploads and readbacks. Bind group layouts come from reflecting the
// generated WGSL (wgsl_reflect), so no kernel writes its layout by hand and a variant that
// drops a binding cannot get out of step with its TypeScript side.
import { WgslReflect } from 'wgsl_reflect/wgsl_reflect.module.js';
import { generatedShaderSources } from '../kernels/generated_shaders.ts';
import { shaderSources } from '../kernels/shaders.gen.ts';
import type { GpuContext } from './device.ts';
import { expandTemplate, type TemplateParams } from './template.ts';
import { GpuError } from '../errors.ts';

export interface KernelSpec {
  /** Shader file in shaders/ (without .wgsl). */
  shader: string;
  /** Compile-time choices only: tile sizes, fused epilogues, modes. Never shapes. */
  params?: TemplateParams;
  /** Entry point; defaults to `main`. */
  entry?: string;
}

export interface BindingInfo {
  name: string;
  binding: number;
  kind: 'uniform' | 'read-only-storage' | 'storage';
}

export interface UniformMember {
  offset: number;
  type: 'u32' | 'i32' | 'f32';
}

export interface CompiledKernel {
  key: string;
  label: string;
  /**
   * Made at first use, or before it by Runtime.compilePending(), which creates every pipeline
   * still to be made at once (createComputePipelineAsync: a browser compiles those in parallel).
   */
  readonly pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  bindings: BindingInfo[];
  /** The struct behind the one `var<uniform>` binding, if any. */
  uniform: { name: string; size: number; members: Map<string, UniformMember> } | null;
  workgroupSize: [number, number, number];
  code: string;
}

export function kernelKey(spec: KernelSpec): string {
  const params = spec.params ?? {};
  const sorted = Object.keys(params)
    .sort()
    .filter((k) => params[k] !== undefined)
    .map((k) => `${k}=${String(params[k])}`);
  return `${spec.shader}:${spec.entry ?? 'main'}|${sorted.join(',')}`;
}

export function generateWgsl(spec: KernelSpec): string {
  const resolve = (name: string): string => {
    const key = name.replace(/\.wgsl$/, '');
    const src = shaderSources[key] ?? generatedShaderSources[key];
    if (src === undefined) throw new Error(`Unknown shader '${name}' (no shaders/${name}.wgsl, nor a generated one)`);
    return src;
  };
  return expandTemplate(resolve(spec.shader), spec.params ?? {}, resolve, spec.shader);
}

/** The buffer limits a plan keeps to: a larger tensor is split into parts (see models/channel_split.ts). */
export interface PlanLimits {
  /** Largest storage binding, bytes. */
  binding: number;
  /** Largest buffer, bytes. */
  buffer: number;
}

/**
 * WebGPU's default maxStorageBufferBindingSize and maxBufferSize. Plans keep to these even where
 * an adapter offers more, so a model that runs here runs on every WebGPU device, with the same
 * plan (and so the same rounding) everywhere.
 */
export const DEFAULT_PLAN_LIMITS: Readonly<PlanLimits> = { binding: 128 * 1024 * 1024, buffer: 256 * 1024 * 1024 };

/**
 * Runtime.attentionGemmMinHead's default. On both CPU adapters the GEMM path ran d128 at 1024
 * tokens 3.2x (lavapipe) and 3.9x (SwiftShader) faster than the flash kernel, d512 4.4x and 7.1x;
 * below d128 it wins only some shapes (SD's d40 self-attention, not its cross-attention or small
 * latents), and SD's 4096-token d40 self-attention would need 1 GiB of scores in chunks, so small
 * heads stay on flash (bench/README.md, "Attention for large heads"; unmeasured on a GPU yet) but
 * for long key sets on CPU adapters (Runtime.attentionGemmMinKeys).
 */
export const ATTENTION_GEMM_MIN_HEAD = 128;

/** Every runtime made in this realm, so that settleAllRuntimes() can reach them. */
const liveRuntimes = new Set<Runtime>();

/**
 * Waits until no runtime has a GPU promise outstanding. dawn.node aborts the whole process when a
 * worker thread is terminated while one of its promises (an error scope, a map) is unresolved, so
 * test workers call this before they end.
 */
export async function settleAllRuntimes(): Promise<void> {
  await Promise.all([...liveRuntimes].map((rt) => rt.settle()));
}

export type GemmFeed = 'direct' | 'tiled';
export type GemmMath = 'f32' | 'f16';

/** Software rasterizers that run compute shaders on the CPU (Mesa's llvmpipe/lavapipe, SwiftShader). */
export function isCpuAdapter(adapterName: string): boolean {
  return /llvmpipe|lavapipe|swiftshader|softpipe/i.test(adapterName);
}

/** Whether the device can run shaders/wg_reduce.wgsl's subgroup form. */
export function canReduceBySubgroup(gpu: Pick<GpuContext, 'features' | 'wgslFeatures'>): boolean {
  return gpu.features.has('subgroups') && gpu.wgslFeatures.has('subgroup_id');
}

/** Runtime.winogradMinWork's default. */
export const WINOGRAD_MIN_WORK = 1024;

export class Runtime {
  readonly device: GPUDevice;
  private readonly cache = new Map<string, CompiledKernel>();
  /** Pipelines made so far, by kernel key. */
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  /**
   * Kernels whose pipeline is not made yet, with (once compilePending started it) its creation,
   * or whether it failed there: compilePending reports a failure once and leaves the kernel to
   * a recording, whose synchronous creation reports it again through its error scope.
   */
  private readonly unmade = new Map<
    string,
    { descriptor: GPUComputePipelineDescriptor; module: GPUShaderModule; moduleError: Promise<string | null>; creating?: Promise<string | null>; failed?: true }
  >();
  /** Bytes currently held in buffers this runtime created (for peak-memory reports). */
  liveBytes = 0;
  private pendingErrors: Promise<string | null>[] = [];
  peakBytes = 0;
  debugDump = false;
  /** What graphs plan against; tests lower it to exercise splitting on small shapes. */
  planLimits: PlanLimits;
  /** The device's own limits, which planGraph falls back to for a graph the plan limits cannot hold. */
  readonly deviceLimits: PlanLimits;
  /** While planGraph's first attempt runs: how to undo what it made outside its graph (weight slices). */
  private planUndo: (() => void)[] | null = null;
  /**
   * How the GEMM core feeds its registers (shaders/gemm.wgsl): 'tiled' through workgroup memory
   * on GPUs, 'direct' global reads on CPU adapters, where workgroup memory is emulated. Benches
   * and tests set it to compare or check both.
   */
  gemmFeed: GemmFeed;
  /**
   * With the tiled feed: size tiles and split K to each GEMM (src/kernels/gemm.ts gemmTiling), so
   * small and long-K GEMMs fill a GPU. False keeps 128 x 128 tiles over all of K (benches and tests
   * compare the two).
   */
  gemmAdapt = true;
  /**
   * Group norm statistics of large groups in parallel parts, merged after (src/kernels/group_norm.ts
   * groupNormParts): on GPUs, where one workgroup per group leaves most of the chip idle. CPU
   * adapters keep one workgroup per group (their few threads are busy either way).
   */
  splitNormStats: boolean;
  /**
   * Group norm in one dispatch, a workgroup per group taking its statistics and writing its
   * output (FUSED in shaders/group_norm.wgsl), where statistics are not split: on CPU adapters
   * (fashion-ldm's 46 norms per step on lavapipe 7.7 -> 5.3 ms; SwiftShader unchanged). GPUs keep
   * the statistics pass and the fully parallel apply pass, whose parallelism they need.
   */
  fuseGroupNorm: boolean;
  /**
   * Most groups of four keys the flash attention kernel scores per step (src/kernels/attention.ts
   * attentionKeyGroups): 4 on CPU adapters, where each q value and accumulator lives in memory and
   * is read once per step (d40 1.37x faster on lavapipe, 1.49x on SwiftShader than 1), 1 on GPUs,
   * where the wider steps are unmeasured and cost registers.
   */
  attentionKeyGroups: number;
  /**
   * The flash attention kernel's head-dim loops to the constant head dim (UNROLL_D in
   * shaders/attention.wgsl): on GPUs, whose compilers unroll them and keep each thread's query row
   * and accumulator in registers. CPU adapters loop to a uniform instead: lavapipe's LLVM unrolled
   * the constant loops into code that took up to 99 s to compile per kernel (d32 at 64 keys; 1.6 s
   * this way), at the same speed on both CPU adapters (bench/README.md, "Flash attention's compile time").
   */
  attentionUnrollHead: boolean;
  /**
   * Floats per key tile of the flash attention kernel (keys·head dim, K and V one tile each), down
   * to 4 keys whatever the head. GPUs: no cap but the 16 KiB of workgroup memory the staged tiles
   * may take (Infinity). CPU adapters: 1024. It was chosen when they staged the tiles too, because
   * SwiftShader's compile time for Dawn's zeroing of workgroup memory grows faster than the memory
   * (a d64 kernel at 32 keys 1.4 s per pipeline, in Chromium too; 0.56 s at 16 keys); now that they
   * read K and V directly (attentionStageKV) it only sizes each thread's tile of scores, and the
   * whole budget measured no better on the shapes CPU adapters send to the flash kernel
   * (bench/README.md "Compile time").
   */
  attentionTileFloats: number;
  /**
   * Whether the flash attention kernel stages each K and V tile in workgroup memory for its
   * threads to share (STAGE_KV in shaders/attention.wgsl): on GPUs. CPU adapters read them from
   * the inputs, where caches share them: no workgroup memory, which they emulate and SwiftShader
   * pays compile time to zero (bench/README.md "Compile time").
   */
  attentionStageKV: boolean;
  /**
   * Head dims from which attention() runs as two GEMMs and a row softmax (src/kernels/attention.ts
   * attentionPath) instead of the flash kernel, whose per-thread d-wide accumulator spills at large
   * heads. Tests and benches set it to force a path (1: every head; Infinity: none that flash can take).
   */
  attentionGemmMinHead = ATTENTION_GEMM_MIN_HEAD;
  /**
   * Key counts from which attention() takes the GEMM path whatever the head dim. CPU adapters:
   * 256, where it measured 0.62-0.76x the flash kernel's time at 256 keys of d32, 0.36-0.51x at
   * 1024 of d40 and 0.35x at SD's 4096 (lavapipe 4.5 s against 12.8 s, scores in 8 chunks of
   * 128 MiB), and lost at 64 keys (bench/README.md "Compile time"). GPUs: Infinity until a device
   * run compares them. Tests and benches set it with attentionGemmMinHead to force a path.
   */
  attentionGemmMinKeys: number;
  /**
   * 'f16': the tiled GEMM feed multiplies f16 activations with f16 FMAs, summing each K slice in
   * f16 before the f32 accumulators (F16_MATH in shaders/gemm.wgsl). Opt-in until measured on a
   * GPU (bench --gemm-math f16): packed half math doubles the FMA rate where a GPU has it, and
   * rounds each slice's sum to f16 (about 1e-3 relative). A slice's sum must fit f16 (65504): so
   * not for q8 weights (raw integers until the epilogue), nor for attention's scores.
   */
  gemmMath: GemmMath = 'f32';
  /**
   * Workgroup reductions (norm statistics, guidance rescale, the GEMM attention path's row softmax)
   * through subgroup operations: one partial per subgroup, 2 barriers where the tree takes
   * log2(WG) + 2 (shaders/wg_reduce.wgsl). Needs the device feature `subgroups` and WGSL's
   * `subgroup_id`. On by default on CPU adapters, where it is checked and measured faster (short
   * rows up to 1.3x on lavapipe, 2.4x on SwiftShader; bench/README.md); opt-in on GPUs until a
   * device run (bench/reduce.ts) has checked and timed it on their wider subgroups. Tests and
   * benches set it to compare or check both forms.
   */
  subgroupReduce: boolean;
  /**
   * Stride-1 3x3 convs of model weights as Winograd F(2x2, 3x3) (src/kernels/winograd.ts): an input
   * transform, 16 GEMMs over channels with 2.25x fewer multiplies than the implicit-GEMM conv, and
   * an output transform carrying the epilogue. Each such weight gets a transformed copy (16/9 of
   * its size, kept beside it). On by default on CPU adapters, where it is measured faster
   * (bench/README.md); opt-in on GPUs until a device run has timed it (bench --winograd).
   */
  winograd: boolean;
  /**
   * The least GEMM rows (batch · 2x2 output tiles) times input channels a conv needs to take the
   * Winograd path: below it the two transforms and 16 GEMMs of a few rows each cost more than the
   * multiplies they save. On both CPU adapters every fashion-ldm-sized conv from this product on ran
   * at least as fast (0.98-2.3x) and some below it slower (down to 0.44x at 2x2 outputs; bench/winograd.ts,
   * bench/README.md "Winograd convs"). Tests set 0 to check the path on small shapes.
   */
  winogradMinWork = WINOGRAD_MIN_WORK;

  constructor(readonly gpu: GpuContext) {
    this.device = gpu.device;
    liveRuntimes.add(this);
    const l = this.device.limits;
    this.planLimits = {
      binding: Math.min(l.maxStorageBufferBindingSize, DEFAULT_PLAN_LIMITS.binding),
      buffer: Math.min(l.maxBufferSize, DEFAULT_PLAN_LIMITS.buffer),
    };
    this.deviceLimits = { binding: l.maxStorageBufferBindingSize, buffer: l.maxBufferSize };
    const cpu = isCpuAdapter(gpu.adapterName);
    this.gemmFeed = cpu ? 'direct' : 'tiled';
    this.splitNormStats = !cpu;
    this.fuseGroupNorm = cpu;
    this.attentionKeyGroups = cpu ? 4 : 1;
    this.attentionUnrollHead = !cpu;
    this.attentionTileFloats = cpu ? 1024 : Infinity;
    this.attentionStageKV = !cpu;
    this.attentionGemmMinKeys = cpu ? 256 : Infinity;
    this.subgroupReduce = cpu && canReduceBySubgroup(gpu);
    this.winograd = cpu;
    // Errors outside any scope (weight uploads, for one) still reach the next assertHealthy().
    this.device.onuncapturederror = (ev) => {
      this.pendingErrors.push(Promise.resolve(`GPU error: ${ev.error.message}`));
    };
  }

  /** Registers how to undo something a plan made outside its graph, if the plan is abandoned. */
  onPlanAbandoned(undo: () => void): void {
    this.planUndo?.push(undo);
  }

  /**
   * Runs a plan attempt that may be abandoned: if `f` throws, what it registered with
   * onPlanAbandoned is undone (newest first) before the error goes on.
   */
  abandonable<T>(f: () => T): T {
    const outer = this.planUndo;
    const undo: (() => void)[] = [];
    this.planUndo = undo;
    try {
      return f();
    } catch (e) {
      for (const u of undo.reverse()) u();
      throw e;
    } finally {
      this.planUndo = outer;
    }
  }

  /** Starts a new peak-memory measurement from what is allocated now; returns the previous peak. */
  resetPeak(): number {
    const peak = this.peakBytes;
    this.peakBytes = this.liveBytes;
    return peak;
  }

  /** Kernels asked for so far (each gets its pipeline at first use or from compilePending). */
  get kernelsCompiled(): number {
    return this.cache.size;
  }

  kernel(spec: KernelSpec): CompiledKernel {
    const key = kernelKey(spec);
    const hit = this.cache.get(key);
    if (hit) return hit;
    const code = generateWgsl(spec);
    if (this.debugDump) console.error(`// ${key}\n${code}`);
    const compiled = this.compile(key, code, spec.entry ?? 'main');
    this.cache.set(key, compiled);
    return compiled;
  }

  private compile(key: string, code: string, entry: string): CompiledKernel {
    let reflect: WgslReflect;
    try {
      reflect = new WgslReflect(code);
    } catch (e) {
      throw new GpuError(`WGSL for ${key} does not parse: ${(e as Error).message}`);
    }
    const groups = reflect.getBindGroups();
    const bindings: BindingInfo[] = [];
    let uniform: CompiledKernel['uniform'] = null;
    for (const b of groups[0] ?? []) {
      if (!b) continue;
      // wgsl_reflect's ResourceType: 0 uniform, 1 storage.
      const kind: BindingInfo['kind'] =
        b.resourceType === 0 ? 'uniform' : b.access === 'read_write' ? 'storage' : 'read-only-storage';
      bindings.push({ name: b.name, binding: b.binding, kind });
      if (kind === 'uniform') {
        const members = new Map<string, UniformMember>();
        for (const m of b.members ?? []) {
          const t = m.type.name;
          if (t !== 'u32' && t !== 'i32' && t !== 'f32') throw new GpuError(`${key}: uniform member ${m.name} has type ${t}; only scalars are supported`);
          members.set(m.name, { offset: m.offset, type: t });
        }
        uniform = { name: b.name, size: Math.max(16, Math.ceil(b.size / 16) * 16), members };
      }
    }
    const fn = reflect.entry.compute.find((f) => f.name === entry);
    if (!fn) throw new GpuError(`${key}: no @compute entry point '${entry}'`);
    const ws = (fn.workgroupSize ?? [1, 1, 1]) as number[];
    const device = this.device;
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ code, label: key });
    const layout = device.createBindGroupLayout({
      label: key,
      entries: bindings.map((b) => ({ binding: b.binding, visibility: GPUShaderStage.COMPUTE, buffer: { type: b.kind } })),
    });
    const descriptor: GPUComputePipelineDescriptor = {
      label: key,
      layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: entry },
    };
    const moduleError = device.popErrorScope().then((err) => (err ? this.compileMessage(key, err.message, module) : null));
    this.pendingErrors.push(moduleError);
    this.unmade.set(key, { descriptor, module, moduleError });
    const rt = this;
    return {
      key,
      label: key.split('|')[0]!,
      get pipeline() {
        return rt.pipelineOf(key);
      },
      layout,
      bindings,
      uniform,
      workgroupSize: [ws[0] ?? 1, ws[1] ?? 1, ws[2] ?? 1],
      code,
    };
  }

  private async compileMessage(key: string, message: string, module: GPUShaderModule): Promise<string> {
    const info = await module.getCompilationInfo();
    const msgs = info.messages.map((m) => `  ${m.lineNum}:${m.linePos} ${m.message}`).join('\n');
    return `kernel ${key} failed to compile: ${message}${msgs ? `\n${msgs}` : ''}`;
  }

  /**
   * The kernel's pipeline, made now if compilePending() has not made it. A pipeline whose async
   * creation is still under way is made again here, synchronously: recording must not wait, and
   * the library's own runs await compilePending() before they record.
   */
  private pipelineOf(key: string): GPUComputePipeline {
    const made = this.pipelines.get(key);
    if (made) return made;
    const pending = this.unmade.get(key);
    if (!pending) throw new GpuError(`kernel ${key}: no such kernel in this runtime`);
    const device = this.device;
    device.pushErrorScope('validation');
    const pipeline = device.createComputePipeline(pending.descriptor);
    this.pendingErrors.push(device.popErrorScope().then((err) => (err ? this.compileMessage(key, err.message, pending.module) : null)));
    this.pipelines.set(key, pipeline);
    this.unmade.delete(key);
    return pipeline;
  }

  /** Kernels asked for whose pipelines are not made yet. */
  get pipelinesPending(): number {
    return this.unmade.size;
  }

  /**
   * Makes every pipeline not made yet, all at once with createComputePipelineAsync, so a browser
   * compiles them on its worker threads in parallel instead of one after another as each is first
   * recorded (Chromium, SwiftShader, 2 cores: the shipped model's 42 in 3.0 -> 2.7 s; dawn.node
   * makes them one at a time either way). Planning a run's graphs, then awaiting this, then
   * recording is what Fresco's pipelines do. Rejects with a GpuError: an error already queued
   * (what assertHealthy would throw), every kernel whose pipeline failed (each reported once
   * here, not tried again: a recording of it makes it synchronously and reports it again), or
   * the device-lost reason.
   */
  async compilePending(): Promise<void> {
    // A shader that did not compile is not made into a pipeline; its error (queued since kernel())
    // is reported now with anything else queued, not left for the next run's check.
    const waiting = [...this.unmade.values()].filter((p) => !p.failed);
    const moduleErrors = await this.orLost(Promise.all(waiting.map((p) => p.moduleError)));
    waiting.forEach((p, i) => moduleErrors[i] && (p.failed = true));
    await this.assertHealthy();
    const creations = [...this.unmade].flatMap(([key, pending]) => {
      if (pending.failed) return [];
      pending.creating ??= this.device.createComputePipelineAsync(pending.descriptor).then(
        (pipeline) => {
          // A synchronous creation may have made it meanwhile (pipelineOf); keep that one.
          if (this.unmade.get(key) === pending) {
            this.pipelines.set(key, pipeline);
            this.unmade.delete(key);
          }
          return null;
        },
        (e: unknown) => {
          pending.failed = true;
          return this.compileMessage(key, (e as Error).message, pending.module);
        },
      );
      return [pending.creating];
    });
    const failures = await this.orLost(Promise.all(creations));
    const messages = failures.filter((m): m is string => m !== null);
    if (messages.length) throw new GpuError(messages.join('\n'));
    // A lost device resolves its creations with invalid pipelines.
    if (this.gpu.isLost()) throw new GpuError(await this.gpu.lost);
  }

  createBuffer(bytes: number, label: string, usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST): GPUBuffer {
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    const maxBuf = this.device.limits.maxBufferSize;
    if (size > maxBuf) throw new GpuError(`Buffer '${label}' needs ${size} bytes, over this device's maxBufferSize ${maxBuf}`);
    const buffer = this.device.createBuffer({ size, usage, label });
    this.liveBytes += size;
    this.peakBytes = Math.max(this.peakBytes, this.liveBytes);
    return buffer;
  }

  destroyBuffer(buffer: GPUBuffer): void {
    this.liveBytes -= buffer.size;
    buffer.destroy();
  }

  upload(data: Float32Array | Uint32Array | Int32Array, label: string): GPUBuffer {
    const buffer = this.createBuffer(data.byteLength, label);
    this.device.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, data.byteLength);
    return buffer;
  }

  async read(buffer: GPUBuffer, bytes = buffer.size, offset = 0): Promise<Float32Array> {
    const staging = this.device.createBuffer({ size: Math.ceil(bytes / 4) * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(buffer, offset, staging, 0, staging.size);
    this.device.queue.submit([enc.finish()]);
    await this.mapOrLost(staging);
    const out = new Float32Array(staging.getMappedRange().slice(0, bytes));
    staging.unmap();
    staging.destroy();
    return out;
  }

  /** mapAsync that fails with the device-lost reason instead of hanging. */
  private mapOrLost(buffer: GPUBuffer): Promise<void> {
    return this.orLost(buffer.mapAsync(GPUMapMode.READ));
  }

  /** The queue's work so far done, or the device's loss as a GpuError (never a promise left hanging). */
  queueDone(): Promise<void> {
    return this.orLost(this.device.queue.onSubmittedWorkDone());
  }

  private orLost<T>(p: Promise<T>): Promise<T> {
    const lost = this.gpu.lost.then((msg): never => {
      throw new GpuError(msg);
    });
    // Whichever side loses the race settles later; it must not become an unhandled rejection.
    lost.catch(() => undefined);
    return Promise.race([p, lost]);
  }

  /**
   * Runs `fn` (synchronous GPU calls: creating bind groups, encoding, submitting) inside error
   * scopes; what it caused is reported by the next assertHealthy(), so the hot path never waits.
   */
  watch<T>(what: string, fn: () => T): T {
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    // The scopes are popped even when fn throws (a plan over its limits, say): a scope left
    // open would swallow the errors of everything after it.
    try {
      return fn();
    } finally {
      const validation = this.device.popErrorScope();
      const oom = this.device.popErrorScope();
      this.pendingErrors.push(
        Promise.all([validation, oom]).then(([v, o]) => (o ? `${what}: out of GPU memory: ${o.message}` : v ? `${what}: ${v.message}` : null)),
      );
    }
  }

  /**
   * Resolves once submitted work is done and every error check so far has an answer; the answers
   * stay queued for the next assertHealthy().
   */
  async settle(): Promise<void> {
    if (this.gpu.isLost()) return;
    await Promise.allSettled([...this.pendingErrors, this.device.queue.onSubmittedWorkDone()]);
  }

  /** Throws the first compile, validation or out-of-memory error so far, or the device-lost reason. */
  async assertHealthy(): Promise<void> {
    const pending = this.pendingErrors.splice(0);
    const messages = (await Promise.all(pending)).filter((m): m is string => m !== null);
    if (messages.length) throw new GpuError(messages.join('\n'));
    if (this.gpu.isLost()) throw new GpuError(await this.gpu.lost);
  }
}

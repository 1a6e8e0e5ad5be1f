// A recorded list of kernel dispatches over planned buffers. Models build it once per
// (model, batch, size); running it only encodes the recorded dispatches into a pass. Uniforms
// are packed into one arena buffer at finalize(), bind groups are made once, and activation
// buffers come from a pool: a buffer released at build time is handed to a later tensor,
// which is safe because dispatches in one queue run in recording order.
import type { CompiledKernel, KernelSpec, PlanLimits, Runtime } from '../gpu/runtime.ts';
import { bytesFor, bytesOf, numel, type DType, type Tensor } from './tensor.ts';
import { GpuError, PlanLimitError } from '../errors.ts';

export type Bindable = Tensor | GPUBuffer;

interface PendingOp {
  label: string;
  kernel: CompiledKernel;
  bind: Record<string, Bindable>;
  uniformData: ArrayBuffer | null;
  workgroups: [number, number, number];
  cost?: OpCost;
}

/** What one dispatch does, estimated by the kernel that records it (for GFLOP/s and GB/s in profiles). */
export interface OpCost {
  /** Floating-point operations (an FMA counts 2). */
  flops?: number;
  /** Bytes read and written in global memory, each tensor counted once. */
  bytes?: number;
}

export interface Op {
  label: string;
  kernel: CompiledKernel;
  bindGroup: GPUBindGroup;
  workgroups: [number, number, number];
  cost?: OpCost;
}

const MAX_WG = 65535;

/** Splits a 1-D workgroup count over x and y so no dimension passes the WebGPU limit. */
export function fold1d(count: number): [number, number] {
  if (count <= MAX_WG) return [Math.max(1, count), 1];
  const y = Math.ceil(count / MAX_WG);
  return [Math.ceil(count / y), y];
}

/**
 * `n` items cut into about `want` runs of equal length, each a multiple of `align` (the last one
 * shorter): the run length and how many runs that makes (never an empty one).
 */
export function evenChunks(n: number, want: number, align = 1): { parts: number; chunk: number } {
  const chunk = Math.ceil(n / Math.max(1, want) / align) * align;
  return { parts: Math.ceil(n / chunk), chunk };
}

export class Graph {
  private pending: PendingOp[] = [];
  ops: Op[] = [];
  private free: GPUBuffer[] = [];
  private owned: GPUBuffer[] = [];
  private arena: GPUBuffer | null = null;
  private released = new WeakSet<Tensor>();
  /**
   * The largest binding and buffer this graph planned (to prove a plan fits its limits), the
   * bytes of every tensor it allocated, and the bytes of the buffers that held them after
   * lifetime aliasing.
   */
  readonly stats = { maxBindingBytes: 0, maxBufferBytes: 0, tensorBytes: 0, bufferBytes: 0 };

  /** limits: what this graph plans against instead of rt.planLimits (planGraph's fallback). */
  constructor(readonly rt: Runtime, readonly label = 'graph', private readonly ownLimits?: PlanLimits) {}

  /** The limits models plan against (see Runtime.planLimits); a tensor over `binding` must be split. */
  get limits(): PlanLimits {
    return this.ownLimits ?? this.rt.planLimits;
  }

  /** A planned activation buffer, reusing a released one when one is large enough. */
  alloc(shape: readonly number[], label: string, dtype: DType = 'f32'): Tensor {
    const bytes = Math.max(16, bytesFor(numel(shape), dtype));
    if (bytes > this.limits.buffer) throw new PlanLimitError(`${this.label}: tensor ${label} [${shape.join(', ')}] needs ${bytes} bytes, over the planned maxBufferSize ${this.limits.buffer}; it must be split`);
    this.stats.tensorBytes += bytes;
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const s = this.free[i]!.size;
      if (s >= bytes && s <= bytes * 2 && (best < 0 || s < this.free[best]!.size)) best = i;
    }
    if (best >= 0) {
      const [buffer] = this.free.splice(best, 1);
      return { buffer: buffer!, shape: [...shape], label, dtype };
    }
    const buffer = this.rt.createBuffer(bytes, `${this.label}/${label}`);
    this.stats.bufferBytes += buffer.size;
    this.owned.push(buffer);
    return { buffer, shape: [...shape], label, dtype };
  }

  /**
   * The tensor's buffer may be reused by tensors allocated after this point. Binding a released
   * tensor again, or releasing it twice, is a planning error: its buffer may already hold another
   * tensor, which would be a silent wrong answer.
   */
  release(...ts: Tensor[]): void {
    for (const t of ts) {
      // Buffers the graph does not own (inputs, weights) are never recycled.
      if (!this.owned.includes(t.buffer)) continue;
      if (this.released.has(t)) throw new GpuError(`${this.label}: tensor ${t.label} released twice`);
      this.released.add(t);
      this.free.push(t.buffer);
    }
  }

  dispatch(
    label: string,
    spec: KernelSpec,
    bind: Record<string, Bindable>,
    uniforms: Record<string, number>,
    workgroups: readonly [number, number?, number?],
    cost?: OpCost,
  ): void {
    const kernel = this.rt.kernel(spec);
    let uniformData: ArrayBuffer | null = null;
    if (kernel.uniform) {
      uniformData = new ArrayBuffer(kernel.uniform.size);
      const view = new DataView(uniformData);
      for (const [name, m] of kernel.uniform.members) {
        const v = uniforms[name];
        if (v === undefined) throw new GpuError(`${label} (${kernel.key}): uniform '${name}' not given`);
        if (m.type === 'f32') view.setFloat32(m.offset, v, true);
        else if (m.type === 'i32') view.setInt32(m.offset, v, true);
        else {
          if (!Number.isInteger(v) || v < 0) throw new GpuError(`${label}: uniform '${name}' = ${v} is not a u32`);
          view.setUint32(m.offset, v, true);
        }
      }
      for (const name of Object.keys(uniforms)) {
        if (!kernel.uniform.members.has(name)) throw new GpuError(`${label} (${kernel.key}): unknown uniform '${name}'`);
      }
    }
    for (const b of kernel.bindings) {
      if (b.kind !== 'uniform' && !(b.name in bind)) throw new GpuError(`${label} (${kernel.key}): binding '${b.name}' not given`);
    }
    for (const x of Object.values(bind)) {
      if ('buffer' in x && this.released.has(x)) throw new GpuError(`${label}: uses tensor ${x.label} after it was released`);
    }
    const wg: [number, number, number] = [workgroups[0], workgroups[1] ?? 1, workgroups[2] ?? 1];
    if (wg.some((n) => n > MAX_WG)) throw new GpuError(`${label}: dispatch ${wg.join('x')} exceeds ${MAX_WG} workgroups per dimension`);
    if (wg.some((n) => n === 0)) return;
    this.pending.push({ label, kernel, bind, uniformData, workgroups: wg, ...(cost ? { cost } : {}) });
  }

  /** Packs uniforms into one buffer and creates every bind group. Call once after building. */
  finalize(): this {
    return this.rt.watch(`planning ${this.label}`, () => this.build());
  }

  private build(): this {
    const device = this.rt.device;
    const align = device.limits.minUniformBufferOffsetAlignment;
    let size = 0;
    const offsets: number[] = [];
    for (const p of this.pending) {
      offsets.push(size);
      if (p.uniformData) size += Math.ceil(p.uniformData.byteLength / align) * align;
    }
    if (size > 0) {
      this.arena = this.rt.createBuffer(size, `${this.label}/uniforms`, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
      const all = new Uint8Array(size);
      this.pending.forEach((p, i) => p.uniformData && all.set(new Uint8Array(p.uniformData), offsets[i]!));
      device.queue.writeBuffer(this.arena, 0, all);
    }
    this.ops = this.pending.map((p, i) => {
      const entries: GPUBindGroupEntry[] = p.kernel.bindings.map((b) => {
        if (b.kind === 'uniform') return { binding: b.binding, resource: { buffer: this.arena!, offset: offsets[i]!, size: p.kernel.uniform!.size } };
        const x = p.bind[b.name]!;
        if ('buffer' in x) {
          const bytes = bytesOf(x);
          const limit = Math.min(device.limits.maxStorageBufferBindingSize, this.limits.binding);
          if (bytes > limit) throw new PlanLimitError(`${p.label}: tensor ${x.label} [${x.shape.join(', ')}] needs ${bytes} bytes in one binding, over the planned maxStorageBufferBindingSize ${limit}`);
          if (bytes > x.buffer.size) throw new GpuError(`${p.label}: tensor ${x.label} needs ${bytes} bytes, its buffer has ${x.buffer.size}`);
          this.stats.maxBindingBytes = Math.max(this.stats.maxBindingBytes, bytes);
          this.stats.maxBufferBytes = Math.max(this.stats.maxBufferBytes, x.buffer.size);
          return { binding: b.binding, resource: { buffer: x.buffer, offset: 0, size: Math.max(4, bytes) } };
        }
        return { binding: b.binding, resource: { buffer: x } };
      });
      const bindGroup = device.createBindGroup({ label: p.label, layout: p.kernel.layout, entries });
      return { label: p.label, kernel: p.kernel, bindGroup, workgroups: p.workgroups, ...(p.cost ? { cost: p.cost } : {}) };
    });
    this.pending = [];
    return this;
  }

  encode(pass: GPUComputePassEncoder): void {
    for (const op of this.ops) {
      pass.setPipeline(op.kernel.pipeline);
      pass.setBindGroup(0, op.bindGroup);
      pass.dispatchWorkgroups(...op.workgroups);
    }
  }

  /** Encodes the graph into its own pass on `encoder`. */
  record(encoder: GPUCommandEncoder): void {
    const pass = encoder.beginComputePass({ label: this.label });
    this.encode(pass);
    pass.end();
  }

  /**
   * Records the graph into its own command buffer and submits it inside the runtime's error
   * scopes; what went wrong is reported by the next rt.assertHealthy().
   */
  submit(what: string = this.label): void {
    const enc = this.rt.device.createCommandEncoder({ label: what });
    this.record(enc);
    this.rt.watch(what, () => this.rt.device.queue.submit([enc.finish()]));
  }

  destroy(): void {
    for (const b of this.owned) this.rt.destroyBuffer(b);
    if (this.arena) this.rt.destroyBuffer(this.arena);
    this.owned = [];
    this.free = [];
    this.arena = null;
  }
}

/**
 * A graph built by `build` and finalized: within rt.planLimits (WebGPU's defaults) when it fits
 * them, so that such a model gets the same plan, and the same rounding, on every device; else,
 * where the device's own limits are larger, within those, so a larger image still runs where the
 * adapter allows it. `build` may run twice; what it creates outside the graph it must not repeat.
 */
export function planGraph<T>(rt: Runtime, label: string, build: (g: Graph) => T): { g: Graph; out: T } {
  const attempt = (limits?: PlanLimits) => {
    const g = new Graph(rt, label, limits);
    try {
      const out = build(g);
      g.finalize();
      return { g, out };
    } catch (e) {
      g.destroy();
      throw e;
    }
  };
  try {
    // Slices of weights this attempt makes for its chunks go again if it is abandoned.
    return rt.abandonable(() => attempt());
  } catch (e) {
    const dev = rt.deviceLimits;
    const larger = dev.binding > rt.planLimits.binding || dev.buffer > rt.planLimits.buffer;
    if (!(e instanceof PlanLimitError) || !larger) throw e;
    return attempt({ binding: Math.max(dev.binding, rt.planLimits.binding), buffer: Math.max(dev.buffer, rt.planLimits.buffer) });
  }
}

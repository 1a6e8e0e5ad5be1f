// LoRA adapters on a loaded model, in one of two modes per adapter:
// - fused (the default): merged into the weights on the GPU, W += scale · (alpha / rank) · up · down
//   for every adapted module, as diffusers' fuse_lora does. Merging costs nothing per step; a scale
//   change merges the difference, and unloading merges the negation, so adapters can be re-weighted
//   and removed without reloading the model (in f16 weights each merge rounds once, as diffusers'
//   unfuse_lora does). Each adapter keeps its small up and down matrices on the GPU for that.
// - unfused: the weights stay as loaded, and every GEMM on an adapted weight adds
//   up · (down · x) in its epilogue (src/kernels/lora_attach.ts, the LORA variant of
//   shaders/gemm.wgsl), as diffusers' LoRACompatibleLinear/Conv do at runtime. It costs a small GEMM
//   and R multiply-adds per output per step, and a scale change rewrites only the stacked up
//   matrices from the file's values: no rounding drift, whatever the number of changes. Several
//   unfused adapters on one weight are stacked into one attachment (down rows and up columns
//   concatenated, each adapter's scale folded into its columns). A change applies from the next
//   generation (graphs are recorded per generation, and record the attachments as they are then).
// Both modes may be mixed on one model, even on one weight: the unfused terms add to the merged weight.
import type { Runtime } from '../gpu/runtime.ts';
import { planGraph } from '../graph/graph.ts';
import { dtypeOf, elementBytes, numel, type Tensor } from '../graph/tensor.ts';
import { kohyaNames, sgmToDiffusers, type LoraComponent, type LoraLayer } from '../io/lora_file.ts';
import { uploadTensor } from '../kernels/cast.ts';
import { linear } from '../kernels/gemm.ts';
import { setLoraAttachment, type LoraAttachment } from '../kernels/lora_attach.ts';
import { loraMerge } from '../kernels/lora_merge.ts';
import type { WeightLoader } from './loader.ts';
import { LoraError } from '../errors.ts';

/** The loaders of the components a LoRA may adapt (absent: the model has no such component). */
export type LoraTargets = Partial<Record<LoraComponent, WeightLoader>>;

/** 'auto': fused, unless an adapted weight is quantized (a merge would requantize it): then unfused. */
export type LoraMode = 'fused' | 'unfused' | 'auto';

interface Merged {
  loader: WeightLoader;
  target: Tensor;
  /** up · (alpha / rank), f32 [out, rank] */
  up: Tensor;
  /** downᵀ, f32 [in·kh·kw, rank] */
  downT: Tensor;
}

/** One layer of an unfused adapter. */
interface Attached {
  loader: WeightLoader;
  target: Tensor;
  key: string;
  /**
   * [rank, in, (kh, kw)] in the target's storage type. With f16 rows of an odd count of halves a
   * zero row is added (rank + 1), so adapters stack by whole 4-byte copies; its up column is zero.
   */
  down: Tensor;
  /** up · (alpha / rank), [out, rank] (the padded rank), on the host: the stacked up is rebuilt from it at every scale. */
  up: Float32Array;
}

export interface LoraInfo {
  name: string;
  scale: number;
  /** Merged into the weights (true), or applied in the GEMMs' epilogues (false). */
  fused: boolean;
  /** Modules adapted, per component. */
  layers: Partial<Record<LoraComponent, number>>;
  /**
   * kohya layers left out as diffusers v0.25.1 leaves them out (its conversion keeps the U-Net's
   * down/mid/up blocks and the text encoders' self_attn and mlp layers only; PEFT drops the rest
   * with a warning): adapting them would draw something diffusers does not.
   */
  skipped: string[];
}

class Adapter {
  constructor(
    readonly name: string,
    public scale: number,
    readonly merged: Merged[],
    readonly attached: Attached[] = [],
    readonly skipped: string[] = [],
  ) {}

  get mode(): LoraMode {
    return this.attached.length ? 'unfused' : 'fused';
  }
}

/** A weight's attachment and the buffers it owns (a stacked down, the stacked up, split-conv slices). */
interface Stack {
  attachment: LoraAttachment;
  owned: Set<GPUBuffer>;
}

/** Trailing 1s dropped: a linear pair may adapt a 1x1 conv ([out, in] vs [out, in, 1, 1]). */
function core(shape: readonly number[]): number[] {
  const s = [...shape];
  while (s.length > 2 && s[s.length - 1] === 1) s.pop();
  return s;
}

const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

export class LoraSet {
  private readonly adapters = new Map<string, Adapter>();
  private destroyed = false;
  /** The unfused attachments, by adapted weight. */
  private readonly stacks = new Map<Tensor, Stack>();

  /** unetLayersPerBlock: the U-Net's layers_per_block, to read kohya names in the original SD layout (input_blocks_…). */
  constructor(
    private readonly rt: Runtime,
    private readonly targets: LoraTargets,
    private readonly unetLayersPerBlock: number | null = null,
  ) {}

  list(): LoraInfo[] {
    return [...this.adapters.values()].map((a) => {
      const layers: Partial<Record<LoraComponent, number>> = {};
      for (const m of [...a.merged, ...a.attached]) {
        const c = (Object.entries(this.targets) as [LoraComponent, WeightLoader][]).find(([, l]) => l === m.loader)![0];
        layers[c] = (layers[c] ?? 0) + 1;
      }
      return { name: a.name, scale: a.scale, fused: a.mode === 'fused', layers, skipped: [...a.skipped] };
    });
  }

  has(name: string): boolean {
    return this.adapters.has(name);
  }

  /**
   * Resolves every layer to a weight of the model (all must match), then merges them at `scale`
   * ('fused'), or attaches them to their weights' GEMMs ('unfused').
   */
  async load(name: string, layers: LoraLayer[], scale: number, where: string, mode: LoraMode = 'fused'): Promise<void> {
    if (this.adapters.has(name)) throw new LoraError('name', `a LoRA named '${name}' is already loaded (unload it first, or give another name)`);
    if (mode !== 'fused' && mode !== 'unfused' && mode !== 'auto') throw new LoraError('format', `LoRA '${name}': mode must be 'fused', 'unfused' or 'auto', got ${JSON.stringify(mode)}`);
    checkScale(scale, name);
    if (this.destroyed) throw new LoraError('name', `LoRA '${name}': the model was destroyed`);
    const { resolved, skipped } = this.resolve(layers, where);
    const quantized = resolved.find((r) => r.target.quant);
    if (quantized && mode === 'fused') throw new LoraError('quantized', `LoRA '${name}': ${quantized.key} is stored quantized (${quantized.target.quant!.format}), and merging into it would requantize the weight; load the LoRA unfused (fuse: false)`);
    if (mode === 'auto') mode = quantized ? 'unfused' : 'fused';
    if (mode === 'unfused') return this.attach(name, resolved, scale, skipped);
    const merged: Merged[] = [];
    try {
      for (const r of resolved) {
        const { rank, k, out, inner } = geometry(r.layer);
        const up = Float32Array.from(r.layer.up.data, (v) => v * k);
        const downT = new Float32Array(inner * rank);
        for (let i = 0; i < rank; i++) for (let j = 0; j < inner; j++) downT[j * rank + i] = r.layer.down.data[i * inner + j]!;
        const label = `lora ${name}: ${r.key}`;
        const upT: Tensor = { buffer: this.rt.upload(up, `${label} up`), shape: [out, rank], label: `${label} up` };
        merged.push({ loader: r.loader, target: r.target, up: upT, downT: { buffer: this.rt.upload(downT, `${label} down`), shape: [inner, rank], label: `${label} down` } });
      }
      await this.merge(merged, scale, `loading LoRA '${name}'`);
    } catch (e) {
      for (const m of merged) this.free(m);
      throw e;
    }
    this.adapters.set(name, new Adapter(name, scale, merged, [], skipped));
  }

  /**
   * New scales for loaded adapters (by name): a fused one merges the difference, an unfused one
   * rebuilds its weights' stacked up matrices (from the next generation on).
   */
  async setScales(scales: Record<string, number>): Promise<void> {
    for (const [name, s] of Object.entries(scales)) {
      if (!this.adapters.has(name)) throw new LoraError('name', `no LoRA named '${name}' is loaded (loaded: ${[...this.adapters.keys()].join(', ') || 'none'})`);
      checkScale(s, name);
    }
    const restack = new Set<Tensor>();
    for (const [name, s] of Object.entries(scales)) {
      const a = this.adapters.get(name)!;
      if (s === a.scale) continue;
      if (a.mode === 'unfused') {
        a.scale = s;
        a.attached.forEach((l) => restack.add(l.target));
        continue;
      }
      await this.merge(a.merged, s - a.scale, `rescaling LoRA '${name}'`);
      a.scale = s;
    }
    this.restack(restack);
  }

  /** Takes an adapter (or all) out of the weights, or off them. */
  async unload(name?: string): Promise<void> {
    const names = name === undefined ? [...this.adapters.keys()] : [name];
    for (const n of names) {
      const a = this.adapters.get(n);
      if (!a) throw new LoraError('name', `no LoRA named '${n}' is loaded (loaded: ${[...this.adapters.keys()].join(', ') || 'none'})`);
      await this.merge(a.merged, -a.scale, `unloading LoRA '${n}'`);
      a.merged.forEach((m) => this.free(m));
      this.adapters.delete(n);
      // The weights' new stacks no longer read this adapter's down matrices: then they go.
      this.restack(new Set(a.attached.map((l) => l.target)));
      a.attached.forEach((l) => this.rt.destroyBuffer(l.down.buffer));
    }
  }

  destroy(): void {
    this.destroyed = true;
    for (const a of this.adapters.values()) {
      a.merged.forEach((m) => this.free(m));
      a.attached.forEach((l) => this.rt.destroyBuffer(l.down.buffer));
    }
    this.adapters.clear();
    for (const [target, st] of this.stacks) {
      setLoraAttachment(target, null);
      st.owned.forEach((b) => this.rt.destroyBuffer(b));
    }
    this.stacks.clear();
  }

  /** The unfused LoRAs now attached to each adapted weight (for tests: what a GEMM reads, and how often it did). */
  attachments(): Map<string, LoraAttachment> {
    const out = new Map<string, LoraAttachment>();
    for (const [target, st] of this.stacks) out.set(target.label, st.attachment);
    return out;
  }

  /** The unfused mode of load(): each layer's down in its weight's storage type, its up kept on the host. */
  private attach(name: string, resolved: ReturnType<LoraSet['resolve']>['resolved'], scale: number, skipped: string[]): void {
    const attached: Attached[] = [];
    try {
      for (const r of resolved) {
        const { rank, k, out, inner } = geometry(r.layer);
        const dtype = dtypeOf(r.target);
        // f16 rows of an odd count of halves: one zero row more, so stacks copy whole words.
        const padded = dtype === 'f16' && (rank * inner) % 2 === 1 ? rank + 1 : rank;
        const down = new Float32Array(padded * inner);
        down.set(r.layer.down.data.subarray(0, rank * inner));
        const up = new Float32Array(out * padded);
        for (let o = 0; o < out; o++) for (let i = 0; i < rank; i++) up[o * padded + i] = r.layer.up.data[o * rank + i]! * k;
        const label = `lora ${name}: ${r.key} down`;
        attached.push({ loader: r.loader, target: r.target, key: `${r.layer.component} ${r.key}`, up, down: uploadTensor(this.rt, down, [padded, ...r.target.shape.slice(1)], label, dtype) });
      }
    } catch (e) {
      attached.forEach((l) => this.rt.destroyBuffer(l.down.buffer));
      throw e;
    }
    this.adapters.set(name, new Adapter(name, scale, [], attached, skipped));
    this.restack(new Set(attached.map((l) => l.target)));
  }

  /**
   * Rebuilds the attachment of each weight from the unfused adapters on it, in load order: their
   * down rows stacked (one adapter's own down when it is alone), their up columns times their
   * scales. Adapters at scale 0 are left out (their term is exactly 0), and a weight left with none
   * has its attachment taken off. The previous stack's buffers are freed.
   */
  private restack(targets: Set<Tensor>): void {
    for (const target of targets) {
      const layers: { l: Attached; scale: number; name: string }[] = [];
      for (const a of this.adapters.values()) {
        if (a.scale === 0) continue;
        for (const l of a.attached) if (l.target === target) layers.push({ l, scale: a.scale, name: a.name });
      }
      const old = this.stacks.get(target);
      if (layers.length === 0) {
        setLoraAttachment(target, null);
        this.stacks.delete(target);
      } else {
        const owned = new Set<GPUBuffer>();
        const R = layers.reduce((s, { l }) => s + l.down.shape[0]!, 0);
        const [out] = target.shape as [number];
        let down = layers[0]!.l.down;
        if (layers.length > 1) {
          const rowBytes = (numel(down.shape) / down.shape[0]!) * elementBytes(dtypeOf(target));
          const buffer = this.rt.createBuffer(R * rowBytes, `lora on ${target.label}: stacked down`);
          owned.add(buffer);
          const enc = this.rt.device.createCommandEncoder({ label: `stacking LoRA down on ${target.label}` });
          let offset = 0;
          for (const { l } of layers) {
            const bytes = l.down.shape[0]! * rowBytes;
            enc.copyBufferToBuffer(l.down.buffer, 0, buffer, offset, bytes);
            offset += bytes;
          }
          this.rt.watch(`stacking LoRA down on ${target.label}`, () => this.rt.device.queue.submit([enc.finish()]));
          down = { buffer, shape: [R, ...down.shape.slice(1)], label: `lora on ${target.label}: stacked down`, dtype: dtypeOf(target) };
        }
        const up = new Float32Array(out * R);
        let col = 0;
        for (const { l, scale } of layers) {
          const r = l.down.shape[0]!;
          for (let o = 0; o < out; o++) for (let i = 0; i < r; i++) up[o * R + col + i] = Math.fround(scale * l.up[o * r + i]!);
          col += r;
        }
        const upT = uploadTensor(this.rt, up, [out, R], `lora on ${target.label}: stacked up`);
        owned.add(upT.buffer);
        const names = [...new Set(layers.map((x) => `'${x.name}'`))].join(', ');
        const attachment: LoraAttachment = {
          down,
          up: upT,
          what: `LoRA ${names} (unfused) on ${layers[0]!.l.key}`,
          uses: 0,
          own: (b) => owned.add(b),
          disown: (b) => owned.delete(b),
        };
        setLoraAttachment(target, attachment);
        this.stacks.set(target, { attachment, owned });
      }
      old?.owned.forEach((b) => this.rt.destroyBuffer(b));
    }
  }

  private free(m: Merged): void {
    this.rt.destroyBuffer(m.up.buffer);
    this.rt.destroyBuffer(m.downT.buffer);
  }

  private resolve(layers: LoraLayer[], where: string) {
    const out: { layer: LoraLayer; loader: WeightLoader; target: Tensor; key: string }[] = [];
    const unmatched: string[] = [];
    const skipped: string[] = [];
    const kohya = new Map<LoraComponent, Map<string, string>>();
    for (const layer of layers) {
      const loader = this.targets[layer.component];
      if (!loader) {
        unmatched.push(`${layer.component}: ${layer.module} (this model has no ${layer.component})`);
        continue;
      }
      let module: string | undefined = layer.module;
      if (layer.flat) {
        let names = kohya.get(layer.component);
        if (!names) kohya.set(layer.component, (names = kohyaNames([...loader.weights.keys()].filter((k) => k.endsWith('.weight')).map((k) => k.slice(0, -'.weight'.length)))));
        module = names.get(layer.module);
        const mapped = layer.component === 'unet' && this.unetLayersPerBlock !== null ? sgmToDiffusers(layer.module, this.unetLayersPerBlock) : layer.module;
        if (module === undefined && mapped !== null) module = names.get(mapped);
        // What diffusers' _convert_kohya_lora_to_diffusers keeps; it never adapts the rest.
        const kept = layer.component === 'unet' ? /^(down_blocks|mid_block|up_blocks)_/.test(mapped ?? layer.module) : /(^|_)(self_attn|mlp)_/.test(layer.module);
        if (module !== undefined && !kept) {
          skipped.push(`${layer.component}: ${layer.module}`);
          continue;
        }
      }
      const key = module === undefined ? undefined : `${module}.weight`;
      const target = key === undefined ? undefined : loader.weights.get(key);
      if (!target || !key) {
        unmatched.push(`${layer.component}: ${layer.module}`);
        continue;
      }
      const rank = layer.down.shape[0]!;
      const want = core(target.shape);
      const got = [layer.up.shape[0]!, ...core(layer.down.shape).slice(1)];
      if (!same(core(got), want)) {
        throw new LoraError('shape', `${where}: LoRA layer ${layer.component} ${module} (rank ${rank}: up [${layer.up.shape.join(', ')}], down [${layer.down.shape.join(', ')}]) does not fit the weight ${key} [${target.shape.join(', ')}]`);
      }
      out.push({ layer, loader, target, key });
    }
    if (out.length === 0 && skipped.length) {
      throw new LoraError('no-match', `${where}: its ${skipped.length} LoRA layers are all ones diffusers v0.25.1 does not apply (${skipped.slice(0, 3).join('; ')})`);
    }
    if (out.length === 0) {
      throw new LoraError('no-match', `${where}: none of its ${layers.length} LoRA layers names a module of this model (first: ${unmatched.slice(0, 3).join('; ')}); is it for another architecture?`);
    }
    if (unmatched.length) {
      throw new LoraError('no-match', `${where}: ${unmatched.length} of its ${layers.length} LoRA layers name no module of this model: ${unmatched.slice(0, 5).join('; ')}${unmatched.length > 5 ? '; …' : ''}`);
    }
    return { resolved: out, skipped };
  }

  /** W += scale · up · downᵀᵀ for each layer, in one submission; slices made of those weights are copied again. */
  private async merge(merged: Merged[], scale: number, what: string): Promise<void> {
    if (scale === 0 || merged.length === 0) return;
    const { g } = planGraph(this.rt, 'lora', (g) => {
      for (const m of merged) {
        const delta = linear(g, `${m.up.label} · down`, m.up, m.downT);
        loraMerge(g, `${m.target.label} += lora`, m.target, delta, scale);
        g.release(delta);
      }
    });
    try {
      g.submit(what);
      await this.rt.queueDone();
      await this.rt.assertHealthy();
    } finally {
      g.destroy();
    }
    for (const m of merged) m.loader.slices.refresh(m.target);
  }
}

/** A pair's rank, its alpha / rank factor (1 without alpha), out features and in features (x kernel taps). */
function geometry(layer: LoraLayer): { rank: number; k: number; out: number; inner: number } {
  const rank = layer.down.shape[0]!;
  return { rank, k: layer.alpha === null ? 1 : layer.alpha / rank, out: layer.up.shape[0]!, inner: numel(layer.down.shape) / rank };
}

function checkScale(scale: number, name: string): void {
  if (typeof scale !== 'number' || !Number.isFinite(scale)) throw new LoraError('scale', `LoRA '${name}': scale must be a finite number, got ${JSON.stringify(scale)}`);
}


// LoRA adapters merged into a loaded model's weights on the GPU: W += scale · (alpha / rank) ·
// up · down for every adapted module, as diffusers' fuse_lora does. Merging costs nothing per step;
// a scale change merges the difference, and unloading merges the negation, so adapters can be
// re-weighted and removed without reloading the model (in f16 weights each merge rounds once, as
// diffusers' unfuse_lora does). Each adapter keeps its small up and down matrices on the GPU for that.
import type { Runtime } from '../gpu/runtime.ts';
import { planGraph } from '../graph/graph.ts';
import { numel, type Tensor } from '../graph/tensor.ts';
import { kohyaNames, sgmToDiffusers, type LoraComponent, type LoraLayer } from '../io/lora_file.ts';
import { linear } from '../kernels/gemm.ts';
import { loraMerge } from '../kernels/lora_merge.ts';
import type { WeightLoader } from './loader.ts';
import { LoraError } from '../errors.ts';

/** The loaders of the components a LoRA may adapt (absent: the model has no such component). */
export type LoraTargets = Partial<Record<LoraComponent, WeightLoader>>;

interface Merged {
  loader: WeightLoader;
  target: Tensor;
  /** up · (alpha / rank), f32 [out, rank] */
  up: Tensor;
  /** downᵀ, f32 [in·kh·kw, rank] */
  downT: Tensor;
}

export interface LoraInfo {
  name: string;
  scale: number;
  /** Modules adapted, per component. */
  layers: Partial<Record<LoraComponent, number>>;
}

class Adapter {
  constructor(
    readonly name: string,
    public scale: number,
    readonly merged: Merged[],
  ) {}
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

  /** unetLayersPerBlock: the U-Net's layers_per_block, to read kohya names in the original SD layout (input_blocks_…). */
  constructor(
    private readonly rt: Runtime,
    private readonly targets: LoraTargets,
    private readonly unetLayersPerBlock: number | null = null,
  ) {}

  list(): LoraInfo[] {
    return [...this.adapters.values()].map((a) => {
      const layers: Partial<Record<LoraComponent, number>> = {};
      for (const m of a.merged) {
        const c = (Object.entries(this.targets) as [LoraComponent, WeightLoader][]).find(([, l]) => l === m.loader)![0];
        layers[c] = (layers[c] ?? 0) + 1;
      }
      return { name: a.name, scale: a.scale, layers };
    });
  }

  has(name: string): boolean {
    return this.adapters.has(name);
  }

  /** Resolves every layer to a weight of the model (all must match), then merges them at `scale`. */
  async load(name: string, layers: LoraLayer[], scale: number, where: string): Promise<void> {
    if (this.adapters.has(name)) throw new LoraError('name', `a LoRA named '${name}' is already loaded (unload it first, or give another name)`);
    checkScale(scale, name);
    const resolved = this.resolve(layers, where);
    const merged: Merged[] = [];
    try {
      for (const r of resolved) {
        const rank = r.layer.down.shape[0]!;
        const k = r.layer.alpha === null ? 1 : r.layer.alpha / rank;
        const out = r.layer.up.shape[0]!;
        const inner = numel(r.layer.down.shape) / rank;
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
    this.adapters.set(name, new Adapter(name, scale, merged));
  }

  /** New scales for loaded adapters (by name); each merges the difference. */
  async setScales(scales: Record<string, number>): Promise<void> {
    for (const [name, s] of Object.entries(scales)) {
      if (!this.adapters.has(name)) throw new LoraError('name', `no LoRA named '${name}' is loaded (loaded: ${[...this.adapters.keys()].join(', ') || 'none'})`);
      checkScale(s, name);
    }
    for (const [name, s] of Object.entries(scales)) {
      const a = this.adapters.get(name)!;
      if (s === a.scale) continue;
      await this.merge(a.merged, s - a.scale, `rescaling LoRA '${name}'`);
      a.scale = s;
    }
  }

  /** Takes an adapter (or all) out of the weights. */
  async unload(name?: string): Promise<void> {
    const names = name === undefined ? [...this.adapters.keys()] : [name];
    for (const n of names) {
      const a = this.adapters.get(n);
      if (!a) throw new LoraError('name', `no LoRA named '${n}' is loaded (loaded: ${[...this.adapters.keys()].join(', ') || 'none'})`);
      await this.merge(a.merged, -a.scale, `unloading LoRA '${n}'`);
      a.merged.forEach((m) => this.free(m));
      this.adapters.delete(n);
    }
  }

  destroy(): void {
    for (const a of this.adapters.values()) a.merged.forEach((m) => this.free(m));
    this.adapters.clear();
  }

  private free(m: Merged): void {
    this.rt.destroyBuffer(m.up.buffer);
    this.rt.destroyBuffer(m.downT.buffer);
  }

  private resolve(layers: LoraLayer[], where: string) {
    const out: { layer: LoraLayer; loader: WeightLoader; target: Tensor; key: string }[] = [];
    const unmatched: string[] = [];
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
        if (module === undefined && layer.component === 'unet' && this.unetLayersPerBlock !== null) {
          const mapped = sgmToDiffusers(layer.module, this.unetLayersPerBlock);
          if (mapped !== null) module = names.get(mapped);
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
    if (out.length === 0) {
      throw new LoraError('no-match', `${where}: none of its ${layers.length} LoRA layers names a module of this model (first: ${unmatched.slice(0, 3).join('; ')}); is it for another architecture?`);
    }
    if (unmatched.length) {
      throw new LoraError('no-match', `${where}: ${unmatched.length} of its ${layers.length} LoRA layers name no module of this model: ${unmatched.slice(0, 5).join('; ')}${unmatched.length > 5 ? '; …' : ''}`);
    }
    return out;
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
      await this.rt.device.queue.onSubmittedWorkDone();
      await this.rt.assertHealthy();
    } finally {
      g.destroy();
    }
    for (const m of merged) m.loader.slices.refresh(m.target);
  }
}

function checkScale(scale: number, name: string): void {
  if (typeof scale !== 'number' || !Number.isFinite(scale)) throw new LoraError('scale', `LoRA '${name}': scale must be a finite number, got ${JSON.stringify(scale)}`);
}


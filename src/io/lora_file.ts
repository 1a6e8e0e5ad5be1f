// LoRA files as diffusers and kohya write them, read into one form: per model component, the
// module each low-rank pair adapts, its down and up matrices, and its alpha. GPU-free.
//
// Key forms (after an optional component prefix):
// - PEFT (diffusers >= 0.24 save_lora_weights): `M.lora_A.weight` (down), `M.lora_B.weight` (up)
// - LoRA-compatible layers: `M.lora.down.weight`, `M.lora.up.weight`
// - transformers text encoders, diffusers' older save: `M.lora_linear_layer.down.weight` / `.up.weight`
// - attention processors (diffusers' first format): `X.processor.to_q_lora.down.weight` for module
//   `X.to_q` (to_out_lora adapts `X.to_out.0`)
// - kohya (sd-scripts): `lora_unet_<module with dots as underscores>.lora_down.weight`,
//   `.lora_up.weight`, `.alpha`; `lora_te_` (text_encoder), `lora_te1_` / `lora_te2_` (SDXL)
// Component prefixes: `unet.`, `text_encoder.`, `text_encoder_2.`; a file without any adapts the
// U-Net (diffusers' first format). A kohya name is resolved against the model's own module names
// (underscores are ambiguous: `down_blocks_0` is `down_blocks.0`), see resolveKohya.
import type { HostTensor } from './safetensors.ts';
import { toFloat32 } from './safetensors.ts';
import { LoraError } from '../errors.ts';

export type LoraComponent = 'unet' | 'text_encoder' | 'text_encoder_2';

/** The key forms readLoraLayers takes, for documentation (the support table). */
export const LORA_KEY_FORMS = [
  'diffusers (`lora.down` / `lora.up`, `lora_linear_layer`, attention processors)',
  'PEFT (`lora_A` / `lora_B`)',
  'kohya (`lora_unet_`, `lora_te_`, `lora_te1_` / `lora_te2_`, alpha; diffusers or original SD block names)',
] as const;

export interface LoraLayer {
  component: LoraComponent;
  /** The adapted module's path in its component (diffusers' name), or for kohya the flat name until resolved. */
  module: string;
  /** kohya: `module` is the flat name (underscores) still to be matched against the model. */
  flat: boolean;
  /** [rank, in, (kh, kw)] */
  down: { shape: number[]; data: Float32Array };
  /** [out, rank, (1, 1)] */
  up: { shape: number[]; data: Float32Array };
  /** alpha / rank scales the product (kohya's network alpha); absent: 1. */
  alpha: number | null;
}

const KOHYA: [string, LoraComponent][] = [
  ['lora_unet_', 'unet'],
  ['lora_te1_', 'text_encoder'],
  ['lora_te2_', 'text_encoder_2'],
  ['lora_te_', 'text_encoder'],
];
const PREFIXES: [string, LoraComponent][] = [
  ['unet.', 'unet'],
  ['text_encoder_2.', 'text_encoder_2'],
  ['text_encoder.', 'text_encoder'],
];
/** [suffix, role] of the pairs' keys; the module is what comes before. */
const SUFFIXES: [string, 'down' | 'up' | 'alpha'][] = [
  ['.lora_A.weight', 'down'],
  ['.lora_B.weight', 'up'],
  ['.lora.down.weight', 'down'],
  ['.lora.up.weight', 'up'],
  ['.lora_linear_layer.down.weight', 'down'],
  ['.lora_linear_layer.up.weight', 'up'],
  ['.lora_down.weight', 'down'],
  ['.lora_up.weight', 'up'],
  ['.alpha', 'alpha'],
];
/** Other adapter kinds that come in .safetensors files too, named in the error. */
const OTHER = [['.hada_w1_a', 'LoHa'], ['.lokr_w1', 'LoKr'], ['.oft_blocks', 'OFT'], ['.diff', 'a full weight difference'], ['.dora_scale', 'DoRA']] as const;

function processorModule(path: string): string | null {
  const m = /^(.*)\.processor\.(to_q|to_k|to_v|to_out)_lora$/.exec(path);
  if (m) return `${m[1]}.${m[2] === 'to_out' ? 'to_out.0' : m[2]}`;
  const t = /^(.*\.self_attn)\.to_(q|k|v|out)_lora$/.exec(path);
  return t ? `${t[1]}.${t[2]}_proj` : null;
}

/** Splits a LoRA file's tensors into layers; `where` names the file in errors. */
export function readLoraLayers(tensors: Map<string, HostTensor>, where: string): LoraLayer[] {
  const parts = new Map<string, { component: LoraComponent; module: string; flat: boolean; down?: HostTensor; up?: HostTensor; alpha?: HostTensor }>();
  const unknown: string[] = [];
  for (const [key, t] of tensors) {
    const other = OTHER.find(([s]) => key.endsWith(s));
    if (other) throw new LoraError('format', `${where}: '${key}' is a ${other[1]} adapter, not a LoRA (only LoRA's low-rank pairs are supported)`);
    // The attention-processor form, `X.processor.to_q_lora.down.weight`, and diffusers 0.15's
    // text-encoder form of it, `X.self_attn.to_q_lora.down.weight` (q_proj ... out_proj).
    const proc = /^(.*\.(?:processor|self_attn)\.(?:to_q|to_k|to_v|to_out)_lora)\.(down|up)\.weight$/.exec(key);
    const suffix = proc ? null : SUFFIXES.find(([s]) => key.endsWith(s));
    if (!proc && !suffix) {
      unknown.push(key);
      continue;
    }
    const role = proc ? (proc[2] as 'down' | 'up') : suffix![1];
    let rest = proc ? proc[1]! : key.slice(0, -suffix![0].length);
    let component: LoraComponent = 'unet';
    let flat = false;
    const kohya = KOHYA.find(([p]) => rest.startsWith(p));
    if (kohya) {
      component = kohya[1];
      rest = rest.slice(kohya[0].length);
      flat = true;
    } else {
      const prefix = PREFIXES.find(([p]) => rest.startsWith(p));
      if (prefix) {
        component = prefix[1];
        rest = rest.slice(prefix[0].length);
      }
      rest = processorModule(rest) ?? rest;
    }
    const id = `${component}:${rest}`;
    const entry = parts.get(id) ?? { component, module: rest, flat };
    parts.set(id, entry);
    entry[role] = t;
  }
  if (unknown.length) throw new LoraError('format', `${where}: ${unknown.length} keys are not LoRA weights in a known form (diffusers, PEFT or kohya): ${unknown.slice(0, 5).join(', ')}`);
  if (parts.size === 0) throw new LoraError('format', `${where}: no LoRA weights in the file`);
  const layers: LoraLayer[] = [];
  for (const p of parts.values()) {
    const name = `${p.component} ${p.module}`;
    if (!p.down && !p.up) throw new LoraError('shape', `${where}: layer ${name} has an alpha but no up or down matrix`);
    if (!p.down || !p.up) throw new LoraError('shape', `${where}: layer ${name} has ${p.down ? 'a down' : 'an up'} matrix but no ${p.down ? 'up' : 'down'} one`);
    const down = { shape: p.down.shape, data: toFloat32(p.down) };
    const up = { shape: p.up.shape, data: toFloat32(p.up) };
    const rank = down.shape[0]!;
    const upOk = up.shape.length >= 2 && up.shape[1] === rank && up.shape.slice(2).every((d) => d === 1);
    if (down.shape.length < 2 || !upOk) {
      throw new LoraError('shape', `${where}: layer ${name}: up [${up.shape.join(', ')}] and down [${down.shape.join(', ')}] are not a rank-${rank} pair (up must be [out, rank, (1, 1)])`);
    }
    let alpha: number | null = null;
    if (p.alpha) {
      const a = toFloat32(p.alpha);
      if (a.length !== 1 || !Number.isFinite(a[0])) throw new LoraError('shape', `${where}: layer ${name}: alpha must be one finite number`);
      alpha = a[0]!;
    }
    layers.push({ component: p.component, module: p.module, flat: p.flat, down, up, alpha });
  }
  return layers;
}

/**
 * kohya's flat name (`down_blocks_0_attentions_0_proj_in`) for each of the model's modules
 * (`down_blocks.0.attentions.0.proj_in`), so a flat name is looked up rather than guessed back.
 */
export function kohyaNames(modules: Iterable<string>): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of modules) out.set(m.replace(/\./g, '_'), m);
  return out;
}

const INNER = ['resnets', 'attentions', 'upsamplers'];

/**
 * A kohya U-Net name in the original (SGM/LDM) layout, `input_blocks_4_1_transformer_blocks_0_attn1_to_q`,
 * as diffusers v0.25.1 renames it (_maybe_map_sgm_blocks_to_diffusers, then
 * _convert_kohya_lora_to_diffusers' LDM renames), still flat: `down_blocks_1_attentions_0_…`.
 * Names in diffusers' layout come back unchanged; null for one that cannot be mapped.
 */
export function sgmToDiffusers(flat: string, layersPerBlock: number): string | null {
  let parts = flat.split('_');
  const kind = `${parts[0]}_${parts[1]}`;
  const per = layersPerBlock + 1;
  if (kind === 'input_blocks' || kind === 'output_blocks') {
    const i = Number(parts[2]);
    const inner = Number(parts[3]);
    if (!Number.isInteger(i) || !Number.isInteger(inner)) return null;
    const op = parts.includes('op');
    const j = kind === 'input_blocks' ? i - 1 : i;
    if (j < 0) return null;
    const innerKey = op ? 'downsamplers' : INNER[inner];
    if (!innerKey) return null;
    const layer = op || (kind === 'output_blocks' && inner >= 2) ? '0' : String(j % per);
    parts = [kind === 'input_blocks' ? 'down' : 'up', 'blocks', String(Math.floor(j / per)), innerKey, layer, ...parts.slice(4)];
  } else if (kind === 'middle_block') {
    const part = [['resnets', '0'], ['attentions', '0'], ['resnets', '1']][Number(parts[2])];
    if (!part) return null;
    parts = ['mid', 'block', ...part, ...parts.slice(3)];
  } else {
    return flat;
  }
  return parts
    .join('_')
    .replace(/_in_layers_2$/, '_conv1')
    .replace(/_out_layers_3$/, '_conv2')
    .replace(/_emb_layers_1$/, '_time_emb_proj')
    .replace(/_op$/, '_conv')
    .replace(/_skip_connection$/, '_conv_shortcut');
}

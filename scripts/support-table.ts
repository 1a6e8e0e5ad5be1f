// Prints the README's support table: the pipelines, model classes, block types and schedulers
// Fresco accepts, taken from the lists the code itself checks configs against, so the table
// cannot claim more (or less) than the code does. tests/cli/support_table.test.ts checks that
// README.md holds exactly this output between the marker comments.
//
//   node --import tsx scripts/support-table.ts           # print the table
//   node --import tsx scripts/support-table.ts --write   # replace it in README.md
//
// The pipeline and block type lists are the ones the config readers check against, imported; the
// model classes are the `_class_name` / `architectures` each config reader insists on, read from
// the source (a call's argument, not a list); the schedulers come from the GPU-free registry.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { COND_DOWN_TYPES, COND_UP_TYPES } from '../src/models/unet_2d_condition_config.ts';
import { UNET_DOWN_TYPES, UNET_UP_TYPES } from '../src/models/unet_2d_config.ts';
import { DECODER_TYPES, ENCODER_TYPES } from '../src/models/vae_config.ts';
import { PIPELINES } from '../src/pipelines/sd_folder.ts';
import { SCHEDULERS } from '../src/schedulers/registry.ts';
import { LORA_KEY_FORMS } from '../src/io/lora_file.ts';
import { INVERSION_FORMS } from '../src/io/textual_inversion.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const BEGIN = '<!-- support-table:begin -->';
export const END = '<!-- support-table:end -->';

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.gen.ts') ? [p] : [];
  });
}

/** Every src/ file's text, by path relative to the repository root. */
function sources(): Map<string, string> {
  return new Map(sourceFiles(join(ROOT, 'src')).sort().map((p) => [relative(ROOT, p), readFileSync(p, 'utf8')]));
}

/** The model classes the config readers accept: modelConfigReader(config, where, 'Class', ...) and CLIP's architectures check. */
function modelClasses(src: Map<string, string>): string[] {
  const names = new Set<string>();
  for (const text of src.values()) {
    for (const m of text.matchAll(/modelConfigReader\([^,()]+,[^,()]+,\s*'(\w+)'/g)) names.add(m[1]!);
    for (const m of text.matchAll(/only\('architectures',\s*\[\['(\w+)'\]\]/g)) names.add(m[1]!);
  }
  if (names.size === 0) throw new Error('support-table: found no model classes (modelConfigReader calls) under src/');
  return [...names];
}

const code = (names: readonly string[]): string => names.map((n) => `\`${n}\``).join(', ');

function byRole(classes: string[], test: RegExp): string[] {
  return classes.filter((c) => test.test(c)).sort();
}

/** The markdown table, without the markers. */
export function supportTable(): string {
  const src = sources();
  const classes = modelClasses(src);
  const unets = byRole(classes, /UNet/);
  const vaes = byRole(classes, /Autoencoder|VQ/);
  const text = byRole(classes, /CLIP/);
  const controlnets = byRole(classes, /ControlNet/);
  const other = classes.filter((c) => !unets.includes(c) && !vaes.includes(c) && !text.includes(c) && !controlnets.includes(c)).sort();
  const rows: [string, string][] = [
    ['Pipeline folders (`model_index.json`)', code(PIPELINES)],
    ['U-Nets (`config.json` `_class_name`)', code(unets)],
    ['`UNet2DModel` blocks', `down: ${code(UNET_DOWN_TYPES)}<br>up: ${code(UNET_UP_TYPES)}`],
    ['`UNet2DConditionModel` blocks', `down: ${code(COND_DOWN_TYPES)}<br>up: ${code(COND_UP_TYPES)}`],
    ['Autoencoders', code(vaes)],
    ['`AutoencoderKL` / `VQModel` blocks', `encoder: ${code(ENCODER_TYPES)}<br>decoder: ${code(DECODER_TYPES)}`],
    ['Text encoders', code(text)],
    ['ControlNets (`controlnet`, `--controlnet`; Stable Diffusion 1.x/2.x)', `${code(controlnets)}, one or several; down: ${code(COND_DOWN_TYPES)}`],
    ['LoRA files (`loadLora`, `--lora`; `.safetensors`)', LORA_KEY_FORMS.join('<br>')],
    ['Textual inversion (`loadTextualInversion`; `.safetensors`)', INVERSION_FORMS.join(', ')],
    ...(other.length ? [['Other models', code(other)] as [string, string]] : []),
    ['Schedulers (`--scheduler`: diffusers class)', SCHEDULERS.map((s) => `\`${s.name}\`: ${s.className}${'config' in s ? ` (${Object.entries(s.config).map(([k, v]) => `${k} ${v}`).join(', ')})` : ''}`).join('<br>')],
  ];
  return ['| | supported |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join('\n');
}

/** `readme` with the text between the markers replaced by `table`. */
export function withTable(readme: string, table: string): string {
  const b = readme.indexOf(BEGIN);
  const e = readme.indexOf(END);
  if (b < 0 || e < b) throw new Error(`README.md has no ${BEGIN} ... ${END} section`);
  return `${readme.slice(0, b + BEGIN.length)}\n${table}\n${readme.slice(e)}`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const table = supportTable();
  if (process.argv.includes('--write')) {
    const path = join(ROOT, 'README.md');
    const before = readFileSync(path, 'utf8');
    const after = withTable(before, table);
    if (after !== before) writeFileSync(path, after);
    console.log(after === before ? 'README.md: support table already up to date' : 'README.md: support table updated');
  } else {
    console.log(table);
  }
}

// Prints the README's support table: the pipelines, model classes, block types and schedulers
// Fresco accepts, taken from the lists the code itself checks configs against, so the table
// cannot claim more (or less) than the code does. tests/cli/support_table.test.ts checks that
// README.md holds exactly this output between the marker comments.
//
//   node --import tsx scripts/support-table.ts           # print the table
//   node --import tsx scripts/support-table.ts --write   # replace it in README.md
//
// The block type lists are module-private constants of the config readers (src/models/*_config.ts
// and the like), so they are read from the source text by name; the model classes are the
// `_class_name` / `architectures` each config reader insists on; the schedulers come from the
// GPU-free registry. Where a list moves to another file under src/, nothing here changes; where
// one is renamed or removed, this script fails and says which.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SCHEDULERS } from '../src/schedulers/registry.ts';

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

const quoted = (text: string): string[] => [...text.matchAll(/'([^']*)'|"([^"]*)"/g)].map((m) => m[1] ?? m[2]!);

/** The string array `const NAME = [...]` (exported or not) defined under src/; one definition, or equal ones. */
function constList(src: Map<string, string>, name: string): string[] {
  const re = new RegExp(`(?:^|\\n)\\s*(?:export\\s+)?const\\s+${name}\\b[^=]*=\\s*\\[([^\\]]*)\\]`);
  const found = new Map<string, string[]>();
  for (const [file, text] of src) {
    const m = re.exec(text);
    if (m) found.set(file, quoted(m[1]!));
  }
  if (found.size === 0) throw new Error(`support-table: no list 'const ${name} = [...]' under src/ (renamed or moved into code? update scripts/support-table.ts)`);
  const distinct = new Set([...found.values()].map((v) => JSON.stringify(v)));
  if (distinct.size > 1) throw new Error(`support-table: '${name}' is defined differently in ${[...found.keys()].join(', ')}`);
  const list = [...found.values()][0]!;
  if (list.length === 0) throw new Error(`support-table: '${name}' is empty`);
  return list;
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
  const other = classes.filter((c) => !unets.includes(c) && !vaes.includes(c) && !text.includes(c)).sort();
  const rows: [string, string][] = [
    ['Pipeline folders (`model_index.json`)', code(constList(src, 'PIPELINES'))],
    ['U-Nets (`config.json` `_class_name`)', code(unets)],
    ['`UNet2DModel` blocks', `down: ${code(constList(src, 'UNET_DOWN_TYPES'))}<br>up: ${code(constList(src, 'UNET_UP_TYPES'))}`],
    ['`UNet2DConditionModel` blocks', `down: ${code(constList(src, 'COND_DOWN_TYPES'))}<br>up: ${code(constList(src, 'COND_UP_TYPES'))}`],
    ['Autoencoders', code(vaes)],
    ['`AutoencoderKL` / `VQModel` blocks', `encoder: ${code(constList(src, 'ENCODER_TYPES'))}<br>decoder: ${code(constList(src, 'DECODER_TYPES'))}`],
    ['Text encoders', code(text)],
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

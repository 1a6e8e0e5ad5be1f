// Turns shaders/*.wgsl into one TypeScript module so the same kernel text reaches Node (tsx),
// vitest and the browser build without a bundler-specific import. Run by the npm scripts.
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function bundleShaders() {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const dir = join(root, 'shaders');
  const entries = readdirSync(dir).filter((f) => f.endsWith('.wgsl')).sort()
    .map((f) => `  ${JSON.stringify(f.replace(/\.wgsl$/, ''))}: ${JSON.stringify(readFileSync(join(dir, f), 'utf8'))},`);
  const text = `// Generated from shaders/*.wgsl by scripts/bundle-shaders.mjs. Do not edit.\nexport const shaderSources: Record<string, string> = {\n${entries.join('\n')}\n};\n`;
  const out = join(root, 'src', 'kernels', 'shaders.gen.ts');
  if (!existsSync(out) || readFileSync(out, 'utf8') !== text) writeFileSync(out, text);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) bundleShaders();

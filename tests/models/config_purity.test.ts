// The config readers run before anything touches the GPU (and in tests without one): no module
// they load at run time may reach the GPU runtime, the graph or a kernel.
import { readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const READERS = ['unet_2d_config', 'unet_2d_condition_config', 'controlnet_config', 'autoencoder_kl_config', 'vq_model_config', 'autoencoder_tiny_config', 'clip_text_config'];
/** Pure modules under otherwise GPU-side folders. */
const ALLOWED = new Set(['src/kernels/activation.ts']);

/** Every module `file` loads at run time (type-only imports are erased), itself included. */
function runtimeImports(file: string, seen = new Set<string>()): Set<string> {
  if (seen.has(file)) return seen;
  seen.add(file);
  const src = readFileSync(file, 'utf8');
  for (const m of src.matchAll(/^(?:import|export)\s+(?!type\s)[^;]*?from\s+'(\.[^']+)'/gms)) runtimeImports(relative('.', join(dirname(file), m[1]!)), seen);
  return seen;
}

describe('config readers load no GPU code', () => {
  for (const name of READERS) {
    it(name, () => {
      const gpu = [...runtimeImports(`src/models/${name}.ts`)].filter((f) => /^src\/(gpu|graph|kernels)\//.test(f) && !ALLOWED.has(f));
      expect(gpu).toEqual([]);
      // The readers' own modules are the pure ones beside them, not the model builders.
      expect([...runtimeImports(`src/models/${name}.ts`)].filter((f) => f.startsWith('src/models/') && !/_config\.ts$|\/config(_types)?\.ts$/.test(f))).toEqual([]);
    });
  }
});

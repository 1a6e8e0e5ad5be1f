// The same A/B as `npm run bench:ort -- --ab`, in Node on the default adapter (lavapipe here):
//   node scripts/bundle-shaders.mjs && npx tsx bench/ort/ab_node.ts [variant.wgsl] [--batches 1,2] [--runs 5]
import { readFileSync } from 'node:fs';
import { getGpu } from '../../src/gpu/device.ts';
import { loadModelFolder } from '../../src/io/model_folder.ts';
import { abGemm } from './ab_core.ts';

const arg = (name: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const variantPath = process.argv[2] && !process.argv[2].startsWith('--') ? process.argv[2] : new URL('./gemm.v1.wgsl', import.meta.url).pathname;
const batches = (arg('batches') ?? '1,2').split(',').map(Number);
const ctx = await getGpu();
const folder = await loadModelFolder(new URL('../../weights/fashion-ldm/unet', import.meta.url).pathname);
const r = await abGemm(ctx, folder, readFileSync(variantPath, 'utf8'), batches, Number(arg('runs') ?? 5), Number(arg('warmup') ?? 2));
console.log(JSON.stringify({ variant: variantPath, ...r }, null, 2));
process.exit(0);

// The browser side of `npm run bench:ort -- --ab`: see ab_core.ts.
// Query: ?variant=/bench-ort/gemm.v1.wgsl&batches=1,2&runs=N&warmup=W
import { createGpu } from '../../src/gpu/device.ts';
import { loadModelFrom } from '../../src/io/model_folder.ts';
import { urlFolderReader } from '../../src/io/url_reader.ts';
import { abGemm } from './ab_core.ts';
import { publish } from './page_result.ts';

const q = new URLSearchParams(location.search);
const variantUrl = q.get('variant') ?? '/bench-ort/gemm.v1.wgsl';
const batches = (q.get('batches') ?? '1,2').split(',').map(Number);
const runs = Number(q.get('runs') ?? 5);
const warmup = Number(q.get('warmup') ?? 2);

async function main() {
  const ctx = await createGpu();
  const folder = await loadModelFrom(urlFolderReader('/weights/fashion-ldm/unet', { cache: false }), '/weights/fashion-ldm/unet');
  const res = await fetch(variantUrl);
  if (!res.ok) throw new Error(`${variantUrl}: HTTP ${res.status}`);
  return { variant: variantUrl, ...(await abGemm(ctx, folder, await res.text(), batches, runs, warmup)) };
}

publish(main());

// Run on the GPU machine before the benches: does Dawn (the kit's dawn.node) find a Vulkan adapter
// under the current environment? Prints the adapter and exits 0, or exits 1 so run.sh can try
// another driver setting before spending the lease on benches that would all fail the same way.
//   node bench/device/probe.mjs <kit folder>
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const kit = resolve(process.argv[2] ?? '.device-kit');
const webgpu = await import(pathToFileURL(resolve(kit, 'node_modules/webgpu/index.js')).href);
// The benches' Dawn flags (run.sh sets them: the f16 toggle for NVIDIA's driver among them), so the
// features printed are the ones the benches get.
const flags = process.env.FRESCO_DAWN_FLAGS?.split(/\s+/).filter(Boolean) ?? [];
const gpu = webgpu.create(flags);
const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
if (!adapter) {
  console.log('probe: no adapter');
  process.exit(1);
}
const { vendor, architecture, device, description } = adapter.info;
console.log(`probe: ${JSON.stringify({ vendor, architecture, device, description })}`);
console.log(`probe: features ${[...adapter.features].sort().join(' ')}`);
// What the subgroup reductions (WGSL subgroup_id) and a future tensor-core GEMM (subgroup matrices) could use.
console.log(`probe: WGSL language features ${[...(gpu.wgslLanguageFeatures ?? [])].sort().join(' ')}`);
console.log(`probe: subgroup sizes ${adapter.info.subgroupMinSize}-${adapter.info.subgroupMaxSize}, subgroup matrix configs ${JSON.stringify(adapter.info.subgroupMatrixConfigs ?? [])}`);
// Dawn lists its experimental features only with allow_unsafe_apis: is the tensor-core route
// (chromium-experimental-subgroup-matrix) there for a later session to build on?
const enabled = flags.filter((f) => f.startsWith('enable-dawn-features=')).flatMap((f) => f.slice(21).split(','));
const unsafe = await webgpu
  .create([...flags.filter((f) => !f.startsWith('enable-dawn-features=')), `enable-dawn-features=${[...enabled, 'allow_unsafe_apis'].join(',')}`])
  .requestAdapter({ powerPreference: 'high-performance' });
const experimental = unsafe ? [...unsafe.features].filter((f) => !adapter.features.has(f)).sort() : [];
console.log(`probe: with allow_unsafe_apis also ${experimental.join(' ') || 'nothing'}; subgroup matrix configs ${JSON.stringify(unsafe?.info.subgroupMatrixConfigs ?? [])}`);
console.log(`probe: maxStorageBufferBindingSize ${adapter.limits.maxStorageBufferBindingSize}, maxBufferSize ${adapter.limits.maxBufferSize}`);
// A CPU driver found instead of the GPU's would make every figure meaningless here.
process.exit(/swiftshader|llvmpipe|lavapipe/i.test(`${vendor} ${device} ${description}`) && !process.env.FRESCO_PROBE_ANY ? 1 : 0);

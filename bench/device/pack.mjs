// Builds .device-kit/: what a GPU machine without Node or network needs to run Fresco's Node
// benchmarks (bench/device/run.sh). The benches are bundled to plain JavaScript (the WGSL inside),
// and Node and dawn.node travel xz-compressed, since the whole tree that travels must stay under
// 64 MiB. Run here, on x86-64 Linux:  node bench/device/pack.mjs
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const kit = join(root, '.device-kit');
if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error(`the GPU machines are x86-64 Linux; this is ${process.platform}-${process.arch}`);

rmSync(kit, { recursive: true, force: true });
mkdirSync(join(kit, 'bench'), { recursive: true });
execFileSync(process.execPath, [join(root, 'scripts/bundle-shaders.mjs')], { stdio: 'inherit' });

// Each bench resolves the repository as its own folder's parent, so the bundles sit in
// .device-kit/bench/ and run.sh links weights/ and bench/sd-configs/ in beside them.
await build({
  entryPoints: ['generate', 'compile', 'sd', 'gemm', 'attention', 'reduce'].map((n) => join(root, 'bench', `${n}.ts`)),
  outdir: join(kit, 'bench'),
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['webgpu'],
  // pngjs is CommonJS and requires Node builtins; an ES module bundle needs a require for them.
  banner: { js: "import { createRequire as __frescoRequire } from 'node:module'; const require = __frescoRequire(import.meta.url);" },
  logLevel: 'warning',
});

const webgpu = join(root, 'node_modules/webgpu');
const wgKit = join(kit, 'node_modules/webgpu');
mkdirSync(join(wgKit, 'dist/linux-x64'), { recursive: true });
for (const f of ['index.js', 'package.json', 'LICENSE.md']) copyFileSync(join(webgpu, f), join(wgKit, f));
const xz = (from, to) => writeFileSync(to, execFileSync('xz', ['-6', '-T0', '-c', from], { maxBuffer: 1 << 30 }));
xz(join(webgpu, 'dist/linux-x64/dawn.node'), join(kit, 'dawn.node.xz'));
xz(process.execPath, join(kit, 'node.xz'));

// The Vulkan loader and GL vendor-neutral dispatch: the GPU machines have NVIDIA's driver, but
// not libvulkan.so.1, and NVIDIA's Vulkan ICD (libGLX_nvidia) answers no vkCreateInstance
// without glvnd's libraries beside it (seen on an H200 machine: 'Found no drivers').
execFileSync('apt-get', ['download', '-qq', 'libvulkan1', 'libglvnd0', 'libglx0', 'libgl1', 'libegl1', 'libopengl0', 'libgles2'], { cwd: kit, stdio: 'inherit' });

const size = (p) => (statSync(p).isDirectory() ? readdirSync(p).reduce((s, f) => s + size(join(p, f)), 0) : statSync(p).size);
const kitBytes = size(kit);
// What else travels: tracked files and untracked ones git does not ignore.
const listed = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root }).toString().split('\0').filter(Boolean);
const treeBytes = listed.reduce((s, f) => s + (existsSync(join(root, f)) ? statSync(join(root, f)).size : 0), 0);
const MiB = (b) => `${(b / 2 ** 20).toFixed(1)} MiB`;
console.log(`${relative(process.cwd(), kit)}: ${MiB(kitBytes)}; the working tree: ${MiB(treeBytes)}; together ${MiB(kitBytes + treeBytes)} of the 64 MiB a device call may carry`);
if (kitBytes + treeBytes > 64 * 2 ** 20) {
  console.log('Over the limit: set the test fixtures aside for the device calls (bench/device/README.md: bench/device/tree.sh slim).');
}

#!/usr/bin/env bash
# Runs on a lent GPU machine (no Node, no network), from the repository root, with .device-kit
# carried (bench/device/pack.mjs made it): Fresco's Node/Dawn benches on the GPU through Vulkan,
# then the same models in PyTorch on the same GPU. Everything worth keeping lands in $OUT.
#   bench/device/run.sh [quick]      (quick: small sizes and few repeats, to check the kit on a CPU adapter;
#                                    SKIP_TORCH=1 leaves PyTorch out, e.g. when an earlier call measured it;
#                                    STAGES="fashion sd gemm" runs only those: fashion compile fashion-tiled
#                                    sd gemm attention reduce sd-feeds sd-f16math sd-winograd sd-f32 torch)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/fresco-out}
mkdir -p "$OUT"
KIT=.device-kit
LOG=$OUT/run.log
exec > >(tee -a "$LOG") 2>&1
quick=${1:-}
stage() { echo; echo "== $1 ($(date -u +%H:%M:%S))"; }

stage setup
BIN=$(mktemp -d)
xz -dc "$KIT/node.xz" >"$BIN/node" && chmod +x "$BIN/node"
xz -dc "$KIT/dawn.node.xz" >"$KIT/node_modules/webgpu/dist/linux-x64/dawn.node"
# libvulkan1 and glvnd (pack.mjs says why); unpacked only where the machine lacks them.
if ! ldconfig -p | grep -q 'libvulkan.so.1 ' || ! ldconfig -p | grep -q 'libGLdispatch.so.0 '; then
  for f in "$KIT"/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
nv_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && [ -f "$nv_icd" ] && export VK_DRIVER_FILES=$nv_icd
nv_egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -f "$nv_egl" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$nv_egl
"$BIN/node" --version
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
ln -sfn ../weights "$KIT/weights"
ln -sfn ../../bench/sd-configs "$KIT/bench/sd-configs"
ln -sfn ../../bench/kernels "$KIT/bench/kernels"
NODE="$BIN/node"
PY=${PYTHON:-python3}
# Exact timestamps, and Dawn's toggle that lets NVIDIA's Vulkan driver offer shader-f16 (without it
# Dawn offered none on an H200, 2026-11-26, and every stage ran f32). probe.mjs and the benches read it.
export FRESCO_DAWN_FLAGS=${FRESCO_DAWN_FLAGS:-disable-dawn-features=timestamp_quantization enable-dawn-features=vulkan_enable_f16_on_nvidia}

# Find the GPU through Vulkan before the benches: the default loader search, then NVIDIA's ICD named
# outright, then with its library folder on the path, then any other NVIDIA ICD file on the machine.
stage "probe: Dawn's Vulkan adapter"
found=
if [ "$quick" = quick ]; then export FRESCO_PROBE_ANY=1; fi
if "$NODE" bench/device/probe.mjs "$KIT"; then found=1; else
  ls -la /usr/local/nvidia/share/vulkan/icd.d /etc/vulkan/icd.d /usr/share/vulkan/icd.d 2>&1 | head -20
  cat "$nv_icd" 2>/dev/null
  ldconfig -p | grep -i -E 'libvulkan|GLdispatch|GLX|glcore|glvkspirv|gpucomp' | head -20
  ls /usr/local/nvidia/lib64 2>/dev/null | tr '\n' ' '; echo
  ldd /usr/local/nvidia/lib64/libGLX_nvidia.so.0 2>&1 | grep -i 'not found'
  export LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/usr/local/nvidia/lib:${LD_LIBRARY_PATH:-}
  for icd in "$nv_icd" $(find /usr/local/nvidia /usr/share/vulkan /etc/vulkan -name 'nvidia*.json' 2>/dev/null); do
    [ -f "$icd" ] || continue
    unset VK_DRIVER_FILES; export VK_ICD_FILENAMES=$icd
    echo "probe: trying VK_ICD_FILENAMES=$icd with LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    if VK_LOADER_DEBUG=error "$NODE" bench/device/probe.mjs "$KIT"; then found=1; break; fi
  done
fi
[ -n "$found" ] || { echo "probe: Dawn found no GPU adapter; nothing to bench"; exit 1; }

if [ "$quick" = quick ]; then
  gen=(--steps 5 --repeat 3 --gen-repeat 1 --profile-runs 1); gemm=(--quick); sd=(--runs 1 --size 64); sdq=("${sd[@]}"); torchq=(--runs 3 --steps 5 --sd-latent 8)
else
  gen=(); gemm=(); sd=(--runs 5); sdq=(--runs 3); torchq=()
fi

# Stages in order of worth, each with a cap, so one call (a lease is 15 device minutes, start
# included) ends well inside its limit; results are copied to $OUT after each, so a stage killed
# at its cap still leaves the earlier ones' files behind.
# $OUT takes names of letters, digits, '.', '_' and '-' only.
want() { [ -z "${STAGES:-}" ] || [[ " $STAGES " == *" $1 "* ]]; }
keep() { for f in "$KIT"/bench/results/*.json; do [ -f "$f" ] && cp "$f" "$OUT/$(basename "$f" | tr -c 'A-Za-z0-9._\n-' '_')"; done; true; }

# Without shader-f16 (the toggle above not taking) the SD stages run f32 only.
prec=f32
"$NODE" bench/device/probe.mjs "$KIT" 2>/dev/null | grep -q ' shader-f16' && prec=f16

if want fashion; then
  stage "fresco: fashion-ldm (bench/generate.ts)"
  timeout 90 "$NODE" "$KIT/bench/generate.mjs" "${gen[@]}"; keep
fi

if want compile; then
  stage "fresco: what the shipped model's first run compiles, pipeline by pipeline (bench/compile.ts)"
  timeout 60 "$NODE" "$KIT/bench/compile.mjs"; keep
fi

if want fashion-tiled; then
  stage "fresco: fashion-ldm U-Net steps, GEMM feed 'tiled' (128 x 128 tiles, all of K) for comparison"
  timeout 60 "$NODE" "$KIT/bench/generate.mjs" "${gen[@]}" --gen-repeat 1 --profile-runs 0 --gemm-feed tiled; keep
fi

if want sd; then
  stage "fresco: SD 1.5-shaped text, U-Net step, 512x512 decode, $prec, per-kernel profile (bench/sd.ts)"
  timeout 120 "$NODE" "$KIT/bench/sd.mjs" --precision "$prec" --profile "${sd[@]}"; keep
fi

if want gemm; then
  stage "fresco: GEMM/conv vs FMA peak, each way of running the GEMM core (bench/gemm.ts)"
  timeout 60 "$NODE" "$KIT/bench/gemm.mjs" "${gemm[@]}"; keep
  if [ "$prec" = f16 ]; then
    stage "fresco: the same with f16 activations and weights, f16 math beside (bench/gemm.ts --activations f16)"
    timeout 60 "$NODE" "$KIT/bench/gemm.mjs" "${gemm[@]}" --activations f16; keep
  fi
fi

if want attention; then
  stage "fresco: attention kernels vs a naive three-pass version, up to 4096 tokens, K/V tiles staged and read directly (bench/attention.ts --big --stage on,off)"
  timeout 60 "$NODE" "$KIT/bench/attention.mjs" --big --stage on,off
fi

if want reduce; then
  stage "fresco: norms and row softmax, subgroup reductions vs the workgroup tree (bench/reduce.ts --big)"
  timeout 60 "$NODE" "$KIT/bench/reduce.mjs" --big
fi

# The GEMM core's other ways on the same GPU (auto picks 'sized' there).
want sd-feeds && for f in tiled direct; do
  stage "fresco: SD 1.5-shaped U-Net step, $prec, GEMM feed '$f' (bench/sd.ts)"
  timeout 60 "$NODE" "$KIT/bench/sd.mjs" --precision "$prec" --stages unet --gemm-feed "$f" "${sdq[@]}"; keep
done

# f16 FMAs in the tiled GEMM (Runtime.gemmMath, opt-in until this measures it).
if [ "$prec" = f16 ] && want sd-f16math; then
  stage "fresco: SD 1.5-shaped U-Net step and decode, f16 with f16 math in the GEMM core (bench/sd.ts --gemm-math f16)"
  timeout 60 "$NODE" "$KIT/bench/sd.mjs" --precision f16 --gemm-math f16 --stages unet,decode --profile "${sdq[@]}"; keep
fi

# Stride-1 3x3 convs as Winograd F(2x2, 3x3) (Runtime.winograd: on by default on CPU adapters only).
if want sd-winograd; then
  stage "fresco: SD 1.5-shaped U-Net step and decode, $prec, Winograd convs (bench/sd.ts --winograd on)"
  timeout 60 "$NODE" "$KIT/bench/sd.mjs" --precision "$prec" --winograd on --stages unet,decode --profile "${sdq[@]}"; keep
fi

if [ "$prec" = f16 ] && want sd-f32; then
  stage "fresco: SD 1.5-shaped U-Net step and decode, f32 (bench/sd.ts)"
  timeout 60 "$NODE" "$KIT/bench/sd.mjs" --precision f32 --stages unet,decode "${sd[@]}"; keep
fi

if [ -z "${SKIP_TORCH:-}" ] && want torch; then
  stage "pytorch: the same models on the same GPU (bench/device/torch_bench.py)"
  timeout 120 "$PY" -B bench/device/torch_bench.py --out "$OUT/torch.json" "${torchq[@]}"
fi

stage "done"
ls -la "$OUT"

#!/usr/bin/env bash
# Runs on a lent GPU machine (no Node, no network), from the repository root, with .device-kit
# carried (bench/device/pack.mjs made it): Fresco's Node/Dawn benches on the GPU through Vulkan,
# then the same models in PyTorch on the same GPU. Everything worth keeping lands in $OUT.
#   bench/device/run.sh [quick]      (quick: small sizes and few repeats, to check the kit on a CPU adapter)
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
if ! ldconfig -p | grep -q 'libvulkan.so.1 '; then
  for f in "$KIT"/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
nv_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && [ -f "$nv_icd" ] && export VK_DRIVER_FILES=$nv_icd
"$BIN/node" --version
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
ln -sfn ../weights "$KIT/weights"
ln -sfn ../../bench/sd-configs "$KIT/bench/sd-configs"
ln -sfn ../../bench/kernels "$KIT/bench/kernels"
NODE="$BIN/node"
PY=${PYTHON:-python3}

if [ "$quick" = quick ]; then
  gen=(--steps 5 --repeat 3 --gen-repeat 1 --profile-runs 1); gemm=(--quick); sd=(--runs 1 --size 64); torchq=(--runs 3 --steps 5 --sd-latent 8)
else
  gen=(); gemm=(); sd=(--runs 5); torchq=()
fi

stage "fresco: fashion-ldm (bench/generate.ts)"
timeout 300 "$NODE" "$KIT/bench/generate.mjs" "${gen[@]}"

stage "fresco: GEMM/conv vs FMA peak (bench/gemm.ts)"
timeout 200 "$NODE" "$KIT/bench/gemm.mjs" "${gemm[@]}"

for p in f16 f32; do
  stage "fresco: SD 1.5-shaped text, U-Net step, 512x512 decode, $p (bench/sd.ts)"
  timeout 300 "$NODE" "$KIT/bench/sd.mjs" --precision "$p" "${sd[@]}"
done

# The GEMM core's other feed on the same GPU (auto picks 'tiled' there): is workgroup-memory tiling the faster one?
stage "fresco: SD 1.5-shaped U-Net step, f16, GEMM feed 'direct' (bench/sd.ts)"
timeout 150 "$NODE" "$KIT/bench/sd.mjs" --precision f16 --stages unet --gemm-feed direct "${sd[@]}"

stage "pytorch: the same models on the same GPU (bench/device/torch_bench.py)"
timeout 300 "$PY" -B bench/device/torch_bench.py --out "$OUT/torch.json" "${torchq[@]}"

cp "$KIT"/bench/results/*.json "$OUT"/ 2>/dev/null
stage "done"
ls -la "$OUT"

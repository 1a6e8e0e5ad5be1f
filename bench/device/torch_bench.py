"""PyTorch on the same GPU, for the figures Fresco's benches print: the fashion-ldm U-Net step at
batch 1 and at the CFG batch 2, a whole 25-step generation with its decode, and the Stable
Diffusion 1.5-shaped U-Net step (batch 2, 64x64 latents) and 512x512 VAE decode with random weights.

It runs scripts/reference (the float64 re-implementation checked against diffusers) in float32 and
float16 on CUDA, with attention through F.scaled_dot_product_attention as diffusers uses it on torch 2.
Eager mode, torch defaults (cuDNN benchmark on, TF32 as torch ships it): what a user of diffusers gets
without tuning. Needs torch only (no diffusers); runs on CPU too, slowly, to check the script.

    python3 bench/device/torch_bench.py [--out results.json] [--runs 10] [--skip-sd] [--device cuda]
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, os.path.join(ROOT, 'scripts', 'reference'))
import layers  # noqa: E402
import models  # noqa: E402
import safetensors_io  # noqa: E402
import weight_specs  # noqa: E402

_timestep_embedding = layers.timestep_embedding
_reference_sdpa = layers.sdpa


def _flash_sdpa(q, k, v, heads):
    # torch < 2.0 (Debian's 1.13, where the kit is checked on a CPU) has no fused attention:
    # the reference's own attention then runs, in the bench's dtype.
    if not hasattr(F, 'scaled_dot_product_attention'):
        return _reference_sdpa(q, k, v, heads)
    B, N, inner = q.shape
    d = inner // heads
    split = lambda t: t.reshape(B, t.shape[1], heads, d).transpose(1, 2)
    return F.scaled_dot_product_attention(split(q), split(k), split(v)).transpose(1, 2).reshape(B, N, inner)


def use_device(device, dtype):
    """The reference builds its sinusoid on the CPU in float64; move it where the weights are."""
    if device is None:  # back to the float64 reference as validated
        models.timestep_embedding, layers.sdpa = _timestep_embedding, _reference_sdpa
        return

    def emb(t, *a, **kw):
        return _timestep_embedding(t.cpu(), *a, **kw).to(device=device, dtype=dtype)
    models.timestep_embedding = emb
    layers.sdpa = _flash_sdpa


def load_weights(path, device, dtype):
    return {k: v.to(device=device, dtype=dtype) for k, v in safetensors_io.read(path).items()}


def random_weights(specs, device, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    W = {}
    for name, shape in specs.items():
        fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
        # Norm scales 1, everything else small enough that activations stay finite in float16.
        is_norm_scale = len(shape) == 1 and name.endswith('.weight') and 'norm' in name
        t = torch.ones(shape) if is_norm_scale else torch.randn(shape, generator=g) / math.sqrt(fan_in)
        W[name] = t.to(device=device, dtype=dtype)
    return W


def timed(fn, device, runs, warmup=3):
    """Median milliseconds of fn() over `runs` runs after warm-up, and the first run's time."""
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    t0 = time.perf_counter()
    fn()
    sync()
    first = (time.perf_counter() - t0) * 1e3
    for _ in range(warmup - 1):
        fn()
    sync()
    times = []
    for _ in range(runs):
        if device.type == 'cuda':
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        else:
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
    return {'ms': statistics.median(times), 'firstMs': first, 'runs': runs}


def read_json(*parts):
    with open(os.path.join(ROOT, *parts)) as f:
        return json.load(f)


def fashion(device, dtype, runs, steps):
    use_device(device, dtype)
    ucfg = read_json('weights', 'fashion-ldm', 'unet', 'config.json')
    vcfg = read_json('weights', 'fashion-ldm', 'vae', 'config.json')
    U = load_weights(os.path.join(ROOT, 'weights/fashion-ldm/unet/diffusion_pytorch_model.safetensors'), device, dtype)
    V = load_weights(os.path.join(ROOT, 'weights/fashion-ldm/vae/diffusion_pytorch_model.safetensors'), device, dtype)
    size = ucfg['sample_size']
    g = torch.Generator().manual_seed(3)
    out = {}
    with torch.inference_mode():
        for batch in (1, 2):
            x = torch.randn(batch, ucfg['in_channels'], size, size, generator=g).to(device, dtype)
            labels = torch.tensor([7, ucfg['num_class_embeds'] - 1][:batch], device=device)
            t = torch.tensor([500])
            out[f'unetStepB{batch}'] = timed(lambda: models.unet_2d(U, ucfg, x, t, labels), device, runs)
            if batch == 2:
                # The timed model is the validated one: compare with the float64 reference on the CPU.
                got = models.unet_2d(U, ucfg, x, t, labels).double().cpu()
                use_device(None, None)
                W64 = {k: v.double().cpu() for k, v in U.items()}
                ref = models.unet_2d(W64, ucfg, x.double().cpu(), t, labels.cpu())
                use_device(device, dtype)
                out['unetVsFloat64'] = ((got - ref).abs().max() / ref.abs().max()).item()

        # A generation as the pipeline runs it: CFG batch of 2 per step, a DDIM-like update, the decode.
        x0 = torch.randn(1, ucfg['in_channels'], size, size, generator=g).to(device, dtype)
        labels = torch.tensor([7, ucfg['num_class_embeds'] - 1], device=device)
        scale = vcfg.get('scaling_factor', 1.0)

        def generate():
            x = x0
            for i in range(steps):
                t = torch.tensor([999 - i * (1000 // steps)])
                eps = models.unet_2d(U, ucfg, torch.cat([x, x]), t, labels)
                cond, uncond = eps.chunk(2)
                x = x - 0.01 * (uncond + 3.0 * (cond - uncond))
            return models.vae_decode(V, vcfg, x / scale).clamp(-1, 1)

        out['generation'] = timed(generate, device, max(1, runs // 3), warmup=1)
        out['generation']['steps'] = steps
    return out


def sd15(device, dtype, runs, latent):
    use_device(device, dtype)
    cfgs = read_json('bench', 'sd-configs', 'sd15.json')
    ucfg, vcfg = cfgs['unet'], cfgs['vae']
    out = {}
    with torch.inference_mode():
        U = random_weights(weight_specs.unet_2d_condition(ucfg), device, dtype, 1)
        x = torch.randn(2, 4, latent, latent).to(device, dtype)
        ctx = torch.randn(2, 77, ucfg['cross_attention_dim']).to(device, dtype)
        out['latent'] = latent
        out['unetStepB2'] = timed(lambda: models.unet_2d_condition(U, ucfg, x, torch.tensor([500]), ctx), device, runs)
        del U
        V = random_weights(weight_specs.autoencoder_kl(vcfg), device, dtype, 2)
        z = torch.randn(1, 4, latent, latent).to(device, dtype)
        out[f'decode{latent * 8}'] = timed(lambda: models.vae_decode(V, vcfg, z), device, max(1, runs // 2))
        del V
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default=None)
    ap.add_argument('--runs', type=int, default=10)
    ap.add_argument('--steps', type=int, default=25)
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--skip-sd', action='store_true')
    ap.add_argument('--sd-latent', type=int, default=64, help='latent side of the SD 1.5 runs (64: 512x512 images)')
    ap.add_argument('--dtypes', default='float32,float16')
    a = ap.parse_args()
    device = torch.device(a.device)
    torch.backends.cudnn.benchmark = True
    result = {
        'torch': torch.__version__,
        'device': torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu',
        'settings': {'cudnnBenchmark': True, 'tf32Conv': torch.backends.cudnn.allow_tf32,
                     'tf32Matmul': torch.backends.cuda.matmul.allow_tf32, 'mode': 'eager'},
        'date': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
    }
    for name in a.dtypes.split(','):
        dtype = getattr(torch, name)
        if device.type == 'cpu' and dtype == torch.float16:
            continue
        r = {'fashionLdm': fashion(device, dtype, a.runs, a.steps)}
        if not a.skip_sd:
            r['sd15'] = sd15(device, dtype, a.runs, a.sd_latent)
        result[name] = r
        print(json.dumps({name: r}, indent=1), flush=True)
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    if a.out:
        with open(a.out, 'w') as f:
            json.dump(result, f, indent=2)
            f.write('\n')


if __name__ == '__main__':
    main()

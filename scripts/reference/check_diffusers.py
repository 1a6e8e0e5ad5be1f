"""Optional cross-check: runs diffusers v0.25.1's own UNet2DConditionModel / UNet2DModel / VQModel
(decode) / AutoencoderKL (encode: the posterior mean; decode) / AutoencoderTiny (decode), in float64, on every such case in tests/fixtures/variants and prints
max|diffusers − io 'out'| / max|out| (io 'text_embeds' and 'time_ids', for addition_embed_type 'text_time',
go in as added_cond_kwargs).
It needs what make_variants.py needs plus a diffusers v0.25.1 source tree (no install, no hub):

    git -C <diffusers clone> archive v0.25.1 src/diffusers | tar -x -C /tmp/dfsrc
    /tmp/refenv/bin/pip install --no-index --no-deps --target /tmp/dfextra numpy safetensors pillow regex \\
      requests urllib3 idna certifi charset_normalizer importlib_metadata zipp packaging pyyaml tqdm filelock
    PYTHONPATH=/tmp/dfextra /tmp/refenv/bin/python -W ignore check_diffusers.py /tmp/dfsrc/src

huggingface_hub is replaced by a stand-in written to a temporary folder (diffusers' model code only
imports names from it). The weights are loaded with load_state_dict(strict=True), so this also checks
that weight_specs gives diffusers' weight names and shapes for each case (VQModel decode cases leave
out the encoder's weights: those, and only those, may be missing). Expected: ratios ~1e-8 (io 'out'
is stored in float32).

v0.25.1's FIR resampling (upsample_2d / downsample_2d / FirUpsample2D / FirDownsample2D, NCSN++'s
skip blocks) always builds its kernel in float32, which F.conv2d refuses beside float64 activations;
upfirdn2d_native is wrapped to cast the kernel to the input's dtype (lossless: its values are
multiples of 1/64).
"""
import inspect
import json
import os
import sys
import tempfile

import torch

import safetensors_io

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, '../../tests/fixtures/variants')

STUB = '''
def __getattr__(name):
    if name.startswith('__'):
        raise AttributeError(name)
    if name[0].isupper():
        return type(name, (), {'__init__': lambda self, *a, **k: None})
    def f(*a, **k):
        return a[0] if a and callable(a[0]) and not k else None
    return f
'''
CONSTANTS = "HF_HOME = '/tmp/hf'\nHF_HUB_CACHE = '/tmp/hf/hub'\nHF_HUB_DISABLE_TELEMETRY = True\nHF_HUB_OFFLINE = True\n"


def stub_hub():
    d = tempfile.mkdtemp(prefix='hubstub')
    pkg = os.path.join(d, 'huggingface_hub')
    os.makedirs(pkg)
    for m in ['__init__', 'utils', 'file_download', '_commit_api']:
        with open(os.path.join(pkg, m + '.py'), 'w') as f:
            f.write(STUB + ("REGEX_COMMIT_HASH = r'^[0-9a-f]{40}$'\n" if m == 'file_download' else ''))
    with open(os.path.join(pkg, 'constants.py'), 'w') as f:
        f.write(CONSTANTS)
    return d


def float64_fir():
    """Lets diffusers' FIR resampling run in float64 (see the module docstring); nothing else changes."""
    from diffusers.models import downsampling, upsampling
    native = upsampling.upfirdn2d_native

    def upfirdn2d_native(tensor, kernel, *args, **kwargs):
        return native(tensor, kernel.to(tensor.dtype), *args, **kwargs)

    upsampling.upfirdn2d_native = downsampling.upfirdn2d_native = upfirdn2d_native


def main(diffusers_src):
    sys.path[:0] = [stub_hub(), diffusers_src]
    float64_fir()
    from diffusers.models.unet_2d import UNet2DModel
    from diffusers.models.unet_2d_condition import UNet2DConditionModel
    from diffusers.models.vq_model import VQModel
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
    from diffusers.models.autoencoders.autoencoder_tiny import AutoencoderTiny
    classes = {'UNet2DConditionModel': UNet2DConditionModel, 'UNet2DModel': UNet2DModel, 'VQModel': VQModel,
               'AutoencoderKL': AutoencoderKL, 'AutoencoderTiny': AutoencoderTiny}
    worst = 0.0
    for name in sorted(os.listdir(ROOT)):
        d = os.path.join(ROOT, name)
        if name.startswith('sched-') or not os.path.exists(os.path.join(d, 'case.json')):
            continue
        with open(os.path.join(d, 'case.json')) as f:
            case = json.load(f)
        if case['class'] not in classes:
            continue
        with open(os.path.join(d, 'config.json')) as f:
            cfg = json.load(f)
        cls = classes[case['class']]
        # Keys the constructor does not take (AutoencoderTiny configs carry a stale block_out_channels)
        # are dropped, as diffusers' from_config does.
        params = inspect.signature(cls.__init__).parameters
        model = cls(**{k: v for k, v in cfg.items() if not k.startswith('_') and k in params})
        weights = safetensors_io.read(os.path.join(d, 'diffusion_pytorch_model.safetensors'))
        if case['class'] == 'VQModel':
            missing, unexpected = model.load_state_dict(weights, strict=False)
            bad = [k for k in missing if not k.startswith(('encoder.', 'quant_conv.'))] + list(unexpected)
            if bad:
                raise ValueError(f'{name}: weight names differ from diffusers: {bad[:8]}')
        else:
            model.load_state_dict(weights, strict=True)
        model = model.double().eval()
        if case['class'] == 'UNet2DModel' and cfg.get('class_embed_type') == 'timestep':
            # v0.25.1's UNet2DModel feeds time_proj(class_labels) (always float32) to class_embedding
            # without casting it to the model dtype, so it only runs in float32; cast it here as
            # UNet2DConditionModel does (a no-op for the time path, which casts t_emb itself).
            model.time_proj.register_forward_hook(lambda _m, _i, out: out.double())
        if case['class'] == 'UNet2DModel' and cfg.get('time_embedding_type') == 'fourier':
            # GaussianFourierProjection as a float32 model runs it, and as the reference and Fresco do: float32
            # weight and input (its sinusoid arguments reach ~1000 rad, where float64 moves sin/cos by ~1e-4 and
            # the case outputs by 3e-7 to 8e-7); UNet2DModel casts t_emb to the model's float64 itself.
            model.time_proj.float()
            model.time_proj.register_forward_pre_hook(lambda _m, args: (args[0].float(),))
        io = safetensors_io.read(os.path.join(d, 'io.safetensors'))
        get = lambda k: io[k].double() if io[k].is_floating_point() else io[k]
        kw = {k: get(k) for k in ('class_labels', 'timestep_cond') if k in io}
        # addition_embed_type 'text_time' (SDXL): text_embeds and time_ids go in added_cond_kwargs.
        added = {k: get(k) for k in ('text_embeds', 'time_ids') if k in io}
        if added:
            kw['added_cond_kwargs'] = added
        with torch.no_grad():
            if case['class'] == 'AutoencoderKL' and case['call'] == 'encode':
                out = model.encode(get('image')).latent_dist.mean
            elif case['call'] == 'decode':
                out = model.decode(get('latents')).sample
            else:
                args = [get('sample'), get('timestep')] + ([get('encoder_hidden_states')] if case['class'] == 'UNet2DConditionModel' else [])
                out = model(*args, **kw).sample
        ref = io['out'].double()
        ratio = (out - ref).abs().max().item() / ref.abs().max().item()
        worst = max(worst, ratio)
        print(f'{name}: diffusers v0.25.1 vs case out: ratio {ratio:.2e}')
    print(f'worst ratio {worst:.2e}')
    return 0 if worst <= 1e-5 else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else '/tmp/dfsrc/src'))

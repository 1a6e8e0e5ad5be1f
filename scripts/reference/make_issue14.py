"""Writes the issue-14 fixtures (LoRA, ControlNet, textual inversion) with diffusers v0.25.1's own code.

Outputs (paths relative to the repository root; see scripts/reference/README.md, "The LoRA, ControlNet and textual
inversion fixtures"):

- tests/fixtures/lora-tiny/: LoRA files for sd-tiny and sdxl-tiny in diffusers' format (written by v0.25.1's
  save_lora_weights from PEFT adapters, as its training scripts do) and in kohya's format (sd-scripts' key names,
  SDXL's with SGM block names), bad-input files, and loras.json (what each file holds, and what diffusers said
  loading the bad ones).
- tests/fixtures/controlnet-tiny/, controlnet-tiny-b/: random-weight ControlNetModel folders for sd-tiny's U-Net.
- tests/fixtures/textual-inversion-tiny/: embeddings in the three formats load_textual_inversion reads.
- tests/fixtures/pipeline-sd-tiny-{lora,lcm-lora,controlnet,textual-inversion}*/ and pipeline-sdxl-tiny-lora*/:
  pipeline.json + trace.safetensors (+ control images), the format of the pipeline-sd-tiny / pipeline-sdxl-tiny
  traces plus each case's own inputs.

How: diffusers v0.25.1's source tree, on the local torch 2.13 CPU, transformers 5, huggingface_hub 1.x and peft
0.21 (diffusers_compat.py and diffusers_compat_peft.py: import and naming shims only). Every run is its
StableDiffusionPipeline / StableDiffusionXLPipeline / StableDiffusionControlNetPipeline __call__, recorded by hooks
that change nothing; LoRA files go through load_lora_weights (PEFT backend), fuse_lora, set_adapters and
cross_attention_kwargs={'scale': s}; embeddings through load_textual_inversion. Before writing anything the script
regenerates pipeline-sd-tiny with this environment and compares it with the committed trace (made with torch 1.13
and the openai/CLIP text encoder), and after loading each LoRA file it checks that every LoRA layer diffusers built
holds the file's values with the expected alpha / rank.

    /tmp/sdxlenv/bin/python -B scripts/reference/make_issue14.py /tmp/d025full/src

(the SDXL fixtures' venv plus peft, accelerate and psutil; README.md). A rerun is byte-identical.
"""
import copy
import functools
import io
import json
import math
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, '..', '..'))
FIXTURES = os.path.join(ROOT, 'tests', 'fixtures')
SD = os.path.join(FIXTURES, 'sd-tiny')
SDXL = os.path.join(FIXTURES, 'sdxl-tiny')
LORA_DIR = 'lora-tiny'
TI_DIR = 'textual-inversion-tiny'
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402
from make_sdxl_pipeline import fill, write_json  # noqa: E402

# ----------------------------------------------------------------------------------------------------------------
# LoRA files
# ----------------------------------------------------------------------------------------------------------------

ATTN = ('to_q', 'to_k', 'to_v', 'to_out.0')
TE_ATTN = ('q_proj', 'k_proj', 'v_proj', 'out_proj')
TE_MLP = ('fc1', 'fc2')


def unet_targets(unet, attn=True, proj=False, ff=False, resnets=False, samplers=False):
    """Full module names of the U-Net that a LoRA covers (diffusers' names, sorted)."""
    out = []
    for name, m in unet.named_modules():
        last = name.split('.')
        if attn and '.transformer_blocks.' in name and ('attn1' in last or 'attn2' in last) and any(name.endswith('.' + a) for a in ATTN):
            out.append(name)
        elif proj and name.endswith(('.proj_in', '.proj_out')) and '.attentions.' in name:
            out.append(name)
        elif ff and '.transformer_blocks.' in name and name.endswith(('.ff.net.0.proj', '.ff.net.2')):
            out.append(name)
        elif resnets and '.resnets.' in name and name.endswith(('.conv1', '.conv2', '.time_emb_proj', '.conv_shortcut')):
            out.append(name)
        elif samplers and name.endswith(('.downsamplers.0.conv', '.upsamplers.0.conv')):
            out.append(name)
    return sorted(out)


def te_targets(te, mlp=False):
    names = []
    for name, m in te.named_modules():
        if name.endswith(tuple('.self_attn.' + a for a in TE_ATTN)) or (mlp and name.endswith(tuple('.mlp.' + a for a in TE_MLP))):
            names.append(name)
    return sorted(names)


def random_lora(model, targets, rank, seed, gain=0.5):
    """{module name: (down, up)}: down ~ N(0, 1/fan_in), up ~ gain·N(0, 1/rank); conv downs keep the kernel, ups are 1x1."""
    g = torch.Generator().manual_seed(seed)
    mods = dict(model.named_modules())
    out = {}
    for name in targets:
        m = mods[name]
        if isinstance(m, torch.nn.Conv2d):
            down_shape = (rank, m.in_channels, *m.kernel_size)
            up_shape = (m.out_channels, rank, 1, 1)
        else:
            down_shape = (rank, m.in_features)
            up_shape = (m.out_features, rank)
        fan_in = math.prod(down_shape[1:])
        down = torch.randn(down_shape, generator=g, dtype=torch.float64) / fan_in ** 0.5
        up = torch.randn(up_shape, generator=g, dtype=torch.float64) * gain / rank ** 0.5
        out[name] = (down.float(), up.float())
    return out


def te_file_name(te, name):
    """transformers 4's name of a CLIPTextModel module (what LoRA files hold); transformers 5 dropped `text_model.`."""
    from transformers import CLIPTextModel
    return f'text_model.{name}' if type(te) is CLIPTextModel and not name.startswith('text_model.') else name


def peft_state_dict(model, spec, rank, convert, te=None):
    """The state dict v0.25.1's training scripts save: a PEFT LoraConfig adapter on `model` holding `spec`'s values,
    get_peft_model_state_dict, then (convert) convert_state_dict_to_diffusers."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    model = copy.deepcopy(model)
    model.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights='gaussian', target_modules=sorted(spec)))
    mods = dict(model.named_modules())
    with torch.no_grad():
        for name, (down, up) in spec.items():
            mods[name].lora_A['default'].weight.copy_(down)
            mods[name].lora_B['default'].weight.copy_(up)
    sd = get_peft_model_state_dict(model)
    if te is not None:
        sd = {te_file_name(te, k): v for k, v in sd.items()}
    assert len(sd) == 2 * len(spec), (len(sd), len(spec))
    return convert_state_dict_to_diffusers(sd) if convert else sd


def kohya_unet_name(name, sgm_layers_per_block=None, has_attn=None):
    """sd-scripts' key stem for a U-Net module: diffusers' names for SD 1.x; SDXL LoRAs use SGM's block names."""
    if sgm_layers_per_block is not None:
        name = to_sgm(name, sgm_layers_per_block, has_attn)
    return 'lora_unet_' + name.replace('.', '_')


def to_sgm(name, lpb, has_attn):
    """diffusers -> SGM (generative-models) U-Net module names, the inverse of v0.25.1's
    _maybe_map_sgm_blocks_to_diffusers for layers_per_block `lpb`."""
    p = name.split('.')
    res = {'conv1': 'in_layers.2', 'conv2': 'out_layers.3', 'time_emb_proj': 'emb_layers.1', 'conv_shortcut': 'skip_connection'}
    if p[0] == 'down_blocks':
        b = int(p[1])
        if p[2] == 'downsamplers':
            return f'input_blocks.{1 + b * (lpb + 1) + lpb}.0.op'
        i = 1 + b * (lpb + 1) + int(p[3])
        inner = 0 if p[2] == 'resnets' else 1
        rest = p[4:]
    elif p[0] == 'up_blocks':
        b = int(p[1])
        if p[2] == 'upsamplers':
            return f'output_blocks.{b * (lpb + 1) + lpb}.{2 if has_attn(b) else 1}.conv'
        i = b * (lpb + 1) + int(p[3])
        inner = 0 if p[2] == 'resnets' else 1
        rest = p[4:]
    elif p[0] == 'mid_block':
        i = {('resnets', '0'): 0, ('attentions', '0'): 1, ('resnets', '1'): 2}[(p[1], p[2])]
        rest = p[3:]
        head = f'middle_block.{i}'
        return '.'.join([head] + ([res.get(rest[0], rest[0])] + rest[1:] if p[1] == 'resnets' else rest))
    else:
        raise ValueError(name)
    head = f"{'input_blocks' if p[0] == 'down_blocks' else 'output_blocks'}.{i}.{inner}"
    if inner == 0:
        rest = [res.get(rest[0], rest[0])] + rest[1:]
    return '.'.join([head] + rest)


def kohya_te_name(te, name, prefix):
    return f'{prefix}_' + te_file_name(te, name).replace('.', '_')


def kohya_entries(stem_of, spec, alpha, dtype=torch.float32):
    out = {}
    for name, (down, up) in spec.items():
        stem = stem_of(name)
        out[f'{stem}.lora_down.weight'] = down.to(dtype)
        out[f'{stem}.lora_up.weight'] = up.to(dtype)
        out[f'{stem}.alpha'] = torch.tensor(float(alpha), dtype=dtype)
    return out


def save_safetensors(path, sd, metadata=None):
    """safetensors_io.write (tensors by name, metadata keys sorted: safetensors' own writer orders metadata by a hash
    map, so files with several metadata keys would differ from run to run)."""
    safetensors_io.write(path, sd, metadata=metadata or {'format': 'pt'})


def lora_layers(model, adapter):
    """{module name: (lora_A weight, lora_B weight, scaling)} of one adapter, as PEFT holds it in `model`."""
    from peft.tuners.lora import LoraLayer
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, LoraLayer) and adapter in m.lora_A:
            out[name] = (m.lora_A[adapter].weight.detach(), m.lora_B[adapter].weight.detach(), m.scaling[adapter])
    return out


def check_loaded_lora(pipe, adapter, expected, base=None):
    """Every LoRA layer diffusers built for `adapter` holds the file's values, with scaling alpha / rank, and (base:
    {component: state dict before loading}) the model's own weights are unchanged.
    `expected`: {component: ({module name: (down, up)}, alpha / rank)}."""
    for comp in ('unet', 'text_encoder', 'text_encoder_2'):
        model = getattr(pipe, comp, None)
        if model is None:
            continue
        if base is not None:
            now = {k.replace('.base_layer.', '.'): v for k, v in model.state_dict().items() if '.lora_' not in k}
            assert sorted(now) == sorted(base[comp]), (comp, sorted(set(now) ^ set(base[comp]))[:4])
            assert all(torch.equal(now[k], v) for k, v in base[comp].items()), comp
        got = lora_layers(model, adapter)
        spec, scale = expected.get(comp, ({}, None))
        assert sorted(got) == sorted(spec), (comp, sorted(set(got) ^ set(spec))[:6])
        for name, (down, up) in spec.items():
            a, b, s = got[name]
            assert a.shape == down.shape and b.shape == up.shape, (comp, name, a.shape, down.shape)
            assert torch.equal(a.double(), down.double()) and torch.equal(b.double(), up.double()), (comp, name)
            assert abs(s - scale) < 1e-12, (comp, name, s, scale)


class LoraFile:
    """One LoRA file: its state dict, format, what it covers, and the values diffusers should build from it."""

    def __init__(self, name, base, fmt, sd, expected, about, metadata=None, ranks=None, alphas=None):
        self.name, self.base, self.fmt, self.sd, self.expected, self.about = name, base, fmt, sd, expected, about
        self.metadata, self.ranks, self.alphas = metadata, ranks, alphas

    @property
    def rel(self):
        return f'{LORA_DIR}/{self.name}'

    @property
    def path(self):
        return os.path.join(FIXTURES, LORA_DIR, self.name)


def make_lora_files():
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
    sd_pipe = StableDiffusionPipeline.from_pretrained(SD)
    xl_pipe = StableDiffusionXLPipeline.from_pretrained(SDXL)
    out_dir = os.path.join(FIXTURES, LORA_DIR)
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    files = []

    # 1. SD, diffusers format: U-Net attention + proj_in/proj_out (1x1 convs in sd-tiny) + feed-forward, rank 4;
    #    text encoder attention + MLP, rank 2. As v0.25.1's train_text_to_image_lora / SDXL dreambooth scripts save
    #    it: convert_state_dict_to_diffusers(get_peft_model_state_dict(model)), then save_lora_weights.
    u_spec = random_lora(sd_pipe.unet, unet_targets(sd_pipe.unet, proj=True, ff=True), 4, 101)
    t_spec = random_lora(sd_pipe.text_encoder, te_targets(sd_pipe.text_encoder, mlp=True), 2, 102)
    u_sd = peft_state_dict(sd_pipe.unet, u_spec, 4, True)
    t_sd = peft_state_dict(sd_pipe.text_encoder, t_spec, 2, True, te=sd_pipe.text_encoder)
    StableDiffusionPipeline.save_lora_weights(out_dir, unet_lora_layers=u_sd, text_encoder_lora_layers=t_sd,
                                              weight_name='sd-diffusers.safetensors', safe_serialization=True)
    files.append(LoraFile('sd-diffusers.safetensors', 'sd-tiny', 'diffusers', None,
                          {'unet': (u_spec, 1.0), 'text_encoder': (t_spec, 1.0)},
                          "diffusers format (convert_state_dict_to_diffusers keys: attention 'lora.down'/'lora.up', other U-Net layers "
                          "'lora_A'/'lora_B', text encoder 'lora_linear_layer.down'/'up'); U-Net attention to_q/to_k/to_v/to_out.0, "
                          "proj_in/proj_out (1x1 convs), ff.net.0.proj/ff.net.2, rank 4; text encoder q/k/v/out_proj and mlp fc1/fc2, "
                          "rank 2; no alphas (scale 1)", ranks={'unet': 4, 'text_encoder': 2}))

    # 1b. The same values under the keys v0.25.1's train_dreambooth_lora.py saves (get_peft_model_state_dict alone).
    u_sd_p = peft_state_dict(sd_pipe.unet, u_spec, 4, False)
    t_sd_p = peft_state_dict(sd_pipe.text_encoder, t_spec, 2, False, te=sd_pipe.text_encoder)
    StableDiffusionPipeline.save_lora_weights(out_dir, unet_lora_layers=u_sd_p, text_encoder_lora_layers=t_sd_p,
                                              weight_name='sd-diffusers-peft-keys.safetensors', safe_serialization=True)
    files.append(LoraFile('sd-diffusers-peft-keys.safetensors', 'sd-tiny', 'diffusers (PEFT keys)', None,
                          {'unet': (u_spec, 1.0), 'text_encoder': (t_spec, 1.0)},
                          "sd-diffusers.safetensors' tensors under the keys v0.25.1's train_dreambooth_lora.py saves "
                          "(get_peft_model_state_dict without convert_state_dict_to_diffusers: 'lora_A'/'lora_B' everywhere); "
                          "loads to the same layers", ranks={'unet': 4, 'text_encoder': 2}))

    # 2. SD, kohya format (LoCon-style: also resnets' conv1/conv2/time_emb_proj/conv_shortcut and the resamplers),
    #    U-Net rank 4 alpha 2 (scale 0.5), text encoder rank 2 alpha 3 (scale 1.5).
    ku_spec = random_lora(sd_pipe.unet, unet_targets(sd_pipe.unet, proj=True, ff=True, resnets=True, samplers=True), 4, 201)
    kt_spec = random_lora(sd_pipe.text_encoder, te_targets(sd_pipe.text_encoder, mlp=True), 2, 202)
    k_sd = kohya_entries(kohya_unet_name, ku_spec, 2.0)
    k_sd.update(kohya_entries(lambda n: kohya_te_name(sd_pipe.text_encoder, n, 'lora_te'), kt_spec, 3.0))
    meta = {'ss_network_module': 'networks.lora', 'ss_network_dim': '4', 'ss_network_alpha': '2.0',
            'ss_network_args': json.dumps({'conv_dim': '4', 'conv_alpha': '2.0'}), 'ss_base_model_version': 'sd_v1'}
    files.append(LoraFile('sd-kohya.safetensors', 'sd-tiny', 'kohya', k_sd,
                          {'unet': (ku_spec, 0.5), 'text_encoder': (kt_spec, 1.5)},
                          "kohya / sd-scripts format: lora_unet_<diffusers module path with _> and lora_te_text_model_...; "
                          ".lora_down.weight, .lora_up.weight, .alpha (0-d f32); U-Net attention, proj_in/proj_out, ff, resnets' "
                          "conv1/conv2 (3x3)/time_emb_proj/conv_shortcut (1x1), downsamplers.0.conv (stride 2), upsamplers.0.conv, "
                          "rank 4, alpha 2 (scale 0.5); text encoder attention + MLP, rank 2, alpha 3 (scale 1.5)",
                          metadata=meta, ranks={'unet': 4, 'text_encoder': 2}, alphas={'unet': 2.0, 'text_encoder': 3.0}))

    # 3. LCM-LoRA style: U-Net only (as latent-consistency/lcm-lora-sdv1-5), kohya keys, f16, rank 4 alpha 1.
    lc_spec = random_lora(sd_pipe.unet, unet_targets(sd_pipe.unet, proj=True, ff=True, resnets=True, samplers=True), 4, 301)
    lc_spec = {k: (d.half().float(), u.half().float()) for k, (d, u) in lc_spec.items()}
    files.append(LoraFile('sd-lcm-kohya-fp16.safetensors', 'sd-tiny', 'kohya', kohya_entries(kohya_unet_name, lc_spec, 1.0, torch.float16),
                          {'unet': (lc_spec, 0.25)},
                          "LCM-LoRA style: U-Net only, kohya keys as sd-kohya.safetensors, every tensor f16 (alpha too); rank 4, "
                          "alpha 1 (scale 0.25)", ranks={'unet': 4}, alphas={'unet': 1.0}))

    # 4. SDXL, diffusers format: U-Net attention + proj_in/proj_out (linear in sdxl-tiny) + ff, rank 4;
    #    text_encoder attention rank 2; text_encoder_2 attention + MLP rank 4.
    xu_spec = random_lora(xl_pipe.unet, unet_targets(xl_pipe.unet, proj=True, ff=True), 4, 401)
    xt_spec = random_lora(xl_pipe.text_encoder, te_targets(xl_pipe.text_encoder), 2, 402)
    xt2_spec = random_lora(xl_pipe.text_encoder_2, te_targets(xl_pipe.text_encoder_2, mlp=True), 4, 403)
    StableDiffusionXLPipeline.save_lora_weights(
        out_dir, unet_lora_layers=peft_state_dict(xl_pipe.unet, xu_spec, 4, True),
        text_encoder_lora_layers=peft_state_dict(xl_pipe.text_encoder, xt_spec, 2, True, te=xl_pipe.text_encoder),
        text_encoder_2_lora_layers=peft_state_dict(xl_pipe.text_encoder_2, xt2_spec, 4, True, te=xl_pipe.text_encoder_2),
        weight_name='sdxl-diffusers.safetensors', safe_serialization=True)
    files.append(LoraFile('sdxl-diffusers.safetensors', 'sdxl-tiny', 'diffusers', None,
                          {'unet': (xu_spec, 1.0), 'text_encoder': (xt_spec, 1.0), 'text_encoder_2': (xt2_spec, 1.0)},
                          "diffusers format (StableDiffusionXLPipeline.save_lora_weights: unet., text_encoder., text_encoder_2. "
                          "prefixes); U-Net attention, proj_in/proj_out (linear), ff, rank 4; text_encoder attention rank 2; "
                          "text_encoder_2 attention + MLP rank 4; no alphas", ranks={'unet': 4, 'text_encoder': 2, 'text_encoder_2': 4}))

    # 5. SDXL, kohya format with SGM block names (input_blocks / middle_block / output_blocks, in_layers_2, emb_layers_1,
    #    skip_connection, op), as sd-scripts writes SDXL LoRAs; lora_te1_ / lora_te2_. U-Net rank 4 alpha 6 (1.5),
    #    te1 rank 2 alpha 1 (0.5), te2 rank 4 alpha 3 (0.75).
    unet = xl_pipe.unet
    has_attn = lambda b: hasattr(unet.up_blocks[b], 'attentions')  # noqa: E731
    lpb = unet.config.layers_per_block
    xku_spec = random_lora(unet, unet_targets(unet, proj=True, ff=True, resnets=True, samplers=True), 4, 501)
    xkt_spec = random_lora(xl_pipe.text_encoder, te_targets(xl_pipe.text_encoder, mlp=True), 2, 502)
    xkt2_spec = random_lora(xl_pipe.text_encoder_2, te_targets(xl_pipe.text_encoder_2, mlp=True), 4, 503)
    xk_sd = kohya_entries(lambda n: kohya_unet_name(n, lpb, has_attn), xku_spec, 6.0)
    xk_sd.update(kohya_entries(lambda n: kohya_te_name(xl_pipe.text_encoder, n, 'lora_te1'), xkt_spec, 1.0))
    xk_sd.update(kohya_entries(lambda n: kohya_te_name(xl_pipe.text_encoder_2, n, 'lora_te2'), xkt2_spec, 3.0))
    meta = {'ss_network_module': 'networks.lora', 'ss_network_dim': '4', 'ss_network_alpha': '6.0',
            'ss_network_args': json.dumps({'conv_dim': '4', 'conv_alpha': '6.0'}), 'ss_base_model_version': 'sdxl_base_v1-0'}
    files.append(LoraFile('sdxl-kohya.safetensors', 'sdxl-tiny', 'kohya (SGM names)', xk_sd,
                          {'unet': (xku_spec, 1.5), 'text_encoder': (xkt_spec, 0.5), 'text_encoder_2': (xkt2_spec, 0.75)},
                          "kohya format with SGM U-Net block names (lora_unet_input_blocks_<i>_<j>_..., middle_block_<i>, "
                          "output_blocks_<i>_<j>; resnets' in_layers_2 / out_layers_3 / emb_layers_1 / skip_connection, "
                          "downsampler op, upsampler conv), mapped by v0.25.1's _maybe_map_sgm_blocks_to_diffusers with the "
                          "U-Net's layers_per_block; lora_te1_ (text_encoder) and lora_te2_ (text_encoder_2). U-Net rank 4 alpha 6 "
                          "(1.5); te1 attention + MLP rank 2 alpha 1 (0.5); te2 attention + MLP rank 4 alpha 3 (0.75)",
                          metadata=meta, ranks={'unet': 4, 'text_encoder': 2, 'text_encoder_2': 4},
                          alphas={'unet': 6.0, 'text_encoder': 1.0, 'text_encoder_2': 3.0}))

    for f in files:
        if f.sd is not None:
            save_safetensors(f.path, f.sd, f.metadata)
        f.keys = sorted(safetensors_io_keys(f.path))

    # Bad inputs. Keys for modules sd-tiny lacks (a third down block; a name kohya's converter passes through).
    g = torch.Generator().manual_seed(601)
    bad_keys = {
        'unet.down_blocks.3.attentions.0.transformer_blocks.0.attn1.to_q.lora.down.weight': torch.randn(4, 32, generator=g),
        'unet.down_blocks.3.attentions.0.transformer_blocks.0.attn1.to_q.lora.up.weight': torch.randn(32, 4, generator=g),
        'unet.up_blocks.4.attentions.1.transformer_blocks.0.attn2.to_k.lora.down.weight': torch.randn(4, 64, generator=g),
        'unet.up_blocks.4.attentions.1.transformer_blocks.0.attn2.to_k.lora.up.weight': torch.randn(32, 4, generator=g),
    }
    bad_kohya = {
        'lora_unet_input_blocks_7_1_transformer_blocks_0_attn1_to_q.lora_down.weight': torch.randn(4, 32, generator=g),
        'lora_unet_input_blocks_7_1_transformer_blocks_0_attn1_to_q.lora_up.weight': torch.randn(32, 4, generator=g),
        'lora_unet_input_blocks_7_1_transformer_blocks_0_attn1_to_q.alpha': torch.tensor(4.0),
    }
    # Rank mismatch: one module's up is [out, 3] beside a [4, in] down. Shape mismatch: a down with in_features 48.
    first4 = dict(list(u_spec.items())[:4])
    good = peft_state_dict(sd_pipe.unet, first4, 4, True)
    first_up = sorted(k for k in good if k.endswith('lora.up.weight'))[0]
    bad_rank = {f'unet.{k}': v for k, v in good.items()}
    bad_rank[f'unet.{first_up}'] = bad_rank[f'unet.{first_up}'][:, :3].clone()
    first_down = sorted(k for k in good if k.endswith('lora.down.weight'))[0]
    bad_shape = {f'unet.{k}': v for k, v in good.items()}
    bad_shape[f'unet.{first_down}'] = torch.randn(4, 48, generator=g)
    src = f"sd-diffusers.safetensors' first 4 U-Net LoRA modules ({', '.join(first4)}), rank 4"
    bad = [('bad-keys.safetensors', bad_keys, "diffusers-format keys for modules sd-tiny does not have (down_blocks.3, up_blocks.4)"),
           ('bad-keys-kohya.safetensors', bad_kohya, "a kohya SGM-style key (input_blocks_7) that SD 1.x loading does not map: no such module"),
           ('bad-rank.safetensors', bad_rank, f"{src}, but unet.{first_up} is {list(bad_rank[f'unet.{first_up}'].shape)} beside a [4, 32] down: rank mismatch"),
           ('bad-shape.safetensors', bad_shape, f"{src}, but unet.{first_down} is [4, 48] (the layer takes 32 features): shape mismatch")]
    bad_out = []
    for name, sd, about in bad:
        path = os.path.join(out_dir, name)
        save_safetensors(path, sd)
        pipe = StableDiffusionPipeline.from_pretrained(SD)
        try:
            pipe.load_lora_weights(path)
            err = None
        except Exception as e:  # what diffusers v0.25.1 (PEFT 0.21) says
            lines = [l.strip() for l in str(e).splitlines() if l.strip()]
            err = f"{type(e).__name__}: {' '.join(lines[:2])[:400]}"
        assert err is not None, f'diffusers loaded {name}'
        print('bad file', name, '->', err)
        bad_out.append({'file': name, 'base': 'sd-tiny', 'about': about, 'keys': sorted(sd),
                        'diffusers_error': err})
    return files, bad_out


def safetensors_io_keys(path):
    import safetensors
    with safetensors.safe_open(path, 'pt') as f:
        return list(f.keys())


def verify_lora_files(files):
    """load_lora_weights reads each file into the layers expected, with the expected values and alpha / rank."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
    for f in files:
        cls, folder = (StableDiffusionPipeline, SD) if f.base == 'sd-tiny' else (StableDiffusionXLPipeline, SDXL)
        pipe = cls.from_pretrained(folder)
        base = {c: {k: v.clone() for k, v in getattr(pipe, c).state_dict().items()}
                for c in ('unet', 'text_encoder', 'text_encoder_2') if getattr(pipe, c, None) is not None}
        pipe.load_lora_weights(f.path, adapter_name='x')
        check_loaded_lora(pipe, 'x', f.expected, base)
        print('loaded', f.name, {c: len(s) for c, (s, _) in f.expected.items()}, 'LoRA layers, scales', {c: s for c, (_, s) in f.expected.items()})


def write_lora_index(files, bad):
    entries = []
    for f in files:
        with open(f.path, 'rb') as fh:
            n = int.from_bytes(fh.read(8), 'little')
            header = json.loads(fh.read(n))
        entries.append({
            'file': f.name, 'base': f.base, 'format': f.fmt, 'about': f.about,
            'ranks': f.ranks, 'alphas': f.alphas,
            'scales': {c: s for c, (_, s) in f.expected.items()},
            'layers': {c: len(s) for c, (s, _) in f.expected.items()},
            'modules': {c: sorted(s) for c, (s, _) in f.expected.items()},
            'metadata': header.get('__metadata__'),
            'n_keys': len(f.keys),
            'keys_sample': f.keys[:3] + f.keys[-3:],
        })
    write_json(os.path.join(FIXTURES, LORA_DIR, 'loras.json'), {
        'made_by': 'scripts/reference/make_issue14.py (diffusers v0.25.1 source, PEFT 0.21, transformers 5.17, torch 2.13 CPU)',
        'notes': ("modules: the module names (diffusers' U-Net names; transformers 5's text encoder names, which drop "
                  "CLIPTextModel's 'text_model.' prefix that the files keep) that load_lora_weights gave a LoRA layer, checked "
                  "after loading: their lora_A / lora_B equal the file's down / up and their scaling is alpha / rank "
                  "(scales; 1 where the file has no alphas). Each file has one rank and one alpha per component."),
        'files': entries, 'bad_files': bad,
    })


# ----------------------------------------------------------------------------------------------------------------
# ControlNet and textual inversion inputs
# ----------------------------------------------------------------------------------------------------------------

CONTROLNETS = [
    dict(name='controlnet-tiny', seed=701, conditioning_embedding_out_channels=(4, 8), dtype=torch.float32),
    dict(name='controlnet-tiny-b', seed=702, conditioning_embedding_out_channels=(8, 16), dtype=torch.float16),
]


def make_controlnets():
    from diffusers import ControlNetModel, UNet2DConditionModel
    unet = UNet2DConditionModel.from_pretrained(SD, subfolder='unet')
    for spec in CONTROLNETS:
        cn = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=spec['conditioning_embedding_out_channels'])
        # Random weights everywhere: the zero convs (controlnet_down_blocks, controlnet_mid_block) and the conditioning
        # embedding's conv_out are zeros after from_unet, and the copied trunk would equal the U-Net's.
        fill(cn, spec['seed'])
        d = os.path.join(FIXTURES, spec['name'])
        if os.path.exists(d):
            shutil.rmtree(d)
        cn.to(spec['dtype']).save_pretrained(d, safe_serialization=True)
        back = ControlNetModel.from_pretrained(d, torch_dtype=torch.float32)
        for (k, a), (k2, b) in zip(sorted(cn.state_dict().items()), sorted(back.state_dict().items())):
            assert k == k2 and torch.equal(a.float(), b), k
        print(spec['name'], sum(p.numel() for p in cn.parameters()), 'parameters')


def control_png(path, w, h, kind, seed):
    """A deterministic RGB control image: 'edges' (white strokes on black, like a Canny map) or 'color' (a smooth
    gradient with shapes, like a segmentation or depth map)."""
    from PIL import Image, ImageDraw
    g = torch.Generator().manual_seed(seed)
    if kind == 'edges':
        img = Image.new('RGB', (w, h), (0, 0, 0))
        d = ImageDraw.Draw(img)
        for _ in range(4):
            x0, y0, x1, y1 = (int(v) for v in (torch.rand(4, generator=g) * torch.tensor([w, h, w, h])))
            d.line([(x0, y0), (x1, y1)], fill=(255, 255, 255), width=1)
        d.ellipse([w // 4, h // 4, 3 * w // 4, 3 * h // 4], outline=(255, 255, 255))
    else:
        img = Image.new('RGB', (w, h))
        px = img.load()
        for y in range(h):
            for x in range(w):
                px[x, y] = (int(255 * x / max(w - 1, 1)), int(255 * y / max(h - 1, 1)), int(128 + 100 * math.sin((x + 2 * y) / 3)))
        d = ImageDraw.Draw(img)
        d.rectangle([w // 5, h // 3, w // 2, 2 * h // 3], fill=(200, 40, 90))
        d.polygon([(w - 2, 1), (w // 2, h // 2), (w - 3, h - 2)], fill=(30, 220, 60))
    img.save(path, format='PNG')


TI_FILES = [
    # (file, token it defines, vectors, format)
    ('tiny-style.safetensors', '<tiny-style>', 3, 'diffusers multi-vector: a .safetensors with one key (the token) -> [3, 64]'),
    ('tiny-obj.pt', '<tiny-obj>', 2, "A1111 (torch.save): {'string_to_token': {'*': 265}, 'string_to_param': {'*': [2, 64]}, 'name': '<tiny-obj>', 'step': 500, 'sd_checkpoint': None, 'sd_checkpoint_name': None}"),
    ('tiny-cat.bin', '<tiny-cat>', 1, 'diffusers single-vector (torch.save, learned_embeds.bin style): {token: [64]}'),
]


def deterministic_torch_save(obj, path):
    buf = io.BytesIO()
    torch.save(obj, buf)
    with open(path, 'wb') as f:
        f.write(buf.getvalue())


def make_ti_files():
    d = os.path.join(FIXTURES, TI_DIR)
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    g = torch.Generator().manual_seed(801)
    vectors = {}
    for name, token, n, _ in TI_FILES:
        # The scale of sd-tiny's token embedding rows (0.5 N).
        v = (torch.randn(n, 64, generator=g, dtype=torch.float64) * 0.5).float()
        vectors[token] = v
        path = os.path.join(d, name)
        if name.endswith('.safetensors'):
            save_safetensors(path, {token: v})
        elif name.endswith('.pt'):
            deterministic_torch_save({'string_to_token': {'*': 265}, 'string_to_param': {'*': v}, 'name': token,
                                      'step': 500, 'sd_checkpoint': None, 'sd_checkpoint_name': None}, path)
        else:
            deterministic_torch_save({token: v[0]}, path)
    return vectors


# ----------------------------------------------------------------------------------------------------------------
# Recording
# ----------------------------------------------------------------------------------------------------------------

class Recorder:
    """Hooks that record one __call__ of a pipeline, leaving what it computes unchanged (as make_sdxl_pipeline's, plus
    ControlNet inputs and outputs and the LCM scheduler's noise). `replay_noise`: noise to return, in order, instead
    of drawing it (the float64 replay of an LCM run)."""

    def __init__(self, pipe, replay_noise=None):
        import diffusers.schedulers.scheduling_lcm as lcm
        self.pipe = pipe
        self.ids = {1: [], 2: []}
        self.unet, self.steps, self.time_ids, self.control, self.noise = [], [], [], [], []
        self.encoded = self.image = None
        self.handles = []
        self.restore = []
        encs = [(1, pipe.text_encoder)] + ([(2, pipe.text_encoder_2)] if getattr(pipe, 'text_encoder_2', None) is not None else [])
        for k, enc in encs:
            self.handles.append(enc.register_forward_hook(self._ids(k), with_kwargs=True))
        self.handles.append(pipe.unet.register_forward_hook(self._unet, with_kwargs=True))
        cn = getattr(pipe, 'controlnet', None)
        if cn is not None:
            nets = list(cn.nets) if hasattr(cn, 'nets') else [cn]
            for j, net in enumerate(nets):
                self.handles.append(net.register_forward_hook(self._controlnet(j), with_kwargs=True))
        self._wrap(pipe, 'encode_prompt', self._encode)
        if hasattr(pipe, '_get_add_time_ids'):
            self._wrap(pipe, '_get_add_time_ids', lambda a, k, out: self.time_ids.append(out.clone()))
        self._wrap(pipe.scheduler, 'step', self._step)
        self._wrap(pipe.vae, 'decode', self._decode)
        orig = lcm.randn_tensor
        queue = list(replay_noise) if replay_noise is not None else None

        def randn(shape, generator=None, device=None, dtype=None, layout=None):
            if queue is not None:
                out = queue.pop(0).to(dtype)
            else:
                out = orig(shape, generator=generator, device=device, dtype=dtype, layout=layout)
            self.noise.append(out.clone())
            return out
        lcm.randn_tensor = randn
        self.restore.append(lambda: setattr(lcm, 'randn_tensor', orig))

    def _wrap(self, obj, name, after):
        orig = getattr(obj, name)

        # functools.wraps keeps the signature visible: the pipeline passes `generator` (and `eta`) to scheduler.step
        # only if inspect.signature(step) names them.
        @functools.wraps(orig)
        def wrapped(*a, **k):
            out = orig(*a, **k)
            after(a, k, out)
            return out
        setattr(obj, name, wrapped)

    def _ids(self, k):
        def hook(mod, args, kwargs, out):
            ids = args[0] if args else kwargs['input_ids']
            self.ids[k].append(ids.clone())
        return hook

    def _unet(self, mod, args, kwargs, out):
        sample = args[0] if args else kwargs['sample']
        t = args[1] if len(args) > 1 else kwargs['timestep']
        added = kwargs.get('added_cond_kwargs') or {}
        down = kwargs.get('down_block_additional_residuals')
        mid = kwargs.get('mid_block_additional_residual')
        self.unet.append(dict(sample=sample.clone(), t=t, context=kwargs['encoder_hidden_states'].clone(),
                              added={k: v.clone() for k, v in added.items()}, out=out[0].clone(),
                              down=[d.clone() for d in down] if down is not None else None,
                              mid=mid.clone() if mid is not None else None))

    def _controlnet(self, j):
        def hook(mod, args, kwargs, out):
            self.control.append(dict(net=j, cond=kwargs['controlnet_cond'].clone(), scale=float(kwargs['conditioning_scale'])))
        return hook

    def _encode(self, a, k, out):
        self.encoded = [None if t is None else t.clone() for t in out]

    def _step(self, a, k, out):
        model_output = a[0] if a else k['model_output']
        sample = a[2] if len(a) > 2 else k['sample']
        prev = out[0] if isinstance(out, tuple) else out.prev_sample
        denoised = out[1] if isinstance(out, tuple) and len(out) > 1 else getattr(out, 'denoised', None)
        self.steps.append(dict(eps=model_output.clone(), sample=sample.clone(), prev=prev.clone(),
                               denoised=denoised.clone() if denoised is not None else None))

    def _decode(self, a, k, out):
        self.image = (out[0] if isinstance(out, tuple) else out.sample).clone()

    def close(self):
        for h in self.handles:
            h.remove()
        for r in self.restore:
            r()


def describe_trace(trace):
    """dtype and shape of each entry; per-step entries once as step{i}_<name> (with how many steps have one), entries
    only step 0 has under their own name."""
    out = {}
    for k, v in trace.items():
        key = k
        if k.startswith('step') and '_' in k:
            head, name = k.split('_', 1)
            count = sum(1 for j in trace if j.startswith('step') and '_' in j and j.split('_', 1)[1] == name)
            if count > 1:
                if head != 'step0':
                    continue
                key = 'step{i}_' + name
                if count != len(trace['timesteps']):
                    key += f' (i < {count})'
        out[key] = f'{str(v.dtype).replace("torch.", "")} {list(v.shape)}'
    return out


def rel(a, b):
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


# ----------------------------------------------------------------------------------------------------------------
# Cases
# ----------------------------------------------------------------------------------------------------------------

SD_PROMPT = 'a photograph of an astronaut riding a horse'
XL_PROMPT = 'a photograph of an astronaut riding a horse'


def sd_cases(lora, cn_images):
    """Each case: name, pipeline class name, model, setup(pipe) applying the case's inputs, call kwargs, pipeline.json
    extras, and sensitivity variants (setups whose images the trace must not match)."""
    L = {f.name: f for f in lora}

    def load(pipe, f, adapter=None):
        pipe.load_lora_weights(L[f].path, adapter_name=adapter)

    cases = []

    def fused(pipe, scale=0.7, file='sd-diffusers.safetensors'):
        load(pipe, file)
        pipe.fuse_lora(lora_scale=scale)
    cases.append(dict(
        name='pipeline-sd-tiny-lora-fused', pipeline='StableDiffusionPipeline', model='sd-tiny', scheduler=None, steps=8,
        guidance_scale=7.5, seed=42, prompt=SD_PROMPT, negative_prompt='blurry, low quality',
        setup=fused,
        lora={'adapters': [{'file': L['sd-diffusers.safetensors'].rel, 'format': 'diffusers', 'adapter_name': 'default_0'}],
              'fuse_lora': {'lora_scale': 0.7}, 'cross_attention_scale': None,
              'effective_scale': {'unet': 0.7, 'text_encoder': 0.7}},
        about="sd-diffusers.safetensors (U-Net attention, proj_in/proj_out, ff; text encoder attention + MLP) loaded with "
              "load_lora_weights and fused with fuse_lora(lora_scale=0.7): W + 0.7·up·down in the U-Net and the text encoder; "
              "the folder's PNDM scheduler",
        variants={'no LoRA': lambda p: None, 'fused at scale 1': lambda p: fused(p, 1.0),
                  'U-Net LoRA only': lambda p: (load(p, 'sd-diffusers.safetensors'), p.fuse_lora(lora_scale=0.7, fuse_text_encoder=False), p.disable_lora_for_text_encoder())}))

    def kohya(pipe):
        load(pipe, 'sd-kohya.safetensors')
    cases.append(dict(
        name='pipeline-sd-tiny-lora-kohya', pipeline='StableDiffusionPipeline', model='sd-tiny', scheduler='DDIMScheduler',
        steps=6, guidance_scale=6.0, seed=7, prompt='a watercolor painting of a lighthouse at dusk', negative_prompt='fog',
        cross_attention_kwargs={'scale': 0.5}, setup=kohya,
        lora={'adapters': [{'file': L['sd-kohya.safetensors'].rel, 'format': 'kohya', 'adapter_name': 'default_0'}],
              'fuse_lora': None, 'cross_attention_scale': 0.5,
              'effective_scale': {'unet': 0.25, 'text_encoder': 0.75}},
        about="sd-kohya.safetensors (LoCon-style: attention, proj, ff, resnet convs, time_emb_proj, conv_shortcut, "
              "resamplers; U-Net alpha 2 / rank 4, text encoder alpha 3 / rank 2) unfused, runtime scale 0.5 "
              "(cross_attention_kwargs={'scale': 0.5}: the pipeline passes it to encode_prompt as lora_scale and the "
              "U-Net scales every LoRA layer by it): U-Net W + 0.25·up·down, text encoder W + 0.75·up·down; DDIM",
        variants={'no LoRA': lambda p: None, 'alpha ignored (scale 1 · 0.5)': 'alpha-ignored', 'scale 1': 'scale-1'}))

    def two(pipe):
        load(pipe, 'sd-diffusers.safetensors', 'style')
        load(pipe, 'sd-kohya.safetensors', 'detail')
        pipe.set_adapters(['style', 'detail'], adapter_weights=[0.8, 0.4])
    cases.append(dict(
        name='pipeline-sd-tiny-lora-two', pipeline='StableDiffusionPipeline', model='sd-tiny', scheduler='EulerDiscreteScheduler',
        steps=6, guidance_scale=5.0, seed=3, prompt='a red fox in the snow, digital art', negative_prompt='low contrast',
        setup=two,
        lora={'adapters': [{'file': L['sd-diffusers.safetensors'].rel, 'format': 'diffusers', 'adapter_name': 'style', 'weight': 0.8},
                           {'file': L['sd-kohya.safetensors'].rel, 'format': 'kohya', 'adapter_name': 'detail', 'weight': 0.4}],
              'fuse_lora': None, 'cross_attention_scale': None,
              'effective_scale': {'style': {'unet': 0.8, 'text_encoder': 0.8}, 'detail': {'unet': 0.2, 'text_encoder': 0.6}}},
        about="two adapters at once: sd-diffusers.safetensors as 'style' and sd-kohya.safetensors as 'detail', "
              "set_adapters(['style', 'detail'], adapter_weights=[0.8, 0.4]) (PEFT set_scale: weight · alpha / rank, in the "
              "U-Net and the text encoder): each layer adds 0.8·up·down of 'style' and 0.2 (U-Net) / 0.6 (text encoder) "
              "·up·down of 'detail'; layers only 'detail' covers (resnets, resamplers) get its term alone; Euler",
        variants={'no LoRA': lambda p: None, "'style' alone": lambda p: (load(p, 'sd-diffusers.safetensors', 'style'), p.set_adapters(['style'], [0.8])),
                  'weights [1, 1]': lambda p: (load(p, 'sd-diffusers.safetensors', 'style'), load(p, 'sd-kohya.safetensors', 'detail'), p.set_adapters(['style', 'detail'], [1.0, 1.0]))}))

    def lcm(pipe):
        load(pipe, 'sd-lcm-kohya-fp16.safetensors')
    cases.append(dict(
        name='pipeline-sd-tiny-lcm-lora', pipeline='StableDiffusionPipeline', model='sd-tiny', scheduler='LCMScheduler',
        steps=4, guidance_scale=1.0, seed=11, prompt='a cat on a sofa', negative_prompt=None, setup=lcm,
        lora={'adapters': [{'file': L['sd-lcm-kohya-fp16.safetensors'].rel, 'format': 'kohya', 'adapter_name': 'default_0'}],
              'fuse_lora': None, 'cross_attention_scale': None, 'effective_scale': {'unet': 0.25}},
        about="LCM-LoRA style: sd-lcm-kohya-fp16.safetensors (U-Net only, f16 tensors, alpha 1 / rank 4) unfused, "
              "LCMScheduler.from_config(the folder's scheduler config), 4 steps, guidance_scale 1: no classifier-free "
              "guidance (the U-Net runs on the prompt alone, batch 1; no negative prompt is encoded). LCMScheduler.step "
              "adds fresh noise after every step but the last, drawn from the pipeline's generator: step{i}_noise",
        variants={'no LoRA': lambda p: None}))

    def ti(pipe):
        d = os.path.join(FIXTURES, TI_DIR)
        pipe.load_textual_inversion(os.path.join(d, 'tiny-style.safetensors'))
        pipe.load_textual_inversion(os.path.join(d, 'tiny-obj.pt'))
        pipe.load_textual_inversion(os.path.join(d, 'tiny-cat.bin'))
    cases.append(dict(
        name='pipeline-sd-tiny-textual-inversion', pipeline='StableDiffusionPipeline', model='sd-tiny', scheduler='DDIMScheduler',
        steps=6, guidance_scale=7.0, seed=5, prompt='a photo of <tiny-cat> in the style of <tiny-style> with <tiny-obj>',
        negative_prompt='<tiny-style>, blurry', setup=ti,
        about="three textual inversion embeddings loaded with load_textual_inversion, in the order tiny-style.safetensors "
              "(3 vectors), tiny-obj.pt (A1111, 2 vectors), tiny-cat.bin (1 vector): new ids 49408.. in that order "
              "(<tiny-style>, <tiny-style>_1, <tiny-style>_2, <tiny-obj>, <tiny-obj>_1, <tiny-cat>); maybe_convert_prompt "
              "expands each multi-vector token in the prompt and the negative prompt to '<t> <t>_1 ...'; DDIM",
        variants={'embedding rows shuffled': 'ti-shuffled'}))

    # ControlNet.
    cases.append(dict(
        name='pipeline-sd-tiny-controlnet', pipeline='StableDiffusionControlNetPipeline', model='sd-tiny', scheduler=None,
        steps=6, guidance_scale=7.5, seed=21, prompt=SD_PROMPT, negative_prompt='blurry, low quality',
        controlnets=[dict(model='controlnet-tiny', image=cn_images['edges16'], scale=0.8)],
        about="one ControlNetModel (controlnet-tiny), controlnet_conditioning_scale 0.8, a 16x16 control image (the "
              "generation size: no resize), guess_mode false; the folder's PNDM scheduler",
        variants={'no ControlNet (scale 0)': 'cn-scale-0', 'scale 1': 'cn-scale-1'}))
    cases.append(dict(
        name='pipeline-sd-tiny-controlnet-startend', pipeline='StableDiffusionControlNetPipeline', model='sd-tiny',
        scheduler='DDIMScheduler', steps=10, guidance_scale=6.0, seed=22, prompt='a watercolor painting of a lighthouse at dusk',
        negative_prompt=None, height=16, width=16,
        controlnets=[dict(model='controlnet-tiny', image=cn_images['color24x20'], scale=0.8, start=0.2, end=0.8)],
        about="one ControlNetModel, scale 0.8, control_guidance_start 0.2 / end 0.8: step i keeps the net when "
              "i/T >= 0.2 and (i+1)/T <= 0.8 (steps 2-7 of 10), otherwise it runs with conditioning_scale 0 "
              "(controlnet_scales); a 24x20 (WxH) control image resized to 16x16 by the control image processor "
              "(PIL Lanczos, then /255); no negative prompt (''); DDIM",
        variants={'no start/end': 'cn-no-startend'}))
    cases.append(dict(
        name='pipeline-sd-tiny-controlnet-multi', pipeline='StableDiffusionControlNetPipeline', model='sd-tiny',
        scheduler='EulerDiscreteScheduler', steps=6, guidance_scale=5.0, seed=23, prompt='a red fox in the snow, digital art',
        negative_prompt='low contrast', height=16, width=24,
        controlnets=[dict(model='controlnet-tiny', image=cn_images['edges24x16'], scale=0.7),
                     dict(model='controlnet-tiny-b', image=cn_images['color12x8'], scale=0.4)],
        about="two ControlNets (MultiControlNetModel: the U-Net gets the sum of their scaled residuals), scales "
              "[0.7, 0.4]; 24x16 (WxH) generation; net A's control image is 24x16 (no resize), net B's 12x8 (upscaled "
              "2x by PIL Lanczos); Euler",
        variants={'net A only': 'cn-first-only', 'scales swapped': 'cn-swapped'}))

    # SDXL LoRA.
    cases.append(dict(
        name='pipeline-sdxl-tiny-lora', pipeline='StableDiffusionXLPipeline', model='sdxl-tiny', scheduler=None,
        steps=5, guidance_scale=5.0, seed=31, prompt=XL_PROMPT, negative_prompt='blurry, low quality',
        setup=lambda p: p.load_lora_weights(L['sdxl-diffusers.safetensors'].path),
        lora={'adapters': [{'file': L['sdxl-diffusers.safetensors'].rel, 'format': 'diffusers', 'adapter_name': 'default_0'}],
              'fuse_lora': None, 'cross_attention_scale': None,
              'effective_scale': {'unet': 1.0, 'text_encoder': 1.0, 'text_encoder_2': 1.0}},
        about="sdxl-diffusers.safetensors (U-Net attention, linear proj_in/proj_out, ff; text_encoder attention; "
              "text_encoder_2 attention + MLP) unfused at scale 1; the folder's Euler scheduler",
        variants={'no LoRA': lambda p: None, 'text encoders without LoRA': lambda p: (p.load_lora_weights(L['sdxl-diffusers.safetensors'].path), p.disable_lora_for_text_encoder(p.text_encoder), p.disable_lora_for_text_encoder(p.text_encoder_2))}))
    cases.append(dict(
        name='pipeline-sdxl-tiny-lora-kohya', pipeline='StableDiffusionXLPipeline', model='sdxl-tiny', scheduler='DDIMScheduler',
        steps=5, guidance_scale=6.0, seed=32, prompt='a watercolor painting of a lighthouse at dusk',
        prompt_2='oil on canvas, a storm at sea!', negative_prompt='low contrast', cross_attention_kwargs={'scale': 0.6},
        setup=lambda p: p.load_lora_weights(L['sdxl-kohya.safetensors'].path),
        lora={'adapters': [{'file': L['sdxl-kohya.safetensors'].rel, 'format': 'kohya (SGM names)', 'adapter_name': 'default_0'}],
              'fuse_lora': None, 'cross_attention_scale': 0.6,
              'effective_scale': {'unet': 0.9, 'text_encoder': 0.3, 'text_encoder_2': 0.45}},
        about="sdxl-kohya.safetensors (SGM block names; U-Net alpha 6 / rank 4 with resnet convs and resamplers; "
              "lora_te1_ alpha 1 / rank 2, lora_te2_ alpha 3 / rank 4) unfused, runtime scale 0.6 "
              "(cross_attention_kwargs): U-Net 0.9, text_encoder 0.3, text_encoder_2 0.45 times up·down; prompt_2; DDIM",
        variants={'no LoRA': lambda p: None, 'alpha ignored (scale 1 · 0.6)': 'alpha-ignored'}))
    return cases


# ----------------------------------------------------------------------------------------------------------------
# Running a case
# ----------------------------------------------------------------------------------------------------------------

def build(case, dtype, variant=None):
    from diffusers import (ControlNetModel, DDIMScheduler, EulerDiscreteScheduler, LCMScheduler, StableDiffusionControlNetPipeline,
                           StableDiffusionPipeline, StableDiffusionXLPipeline)
    schedulers = {'DDIMScheduler': DDIMScheduler, 'EulerDiscreteScheduler': EulerDiscreteScheduler, 'LCMScheduler': LCMScheduler}
    folder = os.path.join(FIXTURES, case['model'])
    if case['pipeline'] == 'StableDiffusionControlNetPipeline':
        nets = [ControlNetModel.from_pretrained(os.path.join(FIXTURES, c['model']), torch_dtype=dtype) for c in case['controlnets']]
        pipe = StableDiffusionControlNetPipeline.from_pretrained(folder, controlnet=nets[0] if len(nets) == 1 else nets, torch_dtype=dtype)
    else:
        cls = StableDiffusionXLPipeline if case['pipeline'] == 'StableDiffusionXLPipeline' else StableDiffusionPipeline
        pipe = cls.from_pretrained(folder, torch_dtype=dtype)
    if case['scheduler']:
        pipe.scheduler = schedulers[case['scheduler']].from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    setup = case.get('setup')
    if variant is not None and not isinstance(variant, str):
        setup = variant
    elif variant == 'alpha-ignored':
        # The same file with alpha = rank everywhere (what ignoring the alphas would compute).
        f = case['lora']['adapters'][0]['file']
        import safetensors.torch
        sd = safetensors.torch.load_file(os.path.join(FIXTURES, f))
        for k in list(sd):
            if k.endswith('.alpha'):
                stem = k[:-len('.alpha')]
                sd[k] = torch.tensor(float(sd[f'{stem}.lora_down.weight'].shape[0]), dtype=sd[k].dtype)
        setup = lambda p: p.load_lora_weights(sd)  # noqa: E731
    elif variant == 'ti-shuffled':
        base = setup

        def setup(p):  # noqa: F811
            base(p)
            emb = p.text_encoder.get_input_embeddings().weight
            with torch.no_grad():
                emb[49408:49414] = emb[49408:49414].flip(0).clone()
    if setup is not None:
        setup(pipe)
    if dtype == torch.float64:
        pipe.to(torch.float64)
        for comp in ('unet', 'text_encoder', 'text_encoder_2', 'vae', 'controlnet'):
            m = getattr(pipe, comp, None)
            if m is not None:
                assert all(p.dtype == torch.float64 for p in m.parameters()), comp
    return pipe


def call_args(case, variant=None, latents=None, generator=None):
    from PIL import Image
    keys = ['prompt', 'prompt_2', 'negative_prompt', 'height', 'width', 'cross_attention_kwargs']
    kw = {k: case[k] for k in keys if case.get(k) is not None}
    if variant == 'scale-1':
        kw['cross_attention_kwargs'] = {'scale': 1.0}
    if 'controlnets' in case:
        cns = case['controlnets']
        images = [Image.open(c['image_path']).convert('RGB') for c in cns]
        scales = [c['scale'] for c in cns]
        starts = [c.get('start', 0.0) for c in cns]
        ends = [c.get('end', 1.0) for c in cns]
        if variant == 'cn-scale-0':
            scales = [0.0 for _ in scales]
        elif variant == 'cn-scale-1':
            scales = [1.0 for _ in scales]
        elif variant == 'cn-no-startend':
            starts, ends = [0.0] * len(cns), [1.0] * len(cns)
        elif variant == 'cn-first-only':
            scales = [scales[0], 0.0]
        elif variant == 'cn-swapped':
            scales = scales[::-1]
        one = len(cns) == 1
        kw.update(image=images[0] if one else images, controlnet_conditioning_scale=scales[0] if one else scales,
                  control_guidance_start=starts[0] if one else starts, control_guidance_end=ends[0] if one else ends,
                  guess_mode=False)
    return dict(kw, num_inference_steps=case['steps'], guidance_scale=case['guidance_scale'], output_type='np',
                latents=latents, generator=generator)


def run(case, dtype=torch.float32, variant=None, latents=None, replay_noise=None):
    pipe = build(case, dtype, variant)
    rec = Recorder(pipe, replay_noise)
    gen = torch.Generator('cpu').manual_seed(case['seed'])
    with torch.no_grad():
        call_variant = variant if isinstance(variant, str) and (variant.startswith('cn-') or variant == 'scale-1') else None
        pipe(**call_args(case, call_variant, latents=latents, generator=gen))
    rec.close()
    return pipe, rec


def make_trace(case, pipe, rec):
    sched = pipe.scheduler
    xl = case['pipeline'] == 'StableDiffusionXLPipeline'
    n = len(rec.unet)
    assert len(rec.steps) == n == len(sched.timesteps), (len(rec.steps), n, len(sched.timesteps))
    trace = {'input_ids': rec.ids[1][0]}
    if xl:
        prompt_embeds, negative_prompt_embeds, pooled, negative_pooled = rec.encoded
        trace['input_ids_2'] = rec.ids[2][0]
        if len(rec.ids[1]) > 1:
            trace['uncond_input_ids'] = rec.ids[1][1]
            trace['uncond_input_ids_2'] = rec.ids[2][1]
        first = rec.unet[0]
        trace.update({
            'prompt_embeds': prompt_embeds, 'negative_prompt_embeds': negative_prompt_embeds,
            'pooled_prompt_embeds': pooled, 'negative_pooled_prompt_embeds': negative_pooled,
            'add_time_ids': rec.time_ids[0], 'negative_add_time_ids': rec.time_ids[1] if len(rec.time_ids) > 1 else rec.time_ids[0],
            'unet_time_ids': first['added']['time_ids'], 'unet_text_embeds': first['added']['text_embeds'],
        })
        assert torch.equal(first['context'], torch.cat([negative_prompt_embeds, prompt_embeds]))
    else:
        prompt_embeds, negative_prompt_embeds = rec.encoded
        trace['prompt_embeds'] = prompt_embeds
        if negative_prompt_embeds is not None:
            trace['uncond_input_ids'] = rec.ids[1][1]
            trace['negative_prompt_embeds'] = negative_prompt_embeds
            assert torch.equal(rec.unet[0]['context'], torch.cat([negative_prompt_embeds, prompt_embeds]))
        else:
            assert len(rec.ids[1]) == 1 and torch.equal(rec.unet[0]['context'], prompt_embeds)
    trace['latents_init'] = rec.steps[0]['sample']
    trace['timesteps'] = sched.timesteps.to(torch.int64)
    for i, (u, s) in enumerate(zip(rec.unet, rec.steps)):
        trace[f'step{i}_model_input'] = u['sample']
        trace[f'step{i}_unet_out'] = u['out']
        trace[f'step{i}_noise_pred'] = s['eps']
        trace[f'step{i}_latents'] = s['prev']
        if s['denoised'] is not None:
            trace[f'step{i}_denoised'] = s['denoised']
    for i, z in enumerate(rec.noise):
        trace[f'step{i}_noise'] = z
    if 'controlnets' in case:
        k = len(case['controlnets'])
        assert len(rec.control) == k * n
        for j in range(k):
            conds = [c['cond'] for c in rec.control if c['net'] == j]
            assert all(torch.equal(c, conds[0]) for c in conds)
            trace['control_image' if k == 1 else f'control_image_{j}'] = conds[0]
        trace['controlnet_scales'] = torch.tensor([[c['scale'] for c in rec.control[i * k:(i + 1) * k]] for i in range(n)], dtype=torch.float32)
        for j, d in enumerate(rec.unet[0]['down']):
            trace[f'step0_down_residual_{j}'] = d
        trace['step0_mid_residual'] = rec.unet[0]['mid']
    trace['latents_final'] = rec.steps[-1]['prev']
    trace['image'] = rec.image
    return {k: v.contiguous() for k, v in trace.items()}


def check_ti_ids(case, pipe, trace):
    """The ids transformers 5 gave the prompts with the new tokens equal the ones its tokenizer gives each text piece
    around them (as transformers 4's slow CLIPTokenizer splits at added tokens), so the trace does not depend on the
    tokenizer implementation."""
    tok = pipe.tokenizer
    vocab = tok.get_vocab()
    for key, prompt in [('input_ids', case['prompt']), ('uncond_input_ids', case['negative_prompt'])]:
        text = pipe.maybe_convert_prompt(prompt, tok)
        ids = [49406]
        for piece in text.split(' '):
            if piece.strip(',') in tok.added_tokens_encoder:
                ids.append(tok.added_tokens_encoder[piece.strip(',')])
                if piece.endswith(','):
                    ids += tok(',', add_special_tokens=False).input_ids
            else:
                ids += tok(piece, add_special_tokens=False).input_ids
        ids += [49407] * (77 - len(ids))
        assert trace[key][0].tolist() == ids, (key, trace[key][0].tolist()[:20], ids[:20])
        assert '<tiny' not in ''.join(t for t in vocab if vocab[t] < 49408)


def meta_for(case, trace, replay, sens, pipe, extra):
    sched = pipe.scheduler
    H, W = trace['image'].shape[2:]
    img = trace['image']
    xl = case['pipeline'] == 'StableDiffusionXLPipeline'
    meta = {
        'kind': 'text-to-image',
        'pipeline': case['pipeline'],
        'diffusers_version': '0.25.1',
        'made_by': f"scripts/reference/make_issue14.py: diffusers v0.25.1 {case['pipeline']}.from_pretrained(model) and its own __call__, float32, CPU (PEFT 0.21 backend)",
        'about': case['about'],
        'model': case['model'],
        'prompt': case['prompt'],
    }
    if xl:
        meta['prompt_2'] = case.get('prompt_2')
    meta['negative_prompt'] = case.get('negative_prompt')
    if xl:
        meta['negative_prompt_2'] = None
        meta['force_zeros_for_empty_prompt'] = bool(pipe.config.force_zeros_for_empty_prompt)
    meta.update({
        'guidance_scale': case['guidance_scale'],
        'guidance_rescale': 0.0,
        'do_classifier_free_guidance': bool(pipe.do_classifier_free_guidance),
        'steps': case['steps'],
        'n_timesteps': len(trace['timesteps']),
        'timesteps': trace['timesteps'].tolist(),
        'scheduler': type(sched).__name__,
        'scheduler_config': "the model's own scheduler/scheduler_config.json" if not case['scheduler'] else f"{case['scheduler']}.from_config(the model's scheduler/scheduler_config.json)",
        'eta': 0.0 if case['scheduler'] == 'DDIMScheduler' else None,
        'height': H,
        'width': W,
    })
    if xl:
        meta.update({'original_size': [H, W], 'crops_coords_top_left': [0, 0], 'target_size': [H, W],
                     'negative_original_size': None, 'negative_crops_coords_top_left': [0, 0], 'negative_target_size': None})
    meta.update({
        'latent_shape': list(trace['latents_init'].shape),
        'vae_scale_factor': pipe.vae_scale_factor,
        'seed': case['seed'],
        'latents_init': f"torch.randn({tuple(trace['latents_init'].shape)}, generator=torch.Generator('cpu').manual_seed({case['seed']})) * init_noise_sigma ({float(sched.init_noise_sigma):.6g}), as diffusers' prepare_latents draws it",
        'model_input': ('scale_model_input(cat([latents, latents]), t): the doubled batch [uncond, cond]' if pipe.do_classifier_free_guidance
                        else 'scale_model_input(latents, t): no guidance batch'),
    })
    meta.update(extra)
    meta.update({
        'image_range': f'[{float(img.min()):.3f}, {float(img.max()):.3f}]: before clamping and the (x / 2 + 0.5).clamp(0, 1) post-processing',
        'float64_replay': {k: float(f'{v:.3g}') for k, v in replay.items()},
        'sensitivity': {k: float(f'{v:.3g}') for k, v in sens.items()},
        'trace': describe_trace(trace),
    })
    return meta


def run_case(case, ti_vectors, lora_files):
    pipe, rec = run(case)
    trace = make_trace(case, pipe, rec)
    extra = {}
    if 'lora' in case:
        extra['lora'] = dict(case['lora'])
        m = manual_merge(case, lora_files, trace, rec.noise, pipe.scheduler.init_noise_sigma)
        assert m < 1e-4, m
        extra['lora']['manual_merge'] = float(f'{m:.3g}')
    if case['name'].endswith('textual-inversion'):
        check_ti_ids(case, pipe, trace)
        tok = pipe.tokenizer
        emb = pipe.text_encoder.get_input_embeddings().weight
        added = {t: tok.added_tokens_encoder[t] for t in sorted(tok.added_tokens_encoder, key=tok.added_tokens_encoder.get) if tok.added_tokens_encoder[t] >= 49408}
        # The rows diffusers wrote are the files' vectors.
        for token, v in ti_vectors.items():
            for r in range(v.shape[0]):
                t = token if r == 0 else f'{token}_{r}'
                assert torch.equal(emb[added[t]].detach(), v[r]), t
        extra['textual_inversion'] = {
            'files': [{'file': f'{TI_DIR}/{f}', 'token': t, 'vectors': n, 'format': fmt} for f, t, n, fmt in TI_FILES],
            'load_order': [f'{TI_DIR}/{f}' for f, _, _, _ in TI_FILES],
            'added_tokens': added,
            'text_encoder_vocab_size': int(emb.shape[0]),
            'prompt_converted': pipe.maybe_convert_prompt(case['prompt'], tok),
            'negative_prompt_converted': pipe.maybe_convert_prompt(case['negative_prompt'], tok),
        }
    if 'controlnets' in case:
        extra['controlnet'] = [{'model': c['model'], 'image': c['image'], 'image_size': list(c['image_size']),
                                'conditioning_scale': c['scale'], 'control_guidance_start': c.get('start', 0.0),
                                'control_guidance_end': c.get('end', 1.0)} for c in case['controlnets']]
        extra['guess_mode'] = False
        extra['control_image'] = ("the control image processor's output (VaeImageProcessor(do_convert_rgb=True, do_normalize=False): "
                                  "PIL resize to (width, height) with Lanczos, then /255, [0, 1]), repeated for [uncond, cond]: what "
                                  "each ControlNet got as controlnet_cond")
    # float64 replay from the same initial latents (and the same LCM noise).
    init = (trace['latents_init'] / pipe.scheduler.init_noise_sigma).double()
    _, rec64 = run(case, torch.float64, latents=init, replay_noise=[z.double() for z in rec.noise] if rec.noise else None)
    replay = {
        'noise_pred': max(rel(s64['eps'], s['eps']) for s64, s in zip(rec64.steps, rec.steps)),
        'latents_final': rel(rec64.steps[-1]['prev'], rec.steps[-1]['prev']),
        'image': rel(rec64.image, rec.image),
    }
    # Sensitivity: max|variant image - image| / max|image| for what a wrong implementation might compute.
    sens = {}
    for vname, v in case.get('variants', {}).items():
        lat = trace['latents_init'] / pipe.scheduler.init_noise_sigma
        _, rv = run(case, variant=v, latents=lat, replay_noise=rec.noise or None)
        sens[vname] = rel(rv.image, rec.image)
    return trace, replay, sens, pipe, extra


def manual_merge(case, lora_files, trace, noise, sigma):
    """The documented math, without PEFT: a float64 pipeline whose weights are W + s·up·down for every module each
    adapter covers (s: the case's effective scale of that adapter and component; a conv's down keeps its kernel, its
    up is 1x1), run from the trace's initial latents. Returns max|image - trace image| / max|trace image|."""
    by_rel = {f.rel: f for f in lora_files}
    pipe = build(case, torch.float64, variant=lambda p: None)
    adapters = case['lora']['adapters']
    eff = case['lora']['effective_scale']
    with torch.no_grad():
        for a in adapters:
            f = by_rel[a['file']]
            scales = eff[a['adapter_name']] if len(adapters) > 1 else eff
            for comp, (spec, _) in f.expected.items():
                mods = dict(getattr(pipe, comp).named_modules())
                for name, (down, up) in spec.items():
                    w = mods[name].weight
                    if w.ndim == 4:
                        delta = torch.einsum('or,rikl->oikl', up[:, :, 0, 0].double(), down.double())
                    else:
                        delta = up.double() @ down.double()
                    w += scales[comp] * delta
    case = dict(case, cross_attention_kwargs=None)
    rec = Recorder(pipe, [z.double() for z in noise] if noise else None)
    with torch.no_grad():
        # sigma: init_noise_sigma after set_timesteps (Euler's depends on the schedule), as the traced run used it.
        pipe(**call_args(case, latents=(trace['latents_init'] / sigma).double()))
    rec.close()
    return rel(rec.image, trace['image'])


def write_case(case, trace, meta):
    d = os.path.join(FIXTURES, case['name'])
    safetensors_io.write(os.path.join(d, 'trace.safetensors'), trace)
    write_json(os.path.join(d, 'pipeline.json'), meta)


def validate_environment():
    """This environment (torch 2.13, transformers 5's CLIPTextModel, the shims) reproduces the committed pipeline-sd-tiny
    trace, made with torch 1.13 and the openai/CLIP text encoder."""
    from diffusers import StableDiffusionPipeline
    ref = safetensors_io.read(os.path.join(FIXTURES, 'pipeline-sd-tiny', 'trace.safetensors'))
    with open(os.path.join(FIXTURES, 'pipeline-sd-tiny', 'pipeline.json')) as f:
        spec = json.load(f)
    pipe = StableDiffusionPipeline.from_pretrained(SD)
    pipe.set_progress_bar_config(disable=True)
    rec = Recorder(pipe)
    with torch.no_grad():
        pipe(spec['prompt'], negative_prompt=spec['negative_prompt'], num_inference_steps=spec['steps'],
             guidance_scale=spec['guidance_scale'], generator=torch.Generator('cpu').manual_seed(spec['seed']), output_type='np')
    rec.close()
    assert torch.equal(rec.ids[1][0], ref['input_ids']) and torch.equal(rec.steps[0]['sample'], ref['latents_init'])
    worst = {'prompt_embeds': rel(rec.encoded[0], ref['prompt_embeds']),
             'noise_pred': max(rel(s['eps'], ref[f'step{i}_noise_pred']) for i, s in enumerate(rec.steps)),
             'image': rel(rec.image, ref['image'])}
    print('pipeline-sd-tiny regenerated here vs committed:', worst)
    assert max(worst.values()) < 1e-4, worst
    return worst


def main(diffusers_src):
    sys.path.insert(0, diffusers_src)
    import diffusers_compat  # noqa: F401  (before diffusers)
    import diffusers_compat_peft  # noqa: F401
    import diffusers
    import peft
    assert diffusers.__version__ == '0.25.1', diffusers.__version__
    from diffusers.utils import USE_PEFT_BACKEND
    assert USE_PEFT_BACKEND
    torch.set_num_threads(2)
    env = validate_environment()

    lora, bad = make_lora_files()
    verify_lora_files(lora)
    write_lora_index(lora, bad)
    make_controlnets()
    ti_vectors = make_ti_files()

    images = {'edges16': (16, 16, 'edges', 901), 'color24x20': (24, 20, 'color', 902),
              'edges24x16': (24, 16, 'edges', 903), 'color12x8': (12, 8, 'color', 904)}
    cases = sd_cases(lora, {k: k for k in images})
    only = os.environ.get('ONLY')
    for case in cases:
        if only and case['name'] not in only.split(','):
            continue
        d = os.path.join(FIXTURES, case['name'])
        if os.path.exists(d):
            shutil.rmtree(d)
        os.makedirs(d)
        for c in case.get('controlnets', []):
            w, h, kind, seed = images[c['image']]
            c['image'] = f'control-{kind}-{w}x{h}.png'
            c['image_size'] = (w, h)
            c['image_path'] = os.path.join(d, c['image'])
            control_png(c['image_path'], w, h, kind, seed)
        trace, replay, sens, pipe, extra = run_case(case, ti_vectors, lora)
        meta = meta_for(case, trace, replay, sens, pipe, extra)
        meta['environment_check'] = {k: float(f'{v:.3g}') for k, v in env.items()}
        write_case(case, trace, meta)
        print(case['name'], 'timesteps', trace['timesteps'].tolist(), 'float64 replay', replay, 'sensitivity', sens,
              'latents_final max', float(trace['latents_final'].abs().max()))
    # safetensors writes its files 0600; the fixtures are plain readable files like the rest of tests/fixtures.
    for d in [LORA_DIR, TI_DIR] + [c['name'] for c in CONTROLNETS] + [c['name'] for c in cases]:
        for f in os.listdir(os.path.join(FIXTURES, d)) if os.path.isdir(os.path.join(FIXTURES, d)) else []:
            os.chmod(os.path.join(FIXTURES, d, f), 0o644)
    print('peft', peft.__version__)


if __name__ == '__main__':
    # Python's string hashing is salted per process; diffusers and PEFT keep module names in sets, which shows in
    # the error messages loras.json records. A fixed seed makes every run byte-identical.
    if os.environ.get('PYTHONHASHSEED') != '0':
        os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, PYTHONHASHSEED='0'))
    main(sys.argv[1])

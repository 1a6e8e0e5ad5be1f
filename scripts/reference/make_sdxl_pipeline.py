"""Writes a tiny random-weight Stable Diffusion XL pipeline folder and step-by-step traces of diffusers'
own StableDiffusionXLPipeline on it.

Outputs (paths relative to the repository root):

- tests/fixtures/sdxl-tiny/: a StableDiffusionXLPipeline folder in the Hub layout (model_index.json, unet/,
  vae/, text_encoder/ (CLIPTextModel), text_encoder_2/ (CLIPTextModelWithProjection), tokenizer/,
  tokenizer_2/ (pad_token "!"), scheduler/ (EulerDiscreteScheduler with SDXL base's values)).
- tests/fixtures/pipeline-sdxl-tiny*/: pipeline.json + trace.safetensors, in the format of
  shared/fixtures-text's pipeline-sd-tiny (shared/fixtures-text/README.md, Part 2), plus SDXL's own entries
  (second tokenizer's ids, pooled embeddings, time ids).
- tests/fixtures/clip-text-sdxl-tiny/: case.json + io.safetensors, a CLIPTextModelWithProjection model case
  (transformers' own forward of text_encoder_2 on tokenizer_2's ids; its weights are the pipeline folder's).

How: the folder is written first; then diffusers v0.25.1's StableDiffusionXLPipeline.from_pretrained loads it
back (its own loaders, transformers' CLIPTextModel / CLIPTextModelWithProjection / CLIPTokenizer) and its own
__call__ runs each case in float32 on the CPU. The trace is recorded from inside that call, without changing
it: hooks on the two text encoders (the ids they are given), on encode_prompt (its four outputs), on the
U-Net (its input batch, timestep, added_cond_kwargs and output), on scheduler.step (the noise prediction it is
given, the latents it returns) and on vae.decode (the image before post-processing). Each case is then run
again with the whole pipeline in float64 from the same initial latents, and pipeline.json records
max|f64 - f32| / max|f32| of the noise predictions, final latents and image (the reference's own float32
rounding; EulerDiscreteScheduler.step computes in float32 even then).

Weights are random but non-trivial (no parameter is zero; seeded, deterministic). The two 49408-row token
tables would be most of the folder's bytes, so their rows repeat with a period of 61 except the rows of the
ids the fixtures' prompts use (unique rows): that changes nothing the traces can see, and git compresses the
repeated rows to almost nothing.

Needs torch, transformers 5.x, tokenizers, safetensors and numpy (scripts/reference/README.md,
"The SDXL pipeline fixtures") and a v0.25.1 source tree of diffusers:

    git --git-dir=<diffusers clone>/.git archive v0.25.1 src/diffusers | tar -x -C /tmp/d025full
    /tmp/sdxlenv/bin/python -B scripts/reference/make_sdxl_pipeline.py /tmp/d025full/src ../shared/fixtures-text/tokenizer-clip
"""
import json
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, '..', '..'))
FIXTURES = os.path.join(ROOT, 'tests', 'fixtures')
MODEL = 'sdxl-tiny'
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402

# text_encoder: CLIP ViT-L's layout narrowed (quick_gelu); text_encoder_2: OpenCLIP bigG's (gelu, projection
# without bias, projection_dim != hidden_size). Different widths, so a swapped or mis-concatenated encoder shows.
TEXT_ENCODER = dict(hidden_size=16, intermediate_size=64, num_attention_heads=2, num_hidden_layers=2, hidden_act='quick_gelu', projection_dim=16)
TEXT_ENCODER_2 = dict(hidden_size=32, intermediate_size=128, num_attention_heads=4, num_hidden_layers=3, hidden_act='gelu', projection_dim=24)
ADD_TIME_DIM = 8
UNET = dict(
    sample_size=8, in_channels=4, out_channels=4,
    down_block_types=['DownBlock2D', 'CrossAttnDownBlock2D'], up_block_types=['CrossAttnUpBlock2D', 'UpBlock2D'],
    mid_block_type='UNetMidBlock2DCrossAttn', block_out_channels=[8, 16], layers_per_block=1,
    attention_head_dim=[1, 2], transformer_layers_per_block=[1, 2], use_linear_projection=True,
    cross_attention_dim=TEXT_ENCODER['hidden_size'] + TEXT_ENCODER_2['hidden_size'],
    addition_embed_type='text_time', addition_time_embed_dim=ADD_TIME_DIM,
    projection_class_embeddings_input_dim=TEXT_ENCODER_2['projection_dim'] + 6 * ADD_TIME_DIM,
    norm_num_groups=4, act_fn='silu', flip_sin_to_cos=True, freq_shift=0,
)
VAE = dict(
    in_channels=3, out_channels=3, down_block_types=['DownEncoderBlock2D'] * 2, up_block_types=['UpDecoderBlock2D'] * 2,
    block_out_channels=[8, 16], layers_per_block=1, act_fn='silu', latent_channels=4, norm_num_groups=4,
    sample_size=16, scaling_factor=0.13025, force_upcast=True,
)
# stabilityai/stable-diffusion-xl-base-1.0's scheduler/scheduler_config.json, as it ships.
SCHEDULER = {
    '_class_name': 'EulerDiscreteScheduler', '_diffusers_version': '0.19.0.dev0', 'beta_end': 0.012,
    'beta_schedule': 'scaled_linear', 'beta_start': 0.00085, 'clip_sample': False, 'interpolation_type': 'linear',
    'num_train_timesteps': 1000, 'prediction_type': 'epsilon', 'sample_max_value': 1.0, 'set_alpha_to_one': False,
    'skip_prk_steps': True, 'steps_offset': 1, 'timestep_spacing': 'leading', 'trained_betas': None,
    'use_karras_sigmas': False,
}

CASES = [
    dict(name='pipeline-sdxl-tiny', scheduler=None, steps=8, guidance_scale=5.0, seed=42,
         prompt='a photograph of an astronaut riding a horse', negative_prompt='blurry, low quality',
         about='the folder\'s EulerDiscreteScheduler, SDXL\'s defaults (size from the U-Net, time ids (H, W, 0, 0, H, W)), a negative prompt'),
    dict(name='pipeline-sdxl-tiny-zeros', scheduler='DDIMScheduler', steps=6, guidance_scale=6.0, seed=7, guidance_rescale=0.7,
         prompt='a watercolor painting of a lighthouse at dusk', prompt_2='oil on canvas, a storm at sea!', negative_prompt=None,
         height=16, width=24, original_size=(40, 56), crops_coords_top_left=(4, 8),
         negative_original_size=(12, 20), negative_target_size=(16, 16),
         about='no negative prompt: force_zeros_for_empty_prompt zeros both negative embeddings; prompt_2 (with "!", tokenizer_2\'s pad token) for the second encoder; 24x16; original size and crop given; negative time ids from negative sizes; guidance_rescale 0.7'),
    dict(name='pipeline-sdxl-tiny-clipskip', scheduler='DPMSolverMultistepScheduler', steps=6, guidance_scale=7.0, seed=3, clip_skip=1,
         prompt='a red fox in the snow, digital art', negative_prompt='low contrast', negative_prompt_2='jpeg artifacts, watermark',
         about='clip_skip 1 (the prompt\'s states from hidden_states[-3]; v0.25.1 encodes the negative prompt from hidden_states[-2] whatever clip_skip is), negative_prompt_2, DPM-Solver++ 2M'),
    dict(name='pipeline-sdxl-tiny-batch2', scheduler=None, steps=4, guidance_scale=4.0, seed=11,
         prompt=['a cat on a sofa', 'a dog on a hill'], negative_prompt=['blurry', 'fog'],
         negative_original_size=(8, 8), negative_target_size=(16, 16),
         about='two prompts (B = 2) with their negative prompts and negative time ids: v0.25.1 tiles cat([negative, positive]) time ids over the batch, so its rows alternate negative, positive while its embeddings are [2 negative, 2 positive]'),
]
CLIP_CASE_PROMPTS = [
    'a photograph of an astronaut riding a horse',
    'wow! a red fox!! in the snow',
    None,  # the longest prompt of tokenizer-clip/cases.json (truncated)
]


def fill(module, seed, token_rows=None):
    """Random, non-zero parameters: weights ~ N(0, 1/fan_in), norm scales 1 + 0.1 N, biases 0.1 N, embeddings 0.5 N."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(module.named_parameters()):
            if name.endswith('token_embedding.weight'):
                V, D = p.shape
                base = torch.randn(61, D, generator=g, dtype=torch.float64) * 0.5
                table = base[torch.arange(V) % 61].clone()
                for i in sorted(token_rows):
                    table[i] = torch.randn(D, generator=g, dtype=torch.float64) * 0.5
                p.copy_(table)
            elif 'embedding' in name and p.ndim == 2:
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
            elif p.ndim >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) / fan_in ** 0.5)
            elif name.endswith('weight'):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g, dtype=torch.float64))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    assert all(bool((p != 0).all()) for p in module.parameters())


def write_json(path, obj):
    with open(path, 'w') as f:
        json.dump(obj, f, indent=2)
        f.write('\n')


def clip_config(arch, spec):
    # The keys and values of SDXL base's text_encoder*/config.json, widths from `spec`.
    return {
        'architectures': [arch], 'attention_dropout': 0.0, 'bos_token_id': 0, 'dropout': 0.0, 'eos_token_id': 2,
        'hidden_act': spec['hidden_act'], 'hidden_size': spec['hidden_size'], 'initializer_factor': 1.0,
        'initializer_range': 0.02, 'intermediate_size': spec['intermediate_size'], 'layer_norm_eps': 1e-05,
        'max_position_embeddings': 77, 'model_type': 'clip_text_model', 'num_attention_heads': spec['num_attention_heads'],
        'num_hidden_layers': spec['num_hidden_layers'], 'pad_token_id': 1, 'projection_dim': spec['projection_dim'],
        'torch_dtype': 'float32', 'vocab_size': 49408,
    }


def clip_case_prompts(tokenizer_src):
    with open(os.path.join(tokenizer_src, 'cases.json')) as f:
        longest = max(json.load(f), key=lambda c: c['n_tokens'])['prompt']
    return [p if p is not None else longest for p in CLIP_CASE_PROMPTS]


def hub_name(key):
    # transformers 5's CLIPTextModel holds the text transformer's parameters at its top level and maps
    # the Hub's `text_model.` names onto them when loading; the files keep the Hub names (what SDXL
    # ships and transformers 4 writes). CLIPTextModelWithProjection still has `text_model.` itself.
    return key if key.startswith(('text_model.', 'text_projection.')) else f'text_model.{key}'


def check_loaded(pipe, pipe_dir):
    """Every parameter of the loaded pipeline equals the file's (nothing was left at its random init)."""
    for sub, files in [('text_encoder', 'model.safetensors'), ('text_encoder_2', 'model.safetensors'),
                       ('unet', 'diffusion_pytorch_model.safetensors'), ('vae', 'diffusion_pytorch_model.safetensors')]:
        saved = safetensors_io.read(os.path.join(pipe_dir, sub, files))
        params = dict(getattr(pipe, sub).named_parameters())
        if sub.startswith('text_encoder'):
            params = {hub_name(k): v for k, v in params.items()}
        assert sorted(params) == sorted(saved), (sub, sorted(set(params) ^ set(saved))[:5])
        for k, v in params.items():
            assert torch.equal(v.detach().to(saved[k].dtype), saved[k]) or v.dtype != torch.float32, (sub, k)


def used_token_ids(tokenizers, tokenizer_src):
    prompts = ['']
    for c in CASES:
        for k in ('prompt', 'prompt_2', 'negative_prompt', 'negative_prompt_2'):
            v = c.get(k)
            prompts += v if isinstance(v, list) else [v] if v else []
    prompts += clip_case_prompts(tokenizer_src)
    ids = set()
    for t in tokenizers:
        for p in prompts:
            ids.update(t(p, padding='max_length', max_length=77, truncation=True).input_ids)
    return ids


def write_folder(out, tokenizer_src):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    # Tokenizers: tokenizer-clip's files; tokenizer_2 pads with "!" (id 0) as SDXL's OpenCLIP tokenizer does.
    for sub, pad in [('tokenizer', None), ('tokenizer_2', '!')]:
        d = os.path.join(out, sub)
        os.makedirs(d)
        for f in ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json']:
            shutil.copyfile(os.path.join(tokenizer_src, f), os.path.join(d, f))
        if pad:
            for f in ['tokenizer_config.json', 'special_tokens_map.json']:
                with open(os.path.join(d, f)) as fh:
                    cfg = json.load(fh)
                cfg['pad_token'] = pad
                write_json(os.path.join(d, f), cfg)
    toks = [CLIPTokenizer.from_pretrained(os.path.join(out, s)) for s in ('tokenizer', 'tokenizer_2')]
    assert toks[0].pad_token_id == 49407 and toks[1].pad_token_id == 0
    rows = used_token_ids(toks, tokenizer_src)

    for sub, arch, cls, spec, seed in [('text_encoder', 'CLIPTextModel', CLIPTextModel, TEXT_ENCODER, 1),
                                        ('text_encoder_2', 'CLIPTextModelWithProjection', CLIPTextModelWithProjection, TEXT_ENCODER_2, 2)]:
        d = os.path.join(out, sub)
        os.makedirs(d)
        cfg = clip_config(arch, spec)
        write_json(os.path.join(d, 'config.json'), cfg)
        model = cls(CLIPTextConfig(**{k: v for k, v in cfg.items() if k not in ('architectures', 'torch_dtype', 'model_type')}))
        fill(model, seed, rows)
        safetensors_io.write(os.path.join(d, 'model.safetensors'), {hub_name(k): v.float() for k, v in model.named_parameters()})

    for sub, cls, spec, seed in [('unet', UNet2DConditionModel, UNET, 3), ('vae', AutoencoderKL, VAE, 4)]:
        d = os.path.join(out, sub)
        model = cls(**spec)
        fill(model, seed)
        model.save_config(d)  # diffusers' own config.json (every __init__ argument, _class_name, _diffusers_version)
        safetensors_io.write(os.path.join(d, 'diffusion_pytorch_model.safetensors'), {k: v.float() for k, v in model.state_dict().items()})

    os.makedirs(os.path.join(out, 'scheduler'))
    write_json(os.path.join(out, 'scheduler', 'scheduler_config.json'), SCHEDULER)
    write_json(os.path.join(out, 'model_index.json'), {
        '_class_name': 'StableDiffusionXLPipeline', '_diffusers_version': '0.25.1',
        'feature_extractor': [None, None], 'force_zeros_for_empty_prompt': True, 'image_encoder': [None, None],
        'scheduler': ['diffusers', 'EulerDiscreteScheduler'],
        'text_encoder': ['transformers', 'CLIPTextModel'], 'text_encoder_2': ['transformers', 'CLIPTextModelWithProjection'],
        'tokenizer': ['transformers', 'CLIPTokenizer'], 'tokenizer_2': ['transformers', 'CLIPTokenizer'],
        'unet': ['diffusers', 'UNet2DConditionModel'], 'vae': ['diffusers', 'AutoencoderKL'],
    })


class Recorder:
    """Hooks that record one __call__ of the pipeline, leaving what it computes unchanged."""

    def __init__(self, pipe):
        self.pipe = pipe
        self.ids = {1: [], 2: []}
        self.unet = []
        self.steps = []
        self.encoded = None
        self.time_ids = []
        self.image = None
        self.handles = []
        for k, enc in [(1, pipe.text_encoder), (2, pipe.text_encoder_2)]:
            self.handles.append(enc.register_forward_hook(self._ids(k), with_kwargs=True))
        self.handles.append(pipe.unet.register_forward_hook(self._unet, with_kwargs=True))
        self._wrap(pipe, 'encode_prompt', self._encode)
        self._wrap(pipe, '_get_add_time_ids', lambda a, k, out: self.time_ids.append(out.clone()))
        self._wrap(pipe.scheduler, 'step', self._step)
        self._wrap(pipe.vae, 'decode', self._decode)

    def _wrap(self, obj, name, after):
        orig = getattr(obj, name)

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
        self.unet.append(dict(sample=sample.clone(), t=t, context=kwargs['encoder_hidden_states'].clone(),
                              added={k: v.clone() for k, v in kwargs['added_cond_kwargs'].items()}, out=out[0].clone()))

    def _encode(self, a, k, out):
        self.encoded = [None if t is None else t.clone() for t in out]

    def _step(self, a, k, out):
        model_output = a[0] if a else k['model_output']
        sample = a[2] if len(a) > 2 else k['sample']
        prev = out[0] if isinstance(out, tuple) else out.prev_sample
        self.steps.append(dict(eps=model_output.clone(), sample=sample.clone(), prev=prev.clone()))

    def _decode(self, a, k, out):
        self.image = (out[0] if isinstance(out, tuple) else out.sample).clone()

    def close(self):
        for h in self.handles:
            h.remove()


def call_args(case, latents=None, generator=None):
    keys = ['prompt', 'prompt_2', 'negative_prompt', 'negative_prompt_2', 'guidance_rescale', 'height', 'width',
            'original_size', 'crops_coords_top_left', 'target_size', 'negative_original_size',
            'negative_crops_coords_top_left', 'negative_target_size', 'clip_skip']
    kw = {k: case[k] for k in keys if case.get(k) is not None}
    return dict(kw, num_inference_steps=case['steps'], guidance_scale=case['guidance_scale'], output_type='np',
                latents=latents, generator=generator)


def run_case(pipe_dir, case):
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, StableDiffusionXLPipeline
    schedulers = {'DDIMScheduler': DDIMScheduler, 'DPMSolverMultistepScheduler': DPMSolverMultistepScheduler}

    def load(dtype):
        pipe = StableDiffusionXLPipeline.from_pretrained(pipe_dir, torch_dtype=dtype)
        assert pipe.watermark is None
        if case['scheduler']:
            pipe.scheduler = schedulers[case['scheduler']].from_config(pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    pipe = load(torch.float32)
    check_loaded(pipe, pipe_dir)
    rec = Recorder(pipe)
    with torch.no_grad():
        pipe(**call_args(case, generator=torch.Generator('cpu').manual_seed(case['seed'])))
    rec.close()
    sched = pipe.scheduler
    prompt_embeds, negative_prompt_embeds, pooled, negative_pooled = rec.encoded
    first = rec.unet[0]
    n = len(rec.unet)
    # _get_add_time_ids runs for the prompt, then for the negative half only when negative sizes are given.
    time_ids = rec.time_ids[0]
    neg_time_ids = rec.time_ids[1] if len(rec.time_ids) > 1 else time_ids
    trace = {
        'input_ids': rec.ids[1][0], 'input_ids_2': rec.ids[2][0],
        'prompt_embeds': prompt_embeds, 'negative_prompt_embeds': negative_prompt_embeds,
        'pooled_prompt_embeds': pooled, 'negative_pooled_prompt_embeds': negative_pooled,
        'add_time_ids': time_ids, 'negative_add_time_ids': neg_time_ids,
        # What the U-Net is given, diffusers' order [uncond rows, cond rows]: cat([neg, pos]).repeat(B, 1).
        'unet_time_ids': first['added']['time_ids'], 'unet_text_embeds': first['added']['text_embeds'],
        'latents_init': rec.steps[0]['sample'],
        'timesteps': sched.timesteps.to(torch.int64),
        'latents_final': rec.steps[-1]['prev'],
        'image': rec.image,
    }
    if len(rec.ids[1]) > 1:
        trace['uncond_input_ids'] = rec.ids[1][1]
        trace['uncond_input_ids_2'] = rec.ids[2][1]
    # What the U-Net was given agrees with what encode_prompt returned.
    assert torch.equal(first['context'], torch.cat([negative_prompt_embeds, prompt_embeds]))
    assert torch.equal(first['added']['text_embeds'], torch.cat([negative_pooled, pooled]))
    assert len(rec.steps) == n == len(sched.timesteps)
    for i, (u, s) in enumerate(zip(rec.unet, rec.steps)):
        trace[f'step{i}_model_input'] = u['sample']
        trace[f'step{i}_unet_out'] = u['out']
        trace[f'step{i}_noise_pred'] = s['eps']
        trace[f'step{i}_latents'] = s['prev']
    trace = {k: v.contiguous() for k, v in trace.items()}

    # The same call with the whole pipeline in float64, from the same initial latents.
    pipe64 = load(torch.float64)
    rec64 = Recorder(pipe64)
    init = (trace['latents_init'] / sched.init_noise_sigma).double()
    with torch.no_grad():
        pipe64(**call_args(case, latents=init))
    rec64.close()

    def rel(a, b):
        return float((a.double() - b.double()).abs().max() / b.double().abs().max())
    replay = {
        'noise_pred': max(rel(s64['eps'], s['eps']) for s64, s in zip(rec64.steps, rec.steps)),
        'latents_final': rel(rec64.steps[-1]['prev'], rec.steps[-1]['prev']),
        'image': rel(rec64.image, rec.image),
    }
    return trace, replay, sched, pipe


def describe_trace(trace):
    out = {}
    for k, v in trace.items():
        key = k
        if k.startswith('step') and '_' in k:
            if not k.startswith('step0_'):
                continue
            key = 'step{i}_' + k.split('_', 1)[1]
        out[key] = f'{str(v.dtype).replace("torch.", "")} {list(v.shape)}'
    return out


def write_case(case, trace, replay, sched, pipe):
    d = os.path.join(FIXTURES, case['name'])
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    safetensors_io.write(os.path.join(d, 'trace.safetensors'), trace)
    H, W = trace['image'].shape[2:]
    img = trace['image']
    meta = {
        'kind': 'text-to-image',
        'pipeline': 'StableDiffusionXLPipeline',
        'diffusers_version': '0.25.1',
        'made_by': 'scripts/reference/make_sdxl_pipeline.py: diffusers v0.25.1 StableDiffusionXLPipeline.from_pretrained(model) and its own __call__, float32, CPU',
        'about': case['about'],
        'model': MODEL,
        'prompt': case['prompt'],
        'prompt_2': case.get('prompt_2'),
        'negative_prompt': case.get('negative_prompt'),
        'negative_prompt_2': case.get('negative_prompt_2'),
        'force_zeros_for_empty_prompt': bool(pipe.config.force_zeros_for_empty_prompt),
        'guidance_scale': case['guidance_scale'],
        'guidance_rescale': case.get('guidance_rescale', 0.0),
        'clip_skip': case.get('clip_skip'),
        'steps': case['steps'],
        'n_timesteps': len(trace['timesteps']),
        'timesteps': trace['timesteps'].tolist(),
        'scheduler': type(sched).__name__,
        'scheduler_config': "the model's own scheduler/scheduler_config.json" if not case['scheduler'] else f"{case['scheduler']}.from_config(the model's scheduler/scheduler_config.json)",
        'eta': 0.0 if case['scheduler'] == 'DDIMScheduler' else None,
        'height': H,
        'width': W,
        'original_size': list(case.get('original_size') or (H, W)),
        'crops_coords_top_left': list(case.get('crops_coords_top_left') or (0, 0)),
        'target_size': list(case.get('target_size') or (H, W)),
        'negative_original_size': list(case['negative_original_size']) if case.get('negative_original_size') else None,
        'negative_crops_coords_top_left': list(case.get('negative_crops_coords_top_left') or (0, 0)),
        'negative_target_size': list(case['negative_target_size']) if case.get('negative_target_size') else None,
        'latent_shape': list(trace['latents_init'].shape),
        'vae_scale_factor': pipe.vae_scale_factor,
        'seed': case['seed'],
        'latents_init': f"torch.randn({tuple(trace['latents_init'].shape)}, generator=torch.Generator('cpu').manual_seed({case['seed']})) * init_noise_sigma ({float(sched.init_noise_sigma):.6g}), as diffusers' prepare_latents draws it",
        'model_input': 'scale_model_input(cat([latents, latents]), t): the doubled batch [uncond, cond]',
        'image_range': f'[{float(img.min()):.3f}, {float(img.max()):.3f}]: before clamping and the (x / 2 + 0.5).clamp(0, 1) post-processing',
        'float64_replay': {k: float(f'{v:.3g}') for k, v in replay.items()},
        'trace': describe_trace(trace),
    }
    write_json(os.path.join(d, 'pipeline.json'), meta)


def write_clip_case(pipe_dir, tokenizer_src):
    """CLIPTextModelWithProjection (text_encoder_2) on tokenizer_2's ids, by transformers itself."""
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer
    prompts = clip_case_prompts(tokenizer_src)
    tok = CLIPTokenizer.from_pretrained(os.path.join(pipe_dir, 'tokenizer_2'))
    model = CLIPTextModelWithProjection.from_pretrained(os.path.join(pipe_dir, 'text_encoder_2'))
    ids = tok(prompts, padding='max_length', max_length=77, truncation=True, return_tensors='pt').input_ids
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
        out64 = model.double()(ids, output_hidden_states=True)
    io = {'input_ids': ids.to(torch.int64), 'text_embeds': out.text_embeds, 'last_hidden_state': out.last_hidden_state,
          'hidden_state_penultimate': out.hidden_states[-2]}
    d = os.path.join(FIXTURES, 'clip-text-sdxl-tiny')
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    safetensors_io.write(os.path.join(d, 'io.safetensors'), {k: v.contiguous() for k, v in io.items()})
    rel = lambda a, b: float((a.double() - b.double()).abs().max() / b.double().abs().max())  # noqa: E731
    pos = ids.to(torch.int).argmax(dim=-1).tolist()
    write_json(os.path.join(d, 'case.json'), {
        'class': 'CLIPTextModelWithProjection',
        'call': 'encode',
        'model_folder': f'../{MODEL}/text_encoder_2',
        'inputs': {'input_ids': list(ids.shape)},
        'outputs': {k: list(v.shape) for k, v in io.items() if k != 'input_ids'},
        'prompts': prompts,
        'pooled_positions': pos,
        'float64_replay': {k: float(f'{rel(getattr(out64, k), getattr(out, k)):.3g}') for k in ('text_embeds', 'last_hidden_state')},
        'notes': ("transformers' CLIPTextModelWithProjection(input_ids, output_hidden_states=True) without attention_mask, on "
                  "tokenizer_2's ids (pad_token '!' = id 0; a '!' in a prompt is that special token too). eos_token_id 2 in "
                  "the config: the pooled row is argmax(input_ids), the first <|endoftext|>. text_embeds = "
                  "text_projection(final_layer_norm state at that row), no bias; hidden_state_penultimate = "
                  "hidden_states[-2], no final norm (what SDXL concatenates). Weights: the pipeline folder's text_encoder_2."),
    })


def main(diffusers_src, tokenizer_src):
    sys.path.insert(0, diffusers_src)
    import diffusers_compat  # noqa: F401  (before diffusers)
    import diffusers
    assert diffusers.__version__ == '0.25.1', diffusers.__version__
    torch.set_num_threads(2)
    pipe_dir = os.path.join(FIXTURES, MODEL)
    write_folder(pipe_dir, tokenizer_src)
    write_clip_case(pipe_dir, tokenizer_src)
    for case in CASES:
        trace, replay, sched, pipe = run_case(pipe_dir, case)
        write_case(case, trace, replay, sched, pipe)
        print(case['name'], 'timesteps', trace['timesteps'].tolist(), 'float64 replay', replay,
              'latents_final max', float(trace['latents_final'].abs().max()))


if __name__ == '__main__':
    main(*sys.argv[1:3])

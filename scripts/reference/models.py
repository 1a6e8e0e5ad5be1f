"""Forward passes of diffusers v0.25.1's UNet2DConditionModel, UNet2DModel, AutoencoderKL, VQModel
(decode) and AutoencoderTiny (decode), built
from config.json (the options Fresco's fixtures use) over a layers.Weights dict."""
import math

import torch
import torch.nn.functional as F

from layers import conv, downsample, fir_resample, gaussian_fourier, get_activation, group_norm, linear, resnet, spatial_attention, spatial_norm, time_mlp, timestep_embedding, transformer_2d, upsample


def _per_level(v, n):
    return list(v) if isinstance(v, (list, tuple)) else [v] * n


def _refuse(cfg, key, allowed):
    if cfg.get(key, allowed[0]) not in allowed:
        raise NotImplementedError(f'{key} = {cfg[key]!r} is not reproduced by this reference')


def _class_embedding(W, cfg, temb, class_labels, proj, act=F.silu):
    """emb + class_emb of UNet2DConditionModel / UNet2DModel (class_embeddings_concat False): an
    nn.Embedding when class_embed_type is None and num_class_embeds is set, a TimestepEmbedding
    'class_embedding' over the labels' sinusoidal projection (the time_proj the timesteps go
    through, with activation `act`) for 'timestep', the labels themselves ([B, time_embed_dim]) for 'identity',
    a TimestepEmbedding with its default SiLU (not act_fn) over float class vectors
    [B, projection_class_embeddings_input_dim] for 'projection', one Linear over them for 'simple_projection'."""
    kind = cfg.get('class_embed_type')
    if kind is None and cfg.get('num_class_embeds') is None:
        return temb
    if class_labels is None:
        raise ValueError('class_labels should be provided for a class-conditional model')
    if kind is None:
        return temb + W['class_embedding.weight'][class_labels]
    if kind == 'timestep':
        return temb + time_mlp(W, 'class_embedding', proj(class_labels), act=act)
    if kind == 'identity':
        return temb + class_labels
    if kind == 'projection':
        return temb + time_mlp(W, 'class_embedding', class_labels)
    if kind == 'simple_projection':
        return temb + linear(W, 'class_embedding', class_labels)
    raise NotImplementedError(f'class_embed_type = {kind!r} is not reproduced by this reference')


def _add_embedding(W, cfg, text_embeds, time_ids):
    """aug_emb of addition_embed_type 'text_time' (SDXL): add_time_proj, Timesteps(addition_time_embed_dim,
    flip_sin_to_cos, freq_shift), over time_ids.flatten(), reshaped to [B, N·addition_time_embed_dim] and
    concatenated after text_embeds [B, P], through add_embedding, a TimestepEmbedding with its default SiLU
    (not act_fn). diffusers requires both inputs."""
    if text_embeds is None or time_ids is None:
        raise ValueError("addition_embed_type 'text_time' requires text_embeds and time_ids")
    proj = timestep_embedding(time_ids.flatten(), cfg['addition_time_embed_dim'], cfg.get('flip_sin_to_cos', True), cfg.get('freq_shift', 0))
    return time_mlp(W, 'add_embedding', torch.cat([text_embeds, proj.reshape(text_embeds.shape[0], -1)], dim=-1))


def unet_2d_condition(W, cfg, sample, timestep, context, class_labels=None, timestep_cond=None, text_embeds=None, time_ids=None):
    """UNet2DConditionModel.forward(sample, timestep, encoder_hidden_states, class_labels, timestep_cond,
    added_cond_kwargs={'text_embeds': text_embeds, 'time_ids': time_ids}).sample. cross_attention_dim may be
    per block: the weights carry each block's width, so only weight_specs reads it."""
    for key, allowed in [('class_embed_type', [None, 'timestep', 'identity', 'projection', 'simple_projection']), ('class_embeddings_concat', [False]),
                         ('addition_embed_type', [None, 'text_time']), ('encoder_hid_dim', [None]), ('time_embedding_type', ['positional']),
                         ('resnet_time_scale_shift', ['default']), ('dual_cross_attention', [False]),
                         ('mid_block_type', ['UNetMidBlock2DCrossAttn', 'UNetMidBlock2D', None]),
                         ('reverse_transformer_layers_per_block', [None])]:
        _refuse(cfg, key, allowed)
    # resnet_out_scale_factor and resnet_skip_time_act: v0.25.1's get_down_block / get_up_block pass them
    # only to ResnetDownsampleBlock2D, ResnetUpsampleBlock2D and the SimpleCrossAttn blocks, none of
    # which this reference builds; DownBlock2D, CrossAttnDownBlock2D, UpBlock2D and CrossAttnUpBlock2D
    # (and the mid blocks) ignore them.
    blocks = set(cfg['down_block_types']) | set(cfg['up_block_types'])
    assert blocks <= {'DownBlock2D', 'CrossAttnDownBlock2D', 'UpBlock2D', 'CrossAttnUpBlock2D'}, blocks
    ch = cfg['block_out_channels']
    n = len(ch)
    groups, eps = cfg.get('norm_num_groups', 32), cfg.get('norm_eps', 1e-5)
    # Down block i has layers[i] resnets, up block i reversed(layers)[i] + 1.
    layers = _per_level(cfg.get('layers_per_block', 2), n)
    # Legacy naming: without num_attention_heads, attention_head_dim is the number of heads per level.
    heads = _per_level(cfg.get('num_attention_heads') or cfg.get('attention_head_dim', 8), n)
    # Down block i uses entry i, the mid block the last one, up block i reversed(list)[i]
    # (reverse_transformer_layers_per_block, needed for per-layer lists, is refused above).
    tlayers = _per_level(cfg.get('transformer_layers_per_block', 1), n)
    if any(isinstance(x, (list, tuple)) for x in tlayers):
        raise NotImplementedError('per-layer transformer_layers_per_block lists are not reproduced by this reference')
    assert len(layers) == n and len(tlayers) == n
    lin = cfg.get('use_linear_projection', False)
    mid_scale = cfg.get('mid_block_scale_factor', 1)
    # only_cross_attention: a bool for every block or one per down block (up blocks: reversed). The
    # UNetMidBlock2DCrossAttn / UNetMidBlock2D mid blocks take no such option
    # (mid_block_only_cross_attention only reaches UNetMidBlock2DSimpleCrossAttn).
    only_cross = _per_level(cfg.get('only_cross_attention', False), n)
    assert len(only_cross) == n

    if cfg.get('center_input_sample', False):
        sample = 2 * sample - 1.0

    B = sample.shape[0]
    t = timestep.expand(B) if timestep.numel() == 1 else timestep
    proj = lambda x: timestep_embedding(x, ch[0], cfg.get('flip_sin_to_cos', True), cfg.get('freq_shift', 0))
    # time_cond_proj_dim: timestep_cond goes through cond_proj into linear_1's input (skipped when None, as in diffusers).
    # act_fn: the TimestepEmbeddings' activation (time and 'timestep' class), every resnet's and conv_act.
    act = get_activation(cfg.get('act_fn', 'silu'))
    # timestep_post_act: the time embedding's post_act after linear_2 (not a class embedding's).
    post = cfg.get('timestep_post_act')
    temb = time_mlp(W, 'time_embedding', proj(t), timestep_cond, act, get_activation(post) if post else None)
    temb = _class_embedding(W, cfg, temb, class_labels, proj, act)
    # emb + class_emb + aug_emb, in diffusers' order.
    if cfg.get('addition_embed_type') == 'text_time':
        temb = temb + _add_embedding(W, cfg, text_embeds, time_ids)
    # time_embedding_act_fn: applied once to emb (+ class_emb + aug_emb) before the blocks.
    if cfg.get('time_embedding_act_fn'):
        temb = get_activation(cfg['time_embedding_act_fn'])(temb)

    h = conv(W, 'conv_in', sample)
    skips = [h]
    for i, kind in enumerate(cfg['down_block_types']):
        p = f'down_blocks.{i}'
        for j in range(layers[i]):
            h = resnet(W, f'{p}.resnets.{j}', h, temb, groups, eps, act=act)
            if kind == 'CrossAttnDownBlock2D':
                h = transformer_2d(W, f'{p}.attentions.{j}', h, context, heads[i], groups, lin, tlayers[i], only_cross[i])
            skips.append(h)
        if i < n - 1:
            h = downsample(W, f'{p}.downsamplers.0', h, cfg.get('downsample_padding', 1))
            skips.append(h)

    # mid_block_type: UNetMidBlock2DCrossAttn (resnet, transformer, resnet); UNetMidBlock2D (built with
    # num_layers 0 and add_attention False: one resnet); None: no mid block.
    mid_type = cfg.get('mid_block_type', 'UNetMidBlock2DCrossAttn')
    if mid_type is not None:
        h = resnet(W, 'mid_block.resnets.0', h, temb, groups, eps, mid_scale, act=act)
    if mid_type == 'UNetMidBlock2DCrossAttn':
        h = transformer_2d(W, 'mid_block.attentions.0', h, context, heads[-1], groups, lin, tlayers[-1])
        h = resnet(W, 'mid_block.resnets.1', h, temb, groups, eps, mid_scale, act=act)

    # forward_upsample_size: when H or W is not a multiple of 2^upsamplers, each upsampler
    # interpolates to the size of the skip it will be concatenated with instead of doubling.
    factor = 2 ** (n - 1)
    to_skip_size = any(s % factor != 0 for s in sample.shape[-2:])
    rev_heads, rev_tlayers, rev_layers, rev_only_cross = heads[::-1], tlayers[::-1], layers[::-1], only_cross[::-1]
    for i, kind in enumerate(cfg['up_block_types']):
        p = f'up_blocks.{i}'
        for j in range(rev_layers[i] + 1):
            h = resnet(W, f'{p}.resnets.{j}', torch.cat([h, skips.pop()], dim=1), temb, groups, eps, act=act)
            if kind == 'CrossAttnUpBlock2D':
                h = transformer_2d(W, f'{p}.attentions.{j}', h, context, rev_heads[i], groups, lin, rev_tlayers[i], rev_only_cross[i])
        if i < n - 1:
            h = upsample(W, f'{p}.upsamplers.0', h, tuple(skips[-1].shape[2:]) if to_skip_size else None)
    assert not skips
    h = act(group_norm(W, 'conv_norm_out', h, groups, eps))
    return conv(W, 'conv_out', h)


def _unet2d_resampler(cfg, kind, direction):
    """How a UNet2DModel block resamples, as v0.25.1's get_down_block / get_up_block build it: 'resnet' (a
    ResnetBlock2D with down / up = True) in ResnetDownsampleBlock2D / ResnetUpsampleBlock2D, and in
    AttnDownBlock2D / AttnUpBlock2D under downsample_type / upsample_type 'resnet'; 'conv' otherwise
    (DownBlock2D and UpBlock2D ignore those options)."""
    if kind in ('ResnetDownsampleBlock2D', 'ResnetUpsampleBlock2D'):
        return 'resnet'
    if kind in ('AttnDownBlock2D', 'AttnUpBlock2D'):
        return cfg.get(f'{direction}sample_type', 'conv') or 'conv'
    return 'conv'


# NCSN++'s skip blocks (score-SDE models): output_scale_factor √2 (np.sqrt(2.0)) whatever the U-Net's.
SKIP_DOWN, SKIP_UP = ('SkipDownBlock2D', 'AttnSkipDownBlock2D'), ('SkipUpBlock2D', 'AttnSkipUpBlock2D')
SKIP_SCALE = math.sqrt(2.0)


def _quarter(c):
    """The group count the skip blocks (and, under norm_num_groups None, the mid block and conv_norm_out) use: min(C // 4, 32)."""
    return min(c // 4, 32)


def unet_2d(W, cfg, sample, timestep, class_labels=None):
    """UNet2DModel.forward(sample, timestep, class_labels).sample. time_embedding_type
    'positional' (Timesteps), 'fourier' (GaussianFourierProjection of ln t, width 2·block_out_channels[0],
    and the output divided by the timesteps) or 'learned' (nn.Embedding(num_train_timesteps) over the
    timesteps). It has no forward_upsample_size: H and W must divide by 2^levels-1. NCSN++'s skip blocks
    carry skip_sample: the (centered) input, FIR-downsampled by each skip down block that downsamples
    (which adds skip_conv of it to its output), then reset to None before the up blocks, where each
    skip up block FIR-upsamples it (None becomes 0) and, where it upsamples, adds
    skip_conv(SiLU(skip_norm(h))); what is left is added to conv_out's output, before the fourier division.
    norm_num_groups None (only the skip blocks, which compute their own groups, build with it): the mid
    block and conv_norm_out take min(C // 4, 32). resnet_time_scale_shift 'scale_shift': every resnet,
    and the mid attention has no group norm (attn_norm_num_groups None)."""
    for key, allowed in [('class_embed_type', [None, 'timestep', 'identity']), ('time_embedding_type', ['positional', 'fourier', 'learned']),
                         ('resnet_time_scale_shift', ['default', 'scale_shift']), ('downsample_type', ['conv', 'resnet']),
                         ('upsample_type', ['conv', 'resnet']), ('add_attention', [True])]:
        _refuse(cfg, key, allowed)
    # get_down_block / get_up_block strip a leading 'UNetRes'.
    strip = lambda k: k[7:] if k.startswith('UNetRes') else k
    down_types = [strip(k) for k in cfg['down_block_types']]
    up_types = [strip(k) for k in cfg['up_block_types']]
    assert set(down_types) <= {'DownBlock2D', 'AttnDownBlock2D', 'ResnetDownsampleBlock2D', *SKIP_DOWN}, down_types
    assert set(up_types) <= {'UpBlock2D', 'AttnUpBlock2D', 'ResnetUpsampleBlock2D', *SKIP_UP}, up_types
    ch = cfg['block_out_channels']
    n = len(ch)
    groups_cfg, eps = cfg.get('norm_num_groups', 32), cfg.get('norm_eps', 1e-5)
    if groups_cfg is None:
        assert set(down_types) <= set(SKIP_DOWN) and set(up_types) <= set(SKIP_UP), 'norm_num_groups None needs skip blocks only'
    groups = groups_cfg if groups_cfg is not None else _quarter(ch[0])
    mid_res_groups = groups_cfg if groups_cfg is not None else _quarter(ch[-1])
    time_norm = cfg.get('resnet_time_scale_shift', 'default')
    layers = cfg.get('layers_per_block', 2)
    head_dim = cfg.get('attention_head_dim', 8)
    mid_scale = cfg.get('mid_block_scale_factor', 1)

    if cfg.get('center_input_sample', False):
        sample = 2 * sample - 1.0

    B = sample.shape[0]
    t = timestep.expand(B) if timestep.numel() == 1 else timestep
    time_type = cfg.get('time_embedding_type', 'positional')
    if time_type == 'fourier':
        # flip_sin_to_cos and freq_shift are not passed to GaussianFourierProjection.
        proj = lambda x: gaussian_fourier(W, 'time_proj', x)
    elif time_type == 'learned':
        proj = lambda x: W['time_proj.weight'][x]
    else:
        proj = lambda x: timestep_embedding(x, ch[0], cfg.get('flip_sin_to_cos', True), cfg.get('freq_shift', 0))
    # act_fn reaches the resnets only: UNet2DModel's TimestepEmbeddings and conv_act are always SiLU.
    act = get_activation(cfg.get('act_fn', 'silu'))
    temb = _class_embedding(W, cfg, time_mlp(W, 'time_embedding', proj(t)), class_labels, proj)

    def attn(p, x, c, norm_groups=groups, rescale=1.0):
        # heads = channels // attention_head_dim, where a null attention_head_dim means one head.
        return spatial_attention(W, p, x, c // (head_dim or c), norm_groups, eps, rescale)

    def res(p, x, g, scale=1.0, **kw):
        return resnet(W, p, x, temb, g, eps, scale, act=act, time_norm=time_norm, **kw)

    skip_sample = sample
    h = conv(W, 'conv_in', sample)
    skips = [h]
    for i, kind in enumerate(down_types):
        p = f'down_blocks.{i}'
        if kind in SKIP_DOWN:
            # groups min(C // 4, 32) per norm, output scale √2, the attention's norm 32 groups.
            for j in range(layers):
                h = res(f'{p}.resnets.{j}', h, _quarter(h.shape[1]), SKIP_SCALE, groups_out=_quarter(ch[i]))
                if kind == 'AttnSkipDownBlock2D':
                    h = attn(f'{p}.attentions.{j}', h, ch[i], 32, SKIP_SCALE)
                skips.append(h)
            if i < n - 1:
                h = res(f'{p}.resnet_down', h, _quarter(ch[i]), SKIP_SCALE, resample='fir_down')
                skip_sample = fir_resample(skip_sample, 'down')
                h = conv(W, f'{p}.skip_conv', skip_sample, padding=0) + h
                skips.append(h)
            continue
        for j in range(layers):
            h = res(f'{p}.resnets.{j}', h, groups)
            if kind == 'AttnDownBlock2D':
                h = attn(f'{p}.attentions.{j}', h, ch[i])
            skips.append(h)
        if i < n - 1:
            if _unet2d_resampler(cfg, kind, 'down') == 'resnet':
                h = res(f'{p}.downsamplers.0', h, groups, resample='down')
            else:
                h = downsample(W, f'{p}.downsamplers.0', h, cfg.get('downsample_padding', 1))
            skips.append(h)

    # UNetMidBlock2D: without attn_norm_num_groups its attention keeps a group norm (of the resnets'
    # groups) only under the default time embedding norm.
    mid_groups = cfg.get('attn_norm_num_groups') or (mid_res_groups if time_norm == 'default' else None)
    h = res('mid_block.resnets.0', h, mid_res_groups, mid_scale)
    h = spatial_attention(W, 'mid_block.attentions.0', h, ch[-1] // (head_dim or ch[-1]), mid_groups, eps, mid_scale)
    h = res('mid_block.resnets.1', h, mid_res_groups, mid_scale)

    rev = ch[::-1]
    skip_sample = None
    for i, kind in enumerate(up_types):
        p = f'up_blocks.{i}'
        if kind in SKIP_UP:
            for j in range(layers + 1):
                rin, skip = h.shape[1], skips.pop()
                # AttnSkipUpBlock2D's groups are min(in + skip // 4, 32) (// before +), SkipUpBlock2D's min((in + skip) // 4, 32).
                g1 = min(rin + skip.shape[1] // 4, 32) if kind == 'AttnSkipUpBlock2D' else _quarter(rin + skip.shape[1])
                h = res(f'{p}.resnets.{j}', torch.cat([h, skip], dim=1), g1, SKIP_SCALE, groups_out=_quarter(rev[i]))
            if kind == 'AttnSkipUpBlock2D':
                h = attn(f'{p}.attentions.0', h, rev[i], 32, SKIP_SCALE)
            skip_sample = fir_resample(skip_sample, 'up') if skip_sample is not None else 0
            if i < n - 1:
                # SiLU whatever act_fn is.
                skip_sample = skip_sample + conv(W, f'{p}.skip_conv', F.silu(group_norm(W, f'{p}.skip_norm', h, _quarter(rev[i]), eps)))
                h = res(f'{p}.resnet_up', h, _quarter(rev[i]), SKIP_SCALE, resample='fir_up')
            continue
        for j in range(layers + 1):
            h = res(f'{p}.resnets.{j}', torch.cat([h, skips.pop()], dim=1), groups)
            if kind == 'AttnUpBlock2D':
                h = attn(f'{p}.attentions.{j}', h, rev[i])
        if i < n - 1:
            if _unet2d_resampler(cfg, kind, 'up') == 'resnet':
                h = res(f'{p}.upsamplers.0', h, groups, resample='up')
            else:
                h = upsample(W, f'{p}.upsamplers.0', h)
    assert not skips
    h = F.silu(group_norm(W, 'conv_norm_out', h, groups, eps))
    out = conv(W, 'conv_out', h)
    if skip_sample is not None:
        out = out + skip_sample
    if time_type == 'fourier':
        out = out / t.reshape(B, 1, 1, 1)
    return out


def _vae_mid(W, p, h, groups, zq=None, attention=True, act=F.silu):
    # UNetMidBlock2D with temb None, eps 1e-6 and one attention head over all channels; with zq
    # (resnet_time_scale_shift 'spatial') SpatialNorms everywhere and attn_groups None.
    h = resnet(W, f'{p}.resnets.0', h, None, groups, 1e-6, zq=zq, act=act)
    if attention:
        h = spatial_attention(W, f'{p}.attentions.0', h, 1, None if zq is not None else groups, 1e-6, zq=zq)
    return resnet(W, f'{p}.resnets.1', h, None, groups, 1e-6, zq=zq, act=act)


VAE_DOWN, VAE_UP = ('DownEncoderBlock2D', 'AttnDownEncoderBlock2D'), ('UpDecoderBlock2D', 'AttnUpDecoderBlock2D')


def vae_block_types(cfg, key):
    """The Encoder's down_block_types / the Decoder's up_block_types, one per level ('UNetRes' prefix
    stripped, as get_down_block / get_up_block do)."""
    n = len(cfg['block_out_channels'])
    kinds = [k[7:] if k.startswith('UNetRes') else k for k in cfg.get(key) or [VAE_DOWN[0] if key == 'down_block_types' else VAE_UP[0]] * n]
    assert len(kinds) == n and set(kinds) <= set(VAE_DOWN if key == 'down_block_types' else VAE_UP), kinds
    return kinds


def vae_encode_mean(W, cfg, image):
    """AutoencoderKL.encode(image).latent_dist.mean. act_fn: the resnets' (conv_act is always SiLU).
    AttnDownEncoderBlock2D: an attention after each resnet (one head: the Encoder passes attention_head_dim
    = the block's channels; group norm of norm_num_groups, eps 1e-6, residual)."""
    ch, groups, layers = cfg['block_out_channels'], cfg.get('norm_num_groups', 32), cfg.get('layers_per_block', 1)
    act = get_activation(cfg.get('act_fn', 'silu'))
    h = conv(W, 'encoder.conv_in', image)
    for i, kind in enumerate(vae_block_types(cfg, 'down_block_types')):
        p = f'encoder.down_blocks.{i}'
        for j in range(layers):
            h = resnet(W, f'{p}.resnets.{j}', h, None, groups, 1e-6, act=act)
            if kind == 'AttnDownEncoderBlock2D':
                h = spatial_attention(W, f'{p}.attentions.{j}', h, 1, groups, 1e-6)
        if i < len(ch) - 1:
            h = downsample(W, f'{p}.downsamplers.0', h, 0)
    h = _vae_mid(W, 'encoder.mid_block', h, groups, act=act)
    h = conv(W, 'encoder.conv_out', F.silu(group_norm(W, 'encoder.conv_norm_out', h, groups, 1e-6)))
    moments = conv(W, 'quant_conv', h, padding=0)
    return moments[:, :cfg.get('latent_channels', 4)]


def vae_decode(W, cfg, latents, zq=None):
    """AutoencoderKL.decode(latents).sample (no scaling_factor applied, as diffusers' decode does not);
    with zq, the Decoder under norm_type 'spatial' (every norm a SpatialNorm over zq). act_fn: the
    resnets' (conv_act is always SiLU). AttnUpDecoderBlock2D: an attention after each resnet (one head,
    residual), with a group norm, or under 'spatial' a SpatialNorm over zq and no group norm."""
    ch, groups, layers = cfg['block_out_channels'], cfg.get('norm_num_groups', 32), cfg.get('layers_per_block', 1)
    act = get_activation(cfg.get('act_fn', 'silu'))
    h = conv(W, 'post_quant_conv', latents, padding=0)
    h = conv(W, 'decoder.conv_in', h)
    h = _vae_mid(W, 'decoder.mid_block', h, groups, zq, cfg.get('mid_block_add_attention', True), act)
    for i, kind in enumerate(vae_block_types(cfg, 'up_block_types')):
        p = f'decoder.up_blocks.{i}'
        for j in range(layers + 1):
            h = resnet(W, f'{p}.resnets.{j}', h, None, groups, 1e-6, zq=zq, act=act)
            if kind == 'AttnUpDecoderBlock2D':
                h = spatial_attention(W, f'{p}.attentions.{j}', h, 1, None if zq is not None else groups, 1e-6, zq=zq)
        if i < len(ch) - 1:
            h = upsample(W, f'{p}.upsamplers.0', h)
    if zq is not None:
        h = spatial_norm(W, 'decoder.conv_norm_out', h, zq)
    else:
        h = group_norm(W, 'decoder.conv_norm_out', h, groups, 1e-6)
    return conv(W, 'decoder.conv_out', F.silu(h))


def vq_decode(W, cfg, latents):
    """VQModel.decode(latents).sample: each latent vector replaced by its nearest codebook entry
    (VectorQuantizer, legacy: argmin of the squared distance, first index on ties), then
    post_quant_conv and the Decoder, which under norm_type 'spatial' also takes the quantized latents."""
    for key, allowed in [('norm_type', ['group', 'spatial']), ('lookup_from_codebook', [False])]:
        _refuse(cfg, key, allowed)
    E = W['quantize.embedding.weight']
    B, D, H, Wd = latents.shape
    z = latents.permute(0, 2, 3, 1).reshape(-1, D)
    idx = torch.argmin(torch.cdist(z, E), dim=1)
    q = E[idx].reshape(B, H, Wd, D).permute(0, 3, 1, 2)
    return vae_decode(W, cfg, q, q if cfg.get('norm_type', 'group') == 'spatial' else None)


def _tiny_block(W, p, x, act):
    """unet_2d_blocks.AutoencoderTinyBlock (in = out channels, so the skip is the identity):
    ReLU(conv(act(conv(act(conv(x))))) + x); the fuse is always ReLU."""
    h = conv(W, f'{p}.conv.4', act(conv(W, f'{p}.conv.2', act(conv(W, f'{p}.conv.0', x)))))
    return F.relu(h + x)


def taesd_decode(W, cfg, latents):
    """AutoencoderTiny.decode(latents).sample (no slicing or tiling): DecoderTiny's soft clamp
    tanh(x / 3)·3, conv → act_fn, then per stage num_decoder_blocks blocks, a nearest 2x upsample
    and a bias-free conv (the last stage: no upsample, conv with bias to out_channels), then x·2 − 1."""
    _refuse(cfg, 'upsampling_scaling_factor', [2])
    act = get_activation(cfg.get('act_fn', 'relu'))
    nb = cfg.get('num_decoder_blocks', [3, 3, 3, 1])
    h = torch.tanh(latents / 3) * 3
    h = act(conv(W, 'decoder.layers.0', h))
    idx = 2
    for i, n in enumerate(nb):
        for _ in range(n):
            h = _tiny_block(W, f'decoder.layers.{idx}', h, act)
            idx += 1
        if i < len(nb) - 1:
            h = F.interpolate(h, scale_factor=2, mode='nearest')
            idx += 1
        h = conv(W, f'decoder.layers.{idx}', h)
        idx += 1
    return h * 2 - 1

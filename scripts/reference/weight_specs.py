"""The weight names and shapes diffusers v0.25.1 creates for a config (the classes models.py runs),
so that random weights can be made for configs no diffusers fixture covers."""


def _conv(p, cout, cin, k=3):
    return {f'{p}.weight': (cout, cin, k, k), f'{p}.bias': (cout,)}


def _lin(p, cout, cin, bias=True):
    return {f'{p}.weight': (cout, cin), **({f'{p}.bias': (cout,)} if bias else {})}


def _norm(p, c):
    return {f'{p}.weight': (c,), f'{p}.bias': (c,)}


def _resnet(p, cin, cout, temb, scale_shift=False, shortcut=False):
    """scale_shift: time_emb_proj to 2·cout (resnet_time_scale_shift 'scale_shift'); shortcut: use_in_shortcut
    (a 1x1 conv_shortcut even where cin = cout)."""
    s = {**_norm(f'{p}.norm1', cin), **_conv(f'{p}.conv1', cout, cin), **_norm(f'{p}.norm2', cout), **_conv(f'{p}.conv2', cout, cout)}
    if temb:
        s.update(_lin(f'{p}.time_emb_proj', 2 * cout if scale_shift else cout, temb))
    if cin != cout or shortcut:
        s.update(_conv(f'{p}.conv_shortcut', cout, cin, 1))
    return s


def _spatial_attention(p, c):
    s = _norm(f'{p}.group_norm', c)
    for name in ['to_q', 'to_k', 'to_v', 'to_out.0']:
        s.update(_lin(f'{p}.{name}', c, c))
    return s


def _transformer(p, c, ctx, linear_projection, layers, only_cross=False):
    # inner_dim = heads · (c // heads) = c for the head counts used here.
    proj = (lambda q, o, i: _lin(q, o, i)) if linear_projection else (lambda q, o, i: _conv(q, o, i, 1))
    s = {**_norm(f'{p}.norm', c), **proj(f'{p}.proj_in', c, c), **proj(f'{p}.proj_out', c, c)}
    for i in range(layers):
        b = f'{p}.transformer_blocks.{i}'
        for n in ['norm1', 'norm2', 'norm3']:
            s.update(_norm(f'{b}.{n}', c))
        # only_cross_attention: attn1's keys and values come from the context too.
        for a, kv in [('attn1', ctx if only_cross else c), ('attn2', ctx)]:
            s.update(_lin(f'{b}.{a}.to_q', c, c, False))
            s.update(_lin(f'{b}.{a}.to_k', c, kv, False))
            s.update(_lin(f'{b}.{a}.to_v', c, kv, False))
            s.update(_lin(f'{b}.{a}.to_out.0', c, c))
        s.update(_lin(f'{b}.ff.net.0.proj', 8 * c, c))
        s.update(_lin(f'{b}.ff.net.2', c, 4 * c))
    return s


def _unet(cfg, cross):
    """UNet2DConditionModel when cross is True, UNet2DModel otherwise."""
    ch, n = cfg['block_out_channels'], len(cfg['block_out_channels'])
    layers = cfg['layers_per_block']
    layers = layers if isinstance(layers, list) else [layers] * n
    # time_embedding_dim (UNet2DConditionModel): the time embedding's width, 4·block_out_channels[0] when null.
    temb = (cfg.get('time_embedding_dim') if cross else None) or 4 * ch[0]
    tl = cfg.get('transformer_layers_per_block', 1)
    tl = tl if isinstance(tl, list) else [tl] * n

    oc = cfg.get('only_cross_attention', False)
    oc = oc if isinstance(oc, list) else [oc] * n
    # cross_attention_dim: an int or one per level (down block i entry i, the mid block the last, up block i reversed).
    cad = cfg.get('cross_attention_dim', 1280) if cross else None
    cad = cad if isinstance(cad, list) else [cad] * n

    def block_attn(p, kind, c, level, only_cross=None):
        if 'Attn' not in kind:
            return {}
        if not cross:
            return _spatial_attention(p, c)
        return _transformer(p, c, cad[level], cfg.get('use_linear_projection', False), tl[level], oc[level] if only_cross is None else only_cross)

    # UNet2DModel's time_embedding_type: 'fourier' has GaussianFourierProjection's weight, registered as both
    # W and weight, and doubles timestep_input_dim; 'learned' an nn.Embedding(num_train_timesteps, ch[0]).
    time_type = 'positional' if cross else cfg.get('time_embedding_type', 'positional')
    tin = 2 * ch[0] if time_type == 'fourier' else ch[0]
    s = {**_lin('time_embedding.linear_1', temb, tin), **_lin('time_embedding.linear_2', temb, temb), **_conv('conv_in', ch[0], cfg['in_channels'], cfg.get('conv_in_kernel', 3))}
    if time_type == 'fourier':
        s.update({'time_proj.weight': (ch[0],), 'time_proj.W': (ch[0],)})
    elif time_type == 'learned':
        s['time_proj.weight'] = (cfg['num_train_timesteps'], ch[0])
    if cfg.get('time_cond_proj_dim') is not None:
        s.update(_lin('time_embedding.cond_proj', ch[0], cfg['time_cond_proj_dim'], bias=False))
    # class_embed_type None with num_class_embeds: nn.Embedding; 'timestep': a TimestepEmbedding
    # from the sinusoidal projection's width; 'identity' has no weights.
    class_kind = cfg.get('class_embed_type')
    if class_kind is None and cfg.get('num_class_embeds') is not None:
        s['class_embedding.weight'] = (cfg['num_class_embeds'], temb)
    elif class_kind == 'timestep':
        s.update({**_lin('class_embedding.linear_1', temb, tin), **_lin('class_embedding.linear_2', temb, temb)})
    elif class_kind == 'projection':
        pin = cfg['projection_class_embeddings_input_dim']
        s.update({**_lin('class_embedding.linear_1', temb, pin), **_lin('class_embedding.linear_2', temb, temb)})
    elif class_kind == 'simple_projection':
        s.update(_lin('class_embedding', temb, cfg['projection_class_embeddings_input_dim']))
    # addition_embed_type 'text_time' (SDXL): add_embedding, a TimestepEmbedding from projection_class_embeddings_input_dim
    # (add_time_proj has no weights).
    if cross and cfg.get('addition_embed_type') == 'text_time':
        pin = cfg['projection_class_embeddings_input_dim']
        s.update({**_lin('add_embedding.linear_1', temb, pin), **_lin('add_embedding.linear_2', temb, temb)})
    # get_down_block / get_up_block strip a leading 'UNetRes'. A ResnetBlock2D resamples (down / up = True) in
    # ResnetDownsampleBlock2D / ResnetUpsampleBlock2D, and in UNet2DModel's AttnDownBlock2D / AttnUpBlock2D under
    # downsample_type / upsample_type 'resnet'; a conv Downsample2D / Upsample2D otherwise.
    strip = lambda k: k[7:] if k.startswith('UNetRes') else k

    def resnet_resampler(kind, direction):
        return kind in ('ResnetDownsampleBlock2D', 'ResnetUpsampleBlock2D') or (
            not cross and kind in ('AttnDownBlock2D', 'AttnUpBlock2D') and cfg.get(f'{direction}sample_type') == 'resnet')

    # UNet2DModel's resnet_time_scale_shift 'scale_shift': every time_emb_proj projects to 2·C.
    shift = not cross and cfg.get('resnet_time_scale_shift', 'default') == 'scale_shift'
    resnet = lambda p, cin, cout, shortcut=False: _resnet(p, cin, cout, temb, shift, shortcut)
    out = ch[0]
    for i, kind in enumerate(map(strip, cfg['down_block_types'])):
        cin, out = out, ch[i]
        for j in range(layers[i]):
            s.update(resnet(f'down_blocks.{i}.resnets.{j}', cin if j == 0 else out, out))
            s.update(block_attn(f'down_blocks.{i}.attentions.{j}', kind, out, i))
        if i < n - 1 and kind in ('SkipDownBlock2D', 'AttnSkipDownBlock2D'):
            # NCSN++: resnet_down (use_in_shortcut) and skip_conv, 1x1 from the 3-channel skip sample
            # (FirDownsample2D has no weights without use_conv).
            s.update(resnet(f'down_blocks.{i}.resnet_down', out, out, True))
            s.update(_conv(f'down_blocks.{i}.skip_conv', out, 3, 1))
        elif i < n - 1 and resnet_resampler(kind, 'down'):
            s.update(resnet(f'down_blocks.{i}.downsamplers.0', out, out))
        elif i < n - 1:
            s.update(_conv(f'down_blocks.{i}.downsamplers.0.conv', out, out))
    # UNetMidBlock2DCrossAttn (no only_cross_attention of its own), UNetMidBlock2D as
    # UNet2DConditionModel builds it (one resnet), or no mid block.
    mid_type = cfg.get('mid_block_type', 'UNetMidBlock2DCrossAttn') if cross else 'UNetMidBlock2D+attn'
    if mid_type is not None:
        s.update(resnet('mid_block.resnets.0', ch[-1], ch[-1]))
    if mid_type in ('UNetMidBlock2DCrossAttn', 'UNetMidBlock2D+attn'):
        mid_attn = block_attn('mid_block.attentions.0', 'Attn', ch[-1], n - 1, False)
        if shift and cfg.get('attn_norm_num_groups') is None:
            # UNet2DModel's mid attention has no group norm under 'scale_shift' without attn_norm_num_groups.
            mid_attn = {k: v for k, v in mid_attn.items() if '.group_norm.' not in k}
        s.update(mid_attn)
        s.update(resnet('mid_block.resnets.1', ch[-1], ch[-1]))
    rev, rev_layers = ch[::-1], layers[::-1]
    for i, kind in enumerate(map(strip, cfg['up_block_types'])):
        prev, out, skip_in = rev[max(i - 1, 0)], rev[i], rev[min(i + 1, n - 1)]
        skip_block = kind in ('SkipUpBlock2D', 'AttnSkipUpBlock2D')
        for j in range(rev_layers[i] + 1):
            cin = (prev if j == 0 else out) + (skip_in if j == rev_layers[i] else out)
            s.update(resnet(f'up_blocks.{i}.resnets.{j}', cin, out))
            # AttnSkipUpBlock2D has one attention, after all its resnets.
            if not skip_block or j == 0:
                s.update(block_attn(f'up_blocks.{i}.attentions.{j}', kind, out, n - 1 - i))
        if i < n - 1 and skip_block:
            # NCSN++: resnet_up (use_in_shortcut), skip_norm and skip_conv (3x3 to the 3-channel skip);
            # FirUpsample2D has no weights without use_conv.
            s.update(resnet(f'up_blocks.{i}.resnet_up', out, out, True))
            s.update({**_norm(f'up_blocks.{i}.skip_norm', out), **_conv(f'up_blocks.{i}.skip_conv', 3, out)})
        elif i < n - 1 and resnet_resampler(kind, 'up'):
            s.update(resnet(f'up_blocks.{i}.upsamplers.0', out, out))
        elif i < n - 1:
            s.update(_conv(f'up_blocks.{i}.upsamplers.0.conv', out, out))
    s.update({**_norm('conv_norm_out', ch[0]), **_conv('conv_out', cfg['out_channels'], ch[0], cfg.get('conv_out_kernel', 3))})
    return s


def unet_2d_condition(cfg):
    return _unet(cfg, True)


def unet_2d(cfg):
    return _unet(cfg, False)


def _spatial_norm(p, c, zq):
    return {**_norm(f'{p}.norm_layer', c), **_conv(f'{p}.conv_y', c, zq, 1), **_conv(f'{p}.conv_b', c, zq, 1)}


def _vae(cfg, double_z, zq=None):
    """Encoder, decoder and quant convs of AutoencoderKL (double_z) / VQModel (quant_conv and
    post_quant_conv from/to vq_embed_dim). zq: the SpatialNorms' zq channels under norm_type 'spatial'
    (resnet norms, the decoder attentions' spatial_norm instead of their group_norm, conv_norm_out)."""
    ch, layers, lat = cfg['block_out_channels'], cfg['layers_per_block'], cfg['latent_channels']
    n = len(ch)

    def resnet(p, cin, cout, spatial):
        s = _resnet(p, cin, cout, 0)
        if spatial:
            for k in ('norm1', 'norm2'):
                c = s.pop(f'{p}.{k}.weight')[0]
                del s[f'{p}.{k}.bias']
                s.update(_spatial_norm(f'{p}.{k}', c, zq))
        return s

    def attention(p, c, spatial):
        # The mid block's and AttnDownEncoderBlock2D / AttnUpDecoderBlock2D's: under 'spatial' a
        # spatial_norm over zq instead of the group_norm.
        attn = _spatial_attention(p, c)
        if spatial:
            del attn[f'{p}.group_norm.weight'], attn[f'{p}.group_norm.bias']
            attn.update(_spatial_norm(f'{p}.spatial_norm', c, zq))
        return attn

    def mid(p, c, spatial=False):
        attn = attention(f'{p}.attentions.0', c, spatial) if cfg.get('mid_block_add_attention', True) else {}
        return {**resnet(f'{p}.resnets.0', c, c, spatial), **attn, **resnet(f'{p}.resnets.1', c, c, spatial)}

    # get_down_block / get_up_block strip a leading 'UNetRes'; AttnDownEncoderBlock2D / AttnUpDecoderBlock2D
    # have an attention (attentions.j) after each resnet.
    strip = lambda k: k[7:] if k.startswith('UNetRes') else k
    down_types = [strip(k) for k in cfg.get('down_block_types') or ['DownEncoderBlock2D'] * n]
    up_types = [strip(k) for k in cfg.get('up_block_types') or ['UpDecoderBlock2D'] * n]

    s = _conv('encoder.conv_in', ch[0], cfg['in_channels'])
    out = ch[0]
    for i in range(n):
        cin, out = out, ch[i]
        for j in range(layers):
            s.update(resnet(f'encoder.down_blocks.{i}.resnets.{j}', cin if j == 0 else out, out, False))
            if down_types[i] == 'AttnDownEncoderBlock2D':
                s.update(attention(f'encoder.down_blocks.{i}.attentions.{j}', out, False))
        if i < n - 1:
            s.update(_conv(f'encoder.down_blocks.{i}.downsamplers.0.conv', out, out))
    s.update(mid('encoder.mid_block', ch[-1]))
    zc = 2 * lat if double_z else lat
    s.update({**_norm('encoder.conv_norm_out', ch[-1]), **_conv('encoder.conv_out', zc, ch[-1])})
    if double_z:
        s.update({**_conv('quant_conv', zc, zc, 1), **_conv('post_quant_conv', lat, lat, 1)})
    else:
        vq = cfg.get('vq_embed_dim') or lat
        s.update({**_conv('quant_conv', vq, lat, 1), **_conv('post_quant_conv', lat, vq, 1)})
        s['quantize.embedding.weight'] = (cfg.get('num_vq_embeddings', 256), vq)
    spatial = zq is not None
    s.update(_conv('decoder.conv_in', ch[-1], lat))
    s.update(mid('decoder.mid_block', ch[-1], spatial))
    rev = ch[::-1]
    for i in range(n):
        prev, out = rev[max(i - 1, 0)], rev[i]
        for j in range(layers + 1):
            s.update(resnet(f'decoder.up_blocks.{i}.resnets.{j}', prev if j == 0 else out, out, spatial))
            if up_types[i] == 'AttnUpDecoderBlock2D':
                s.update(attention(f'decoder.up_blocks.{i}.attentions.{j}', out, spatial))
        if i < n - 1:
            s.update(_conv(f'decoder.up_blocks.{i}.upsamplers.0.conv', out, out))
    s.update({**(_spatial_norm('decoder.conv_norm_out', ch[0], zq) if spatial else _norm('decoder.conv_norm_out', ch[0])),
              **_conv('decoder.conv_out', cfg['out_channels'], ch[0])})
    return s


def autoencoder_kl(cfg):
    return _vae(cfg, True)


def vq_model(cfg):
    # diffusers' Decoder gives its SpatialNorms temb_channels = in_channels = latent_channels.
    return _vae(cfg, False, cfg['latent_channels'] if cfg.get('norm_type', 'group') == 'spatial' else None)


def _tiny_block(p, c):
    return {**_conv(f'{p}.conv.0', c, c), **_conv(f'{p}.conv.2', c, c), **_conv(f'{p}.conv.4', c, c)}


def autoencoder_tiny(cfg):
    """EncoderTiny and DecoderTiny (stages of equal width, so every block's skip is the identity).
    Their nn.Sequential indices count the weightless act_fn after the decoder's conv_in and each Upsample."""
    enc_ch, enc_nb = cfg['encoder_block_out_channels'], cfg['num_encoder_blocks']
    dec_ch, dec_nb = cfg['decoder_block_out_channels'], cfg['num_decoder_blocks']
    s, idx = {}, 0
    for i, n in enumerate(enc_nb):
        c = enc_ch[i]
        if i == 0:
            s.update(_conv(f'encoder.layers.{idx}', c, cfg['in_channels']))
        else:
            s[f'encoder.layers.{idx}.weight'] = (c, c, 3, 3)
        idx += 1
        for _ in range(n):
            s.update(_tiny_block(f'encoder.layers.{idx}', c))
            idx += 1
    s.update(_conv(f'encoder.layers.{idx}', cfg['latent_channels'], enc_ch[-1]))
    s.update(_conv('decoder.layers.0', dec_ch[0], cfg['latent_channels']))
    idx = 2
    for i, n in enumerate(dec_nb):
        c = dec_ch[i]
        for _ in range(n):
            s.update(_tiny_block(f'decoder.layers.{idx}', c))
            idx += 1
        if i < len(dec_nb) - 1:
            idx += 1
            s[f'decoder.layers.{idx}.weight'] = (c, c, 3, 3)
        else:
            s.update(_conv(f'decoder.layers.{idx}', cfg['out_channels'], c))
        idx += 1
    return s


SPECS = {'UNet2DConditionModel': unet_2d_condition, 'UNet2DModel': unet_2d, 'AutoencoderKL': autoencoder_kl, 'VQModel': vq_model,
         'AutoencoderTiny': autoencoder_tiny}

"""Naming shims so diffusers v0.25.1's PEFT LoRA code can load text-encoder LoRAs into transformers 5's CLIPTextModel.

Import it after diffusers_compat and before diffusers. diffusers v0.25.1 was written against transformers 4, where
CLIPTextModel wraps a CLIPTextTransformer at `.text_model`. So the module names in its LoRA files start with
`text_model.`, and diffusers finds a text encoder's attention and MLP modules by walking
`text_encoder.text_model.encoder.layers` (models/lora.py, `text_encoder_attn_modules` / `text_encoder_mlp_modules`,
which `load_lora_into_text_encoder` uses to read each layer's rank). transformers 5 dropped that wrapper:
CLIPTextModel holds the embeddings, encoder and final norm itself (its loader maps the Hub's `text_model.` weight
names). CLIPTextModelWithProjection still has `.text_model`, so SDXL's text_encoder_2 needs no shim.

Two shims, names only; no computation changes:

1. `CLIPTextModel.text_model` is a property returning the model itself, so diffusers' walk over
   `text_model.encoder.layers` reaches the same layers under the names transformers 4 gave them.
2. `CLIPTextModel.load_adapter` (transformers' PEFT integration, which diffusers calls with the adapter's state dict
   and its LoraConfig) first drops the `text_model.` prefix from the state dict's keys and from the config's
   target_modules, rank_pattern and alpha_pattern, so PEFT matches them to transformers 5's module names. The
   adapter's values, ranks and alphas are unchanged.
"""
import copy

from transformers import CLIPTextModel

PREFIX = 'text_model.'


def _strip(name):
    return name[len(PREFIX):] if name.startswith(PREFIX) else name


def _self(module):
    return module


if 'text_model' not in CLIPTextModel.__dict__:
    CLIPTextModel.text_model = property(_self)

    _load_adapter = CLIPTextModel.load_adapter

    def load_adapter(self, *args, adapter_state_dict=None, peft_config=None, **kwargs):
        if adapter_state_dict is not None:
            adapter_state_dict = {_strip(k): v for k, v in adapter_state_dict.items()}
        if peft_config is not None:
            peft_config = copy.deepcopy(peft_config)
            if peft_config.target_modules is not None and not isinstance(peft_config.target_modules, str):
                peft_config.target_modules = sorted(_strip(t) for t in peft_config.target_modules)
            peft_config.rank_pattern = {_strip(k): v for k, v in (peft_config.rank_pattern or {}).items()}
            peft_config.alpha_pattern = {_strip(k): v for k, v in (peft_config.alpha_pattern or {}).items()}
        return _load_adapter(self, *args, adapter_state_dict=adapter_state_dict, peft_config=peft_config, **kwargs)

    CLIPTextModel.load_adapter = load_adapter

"""Import shims so diffusers v0.25.1's source tree runs on the current transformers and huggingface_hub.

diffusers v0.25.1 (December 2023) imports two names that later releases removed:
`huggingface_hub.cached_download` (gone in huggingface_hub 0.26; diffusers only uses it for remote
community pipelines) and `transformers.utils.FLAX_WEIGHTS_NAME` (gone in transformers 5; diffusers only
compares file names with it). Importing this module before diffusers puts both back: the first as a
function that refuses to run, the second as the old constant 'flax_model.msgpack'.

huggingface_hub 1.x's `validate_hf_hub_args` decorator also drops the legacy `proxies` and
`resume_download` arguments before the call, and diffusers v0.25.1's `_get_model_file` (which
`from_pretrained` calls for every model folder) requires them as keyword-only arguments. The decorator
is replaced, for diffusers only (transformers has already applied its own), by one that passes the
arguments through unchanged; diffusers only loads local folders here.

Nothing else is changed; the pipeline, model and scheduler code that runs is diffusers' own.
"""
import huggingface_hub
import huggingface_hub.utils
import transformers.utils


def _no_hub(*args, **kwargs):
    raise RuntimeError('diffusers_compat: hub downloads are disabled (cached_download was removed from huggingface_hub)')


if not hasattr(huggingface_hub, 'cached_download'):
    huggingface_hub.cached_download = _no_hub
if not hasattr(transformers.utils, 'FLAX_WEIGHTS_NAME'):
    transformers.utils.FLAX_WEIGHTS_NAME = 'flax_model.msgpack'


def _keep_arguments(fn):
    return fn


huggingface_hub.utils.validate_hf_hub_args = _keep_arguments

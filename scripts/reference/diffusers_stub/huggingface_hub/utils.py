def validate_hf_hub_args(fn):
    return fn

# Minimal stand-in for diffusers.configuration_utils: just enough for the scheduler classes
# (config attribute access and register_to_config); the scheduler math is diffusers' own file.
import functools
import inspect


class FrozenDict(dict):
    def __getattr__(self, k):
        try:
            return self[k]
        except KeyError:
            raise AttributeError(k)


class ConfigMixin:
    config_name = None
    ignore_for_config = []

    def register_to_config(self, **kwargs):
        d = dict(getattr(self, '_internal_dict', {}))
        d.update(kwargs)
        self._internal_dict = FrozenDict(d)

    @property
    def config(self):
        return self._internal_dict


def register_to_config(init):
    @functools.wraps(init)
    def inner(self, *args, **kwargs):
        bound = inspect.signature(init).bind(self, *args, **kwargs)
        bound.apply_defaults()
        cfg = {k: v for k, v in bound.arguments.items() if k != 'self' and not k.startswith('_')}
        ConfigMixin.register_to_config(self, **cfg)
        init(self, *args, **kwargs)
    return inner

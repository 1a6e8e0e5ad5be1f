# Stand-in for diffusers.utils: the names the scheduler files import, nothing else.
import logging as _logging
from collections import OrderedDict


class BaseOutput(OrderedDict):
    def __post_init__(self):
        for k, v in self.__dict__.items():
            if v is not None:
                self[k] = v

    def __getitem__(self, k):
        if isinstance(k, str):
            return dict.__getitem__(self, k)
        return tuple(v for v in self.values())[k]


class PushToHubMixin:
    pass


class logging:
    @staticmethod
    def get_logger(name):
        return _logging.getLogger(name)


def deprecate(*args, **kwargs):
    pass

"""Silencing what other libraries log on the root logger that a user cannot act on."""

import contextlib
import logging


class _Dropped(logging.Filter):
    def __init__(self, fragments):
        super().__init__()
        self.fragments = fragments

    def filter(self, record):
        return not any(fragment in record.getMessage() for fragment in self.fragments)


@contextlib.contextmanager
def root_messages_silenced(*fragments):
    """Drop the root logger's records whose message holds one of ``fragments``. A handler
    is held on the root logger meanwhile, so that ``logging.warning`` does not configure
    it for the whole process."""
    root, handler, dropped = logging.getLogger(), logging.NullHandler(), _Dropped(fragments)
    root.addHandler(handler)
    root.addFilter(dropped)
    try:
        yield
    finally:
        root.removeFilter(dropped)
        root.removeHandler(handler)

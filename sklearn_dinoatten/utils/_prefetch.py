"""Run a generator ahead in a background thread, so that reading and preprocessing the
next volumes overlaps the backbone's forward pass (file decompression, numpy and torch
release the GIL)."""

import queue
import threading

_END = object()


class _Raised:
    def __init__(self, error):
        self.error = error


def prefetch(iterable, depth):
    """Yield the items of ``iterable``, produced up to ``depth`` items ahead by a thread.

    ``depth=0`` iterates in the caller's thread. An exception in the producer is raised
    in the caller at the point where its item would have come; if the caller stops early,
    the producer stops too.
    """
    if depth == 0:
        yield from iterable
        return
    items = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item):
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in iterable:
                if not put(item):
                    return
            put(_END)
        except BaseException as error:  # handed to the consumer, raised there
            put(_Raised(error))
        finally:
            if hasattr(iterable, "close"):  # a generator: run its clean-up here
                iterable.close()

    thread = threading.Thread(target=produce, name="dinoatten-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _END:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()

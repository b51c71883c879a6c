"""The Hugging Face hub, reached only when the weights asked for are not in its local
cache: a missing download fails at once, in one line that says what to pass instead."""

import socket
from urllib.parse import urlparse

HUB_TIMEOUT = 3  # seconds to reach the weights' hub before giving up


def check_hub(repo, files, name, instead):
    """Fail at once, in one line, when the hub repository ``repo`` that ``name`` loads
    from has none of ``files`` in the local Hugging Face cache and the hub cannot be
    reached, instead of after a minute of download retries; ``instead`` says what to
    pass."""
    from huggingface_hub import constants, try_to_load_from_cache

    if any(isinstance(try_to_load_from_cache(repo, file), str) for file in files):
        return  # downloaded before
    endpoint = urlparse(constants.ENDPOINT)
    try:
        if constants.HF_HUB_OFFLINE:
            raise OSError("HF_HUB_OFFLINE is set")
        socket.create_connection(
            (endpoint.hostname, endpoint.port or (80 if endpoint.scheme == "http" else 443)),
            timeout=HUB_TIMEOUT).close()
    except OSError as exc:
        raise RuntimeError(
            f"The pretrained weights of {name!r} are not in the local cache and "
            f"{endpoint.hostname} cannot be reached ({exc}): {instead}") from None

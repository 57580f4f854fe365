"""numba's on-disk cache (``cache=True``), made to rebuild an entry it cannot read.

numba raises from inside its loader (a pickle or decoding error) when a cache file is
truncated or overwritten, and the run stops there.  The flow kernels are one cache
entry shared by every family, so one damaged file would stop every model; a damaged
entry is instead treated as missing: the function's cache index is rewritten empty,
the function compiled again and saved afresh, and a warning logged.
"""
from __future__ import annotations

import logging

from numba.core.dispatcher import Dispatcher

__all__ = ["rebuild_damaged"]

_LOG = logging.getLogger("odesolve.cache")


def rebuild_damaged(*dispatchers) -> None:
    """Make each numba dispatcher in ``dispatchers`` rebuild a cache entry it cannot
    read instead of failing (anything else, a dispatcher without a cache included, is
    left as it is; applying it twice changes nothing)."""
    for dispatcher in dispatchers:
        if not isinstance(dispatcher, Dispatcher):
            continue
        cache = getattr(dispatcher, "_cache", None)
        load = getattr(cache, "load_overload", None)
        if load is None or getattr(load, "rebuilds_damaged", False):
            continue

        def load_or_rebuild(sig, target_context, load=load, cache=cache,
                            name=getattr(dispatcher, "__name__", "?")):
            try:
                return load(sig, target_context)
            except Exception as error:     # numba's loader: pickle, decoding, I/O errors
                _LOG.warning("numba's cache of %s could not be read (%s: %s); compiling it "
                             "again", name, type(error).__name__, error)
                try:
                    cache.flush()          # a fresh, empty index: the new entry is saved
                except OSError:
                    pass                   # read-only: compiled again in every process
                return None

        load_or_rebuild.rebuilds_damaged = True
        cache.load_overload = load_or_rebuild

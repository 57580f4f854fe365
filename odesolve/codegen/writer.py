"""The one writer of generated modules (theory right-hand sides and simulator kernels).

Generated source is written to ``cache_dir()/<name>.py`` and imported from there, so
that numba's own on-disk cache (``cache=True``) applies across processes.  Files are
written atomically (a concurrent process never imports half a file) and end with a
seal line naming the module and the SHA-256 of the text above it: a file whose seal is
missing or does not match (empty, truncated by a crash or a full disk, edited) is a
damaged entry and is rebuilt, never imported; so is an entry of numba's cache of its
functions that numba cannot read (:func:`odesolve._jit.rebuild_damaged`).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Callable

from .._jit import rebuild_damaged

__all__ = ["cache_dir", "load_generated", "write_generated"]


def cache_dir() -> Path:
    """Folder of the generated modules (``$ODESOLVE_CACHE`` or ``~/.cache/odesolve``)."""
    return Path(os.environ.get("ODESOLVE_CACHE", Path.home() / ".cache" / "odesolve"))


def _seal(name: str, text: str) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest()
    return f"# end of generated module {name}; sha256 {digest}\n"


def _intact(path: Path, name: str) -> bool:
    """Whether the file at ``path`` ends with the seal of ``name`` and of its own text."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return False
    body, _, last = text[:-1].rpartition("\n")
    return text.endswith("\n") and last + "\n" == _seal(name, body + "\n")


def _interpreted_njit(*args, **options):
    """Stand-in for ``numba.njit`` that leaves the function plain Python (both the
    ``@njit`` and the ``@njit(cache=True)`` forms)."""
    if len(args) == 1 and callable(args[0]) and not options:
        return args[0]
    return lambda fn: fn


def write_generated(name: str, make_source: Callable[[], str]) -> Path:
    """``cache_dir()/<name>.py``, written (atomically, sealed) from ``make_source()`` only
    if it is absent or damaged: the text of a generated module, imported or not."""
    path = cache_dir() / f"{name}.py"
    if not _intact(path, name):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
        try:
            text = make_source().rstrip("\n") + "\n\n"
            tmp.write_text(text + _seal(name, text))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return path


def load_generated(name: str, make_source: Callable[[], str],
                   jit: bool = True) -> tuple[ModuleType, Path]:
    """Import the generated module ``name``, writing it first if absent or damaged.

    Parameters
    ----------
    name : str
        Module name, unique for everything its source depends on (a digest).
    make_source : callable
        Returns the module's source; called only when the cached file is missing or
        damaged (so a warm start skips the derivation).
    jit : bool
        ``False`` runs the same source as plain Python: ``numba.njit`` becomes a no-op
        (no compilation; for debugging with pdb, and for tests that evaluate many
        families once each).

    Returns
    -------
    module : types.ModuleType
    path : pathlib.Path
        Where the source lives (``print``-able, importable).
    """
    path = write_generated(name, make_source)
    if not jit:
        module = ModuleType(f"{name}_interpreted")
        module.__file__ = str(path)
        module.njit = _interpreted_njit
        source = path.read_text().replace("from numba import njit\n", "", 1)
        exec(compile(source, str(path), "exec"), module.__dict__)
        return module, path
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    rebuild_damaged(*vars(module).values())
    return module, path

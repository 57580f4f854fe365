"""Output files replaced atomically, as a consistent set.

``odesolve run`` writes ``result.nc`` and ``result.png``, a sweep ``sweep.nc`` and
``sweep.png``: a run killed while saving must leave either the old set or the new one, never
a 0-byte PNG or a new ``result.nc`` beside an old ``result.png``, and no temporary files.
:func:`write_outputs` does it with a small journal:

1. every file of the set is written into a staging folder ``DIR/.odesolve-staging-<id>/``
   and flushed to disk;
2. the journal ``DIR/.odesolve-commit-<id>`` is created atomically: the commit point;
3. each staged file is renamed over its final name (:func:`os.replace`);
4. the journal and the staging folder are removed.

:func:`recover` — run by every writer and reader of the folder before anything else —
completes the renames of a committed set (killed during step 3) and deletes the staging
folder of an uncommitted one (killed before step 2).  So after any kill the folder, as
seen through odesolve, holds the old set or the new one; only a process killed during
step 3 and not followed by another odesolve command leaves the files of step 3 half
renamed on disk.  Writers and :func:`recover` hold an exclusive lock on the folder
(:func:`fcntl.flock`), so concurrent runs into one folder do not interleave.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> paths = write_outputs(folder, {"a.txt": lambda p: p.write_text("new a"),
...                                "b.txt": lambda p: p.write_text("new b")})
>>> sorted(p.name for p in folder.iterdir())
['a.txt', 'b.txt']
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import uuid
from pathlib import Path
from typing import Callable

__all__ = ["write_outputs", "recover", "STAGING_PREFIX", "JOURNAL_PREFIX"]

STAGING_PREFIX = ".odesolve-staging-"
JOURNAL_PREFIX = ".odesolve-commit-"


@contextlib.contextmanager
def _locked(directory: Path):
    """Exclusive lock on ``directory`` (held on the folder itself: no lock file to leave)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_outputs(directory, writers: dict[str, Callable[[Path], object]]) -> dict[str, Path]:
    """Write a set of files into ``directory`` atomically and consistently.

    Parameters
    ----------
    directory : path
        Created if missing.
    writers : dict
        ``{file name: write(path)}``; each callable writes its file at the path it is given
        (a staging path in the same file system).

    Returns
    -------
    dict
        ``{file name: final path}``.

    Raises
    ------
    ValueError
        If a name is not a plain file name.
    """
    directory = Path(directory)
    for name in writers:
        if Path(name).name != name or name.startswith("."):
            raise ValueError(f"output names must be plain file names, got {name!r}")
    directory.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    staging = directory / f"{STAGING_PREFIX}{token}"
    journal = directory / f"{JOURNAL_PREFIX}{token}"
    with _locked(directory):
        _recover_locked(directory)
        staging.mkdir()
        try:
            for name, write in writers.items():
                write(staging / name)
                _fsync(staging / name)
            pending = journal.with_name(journal.name + ".tmp")
            pending.write_text("\n".join(writers))
            _fsync(pending)
            os.replace(pending, journal)          # the commit point
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(journal.with_name(journal.name + ".tmp"))
            raise
        _complete(directory, journal)
    return {name: directory / name for name in writers}


def _complete(directory: Path, journal: Path) -> None:
    """Rename every staged file of a committed set over its final name, then clean up."""
    staging = directory / (STAGING_PREFIX + journal.name[len(JOURNAL_PREFIX):])
    for name in journal.read_text().split("\n"):
        if name and (staging / name).exists():
            os.replace(staging / name, directory / name)
    _fsync(directory)
    os.unlink(journal)
    shutil.rmtree(staging, ignore_errors=True)


def _recover_locked(directory: Path) -> None:
    for journal in sorted(directory.glob(JOURNAL_PREFIX + "*")):
        if journal.name.endswith(".tmp"):
            journal.unlink()                         # never committed
        else:
            _complete(directory, journal)
    for staging in directory.glob(STAGING_PREFIX + "*"):
        shutil.rmtree(staging, ignore_errors=True)   # its set was never committed


def recover(directory) -> None:
    """Finish or discard a set of outputs interrupted by a kill (see the module doc)."""
    directory = Path(directory)
    if not directory.is_dir() or not any(directory.glob(".odesolve-*")):
        return
    with _locked(directory):
        _recover_locked(directory)

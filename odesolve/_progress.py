"""Progress bars shared by the integrator, the simulator, the sweeps and the CLI."""
from __future__ import annotations

import sys

from tqdm.auto import tqdm

__all__ = ["progress_bar"]


def progress_bar(*, disable: bool = False, **kwargs):
    """A tqdm bar, silent when ``disable`` is true or stderr is not a terminal."""
    quiet = disable or not sys.stderr.isatty()
    return tqdm(disable=quiet, leave=False, **kwargs)

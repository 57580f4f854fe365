"""Progress bars shared by the integrator, the simulator, the sweeps and the CLI."""
from __future__ import annotations

import sys
import time
import warnings

from tqdm.auto import tqdm

from ._checks import ANNOUNCE_SECONDS, _duration
from .errors import CostWarning

__all__ = ["PaceNotice", "progress_bar"]


def progress_bar(*, disable: bool = False, **kwargs):
    """A tqdm bar, silent when ``disable`` is true or stderr is not a terminal."""
    quiet = disable or not sys.stderr.isatty()
    return tqdm(disable=quiet, leave=False, **kwargs)


class PaceNotice:
    """Announces, once, a run whose pace so far projects a long remainder.

    A solver's step is set by the flow itself (a stiff flow, e.g. a spectrum with a
    huge eigenvalue, takes tiny steps), so its cost cannot be estimated before the run:
    this watches it instead.  Called with the position reached (ODE time, say), it warns
    with a :class:`~odesolve.errors.CostWarning` when, after ``after`` seconds, the time
    still to go at the pace so far exceeds ``beyond`` seconds.

    Parameters
    ----------
    what : str
        The run, e.g. ``"the ODE (LSODA, 1,000 variables)"``.
    start, stop : float
        Where the run starts and ends, in the units of the positions it is called with.
    after, beyond : float
        Seconds (defaults: 20 s, and :data:`odesolve._checks.ANNOUNCE_SECONDS`).
    hint : str
        What makes such a run slow, appended to the message.

    Attributes
    ----------
    due : float
        The ``time.perf_counter()`` reading before which a call does nothing: a caller in
        a hot loop (a solver's callback) compares the clock with it instead of calling.

    >>> notice = PaceNotice("a run", 0.0, 100.0, after=0.0, beyond=-1.0)
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     notice(50.0); notice(60.0)
    >>> len(caught), caught[0].message.args[0].startswith("a run: at 50 of 100 after")
    (1, True)
    """

    def __init__(self, what: str, start: float, stop: float, after: float = 20.0,
                 beyond: float | None = None, hint: str = ""):
        self.what, self.start, self.stop, self.hint = what, start, stop, hint
        self.after = after
        self.beyond = ANNOUNCE_SECONDS if beyond is None else beyond
        self.began = time.perf_counter()
        self.due = self.began + after
        self.done = False

    def __call__(self, position: float) -> None:
        if self.done:
            return
        elapsed = time.perf_counter() - self.began
        if elapsed < self.after:
            return
        share = (position - self.start) / (self.stop - self.start)
        left = elapsed * (1.0 - share) / share if share > 0 else float("inf")
        if left > self.beyond:
            self.done = True
            pace = (f"about {_duration(left)} to go at this pace" if share > 0 else
                    "no progress yet")
            warnings.warn(CostWarning(
                f"{self.what}: at {position:.3g} of {self.stop:g} after {_duration(elapsed)}; "
                f"{pace}{self.hint}"), stacklevel=2)

"""The one time grid of theory and simulation, and the checks of times and tolerances."""
from __future__ import annotations

import numpy as np

from .._checks import check_real
from ..state import State

def time_grid(t_max: float, n_times: int, D: int | None = None, t0: float = 0.0) -> np.ndarray:
    """The default recording times of theory and simulation (the one time grid).

    ``t0``, then log-spaced times to ``t_max``: ``n_times − 1`` from ``t_max/1000`` when
    ``t0`` is before it, else ``n_times`` from ``t0`` itself (its first is ``t0``).  With ``D`` the times are rounded to whole SGD steps (multiples of 1/D, never
    past ``t_max``), so that theory and simulation are recorded at exactly the same times;
    duplicates are dropped.

    Parameters
    ----------
    t_max : float
        Last time (samples seen / D).
    n_times : int
        Number of times (at least 2).
    D : int, optional
        Input dimension, to round to SGD steps.
    t0 : float
        First time.

    Returns
    -------
    ndarray, shape (≤ n_times,)

    >>> time_grid(10.0, 5, D=100)
    array([ 0.  ,  0.01,  0.1 ,  1.  , 10.  ])
    >>> float(time_grid(10.0007, 3, D=1000)[-1])       # not rounded past t_max
    10.0
    >>> time_grid(10.0, 3, t0=5.0)                    # a late start: still 3 times
    array([ 5.        ,  7.07106781, 10.        ])
    >>> time_grid(10.0, 2)                            # the start and the end
    array([ 0., 10.])
    """
    if n_times < 2:
        raise ValueError(f"the number of recorded times must be >= 2, got {n_times}")
    first = max(t0, t_max / 1000.0, 1.0 / D if D else 0.0)
    # a grid that starts at t0 holds t0 already: n_times in all, not n_times − 1
    count = n_times if first == t0 else n_times - 1
    # one log-spaced time is t_max itself (np.geomspace would give only its start)
    t = np.geomspace(first, t_max, count) if first < t_max and count > 1 else np.array([t_max])
    if D:
        t = np.minimum(np.round(t * D), np.floor(t_max * D * (1 + 1e-12))) / D
    return np.unique(np.concatenate([[t0], t[t > t0]]))


#: Default absolute tolerance per unit of scale of the state, and the largest scale used:
#: 1e-9 for the usual initial scale 0.1 (the former fixed default), 1e-20 for overlaps of
#: size 1e-12, which a fixed 1e-9 would exceed (plateau exits off by 0.1, issue 11).
ATOL_PER_SCALE = 1e-8
ATOL_MAX_SCALE = 0.1


def default_atol(state: State) -> np.ndarray:
    """Absolute tolerance of each state variable, following the scale of the state.

    ``ATOL_PER_SCALE`` times the root mean square of its block at the initial state —
    the tracked overlaps ``Y``, the bulk Gram matrix ``G`` (quadratic in the weights) and
    the biases ``m`` — capped at ``ATOL_MAX_SCALE``; a block that is zero at the start
    takes the scale of ``Y``.

    Returns
    -------
    ndarray, shape (state size,)
    """
    def rms(a):
        a = np.asarray(a, dtype=float)
        if not a.size or not np.all(np.isfinite(a)) or not np.any(a):
            return 0.0
        top = float(np.max(np.abs(a)))  # scaled: entries of 1e300 must not overflow
        return top * float(np.sqrt(np.mean((a / top) ** 2)))

    scale_Y = rms(state.Y) or 1.0
    scales = [(state.Y.size, scale_Y), (state.G.size, rms(state.G) or min(scale_Y, 1.0) ** 2),
              (state.m.size, rms(state.m) or scale_Y)]
    return np.concatenate([np.full(n, ATOL_PER_SCALE * min(ATOL_MAX_SCALE, max(s, 1e-290)))
                           for n, s in scales])


#: The error at a record is not resolved by the absolute tolerance when moving the state
#: by atol (alternating signs) changes it by more than this fraction of itself (of
#: UNRESOLVED_FLOOR × the initial error where it is smaller).  See atol_sensitivity.
UNRESOLVED = 1e-3
UNRESOLVED_FLOOR = 1e-4
#: The records probed: this many, spread evenly over the run, the last included
PROBED_RECORDS = 8


def atol_sensitivity(error, ys, atol, scale):
    """How much the error moves when the state moves by the absolute tolerance.

    At :data:`PROBED_RECORDS` records of ``ys`` (spread evenly, the last included), the
    change of ``error`` (ε of a flat state) when each variable moves by its ``atol``
    with alternating signs, relative to max(|ε|, ``UNRESOLVED_FLOOR · scale``).  A
    solver controls each variable to about its atol, so a change near 1 means that its
    error curve is not resolved: e.g. starts with weights 10⁴× too large, whose decoder
    overlaps collapse to ~10⁻⁸ against the default atol of 10⁻⁹ scaled on the initial
    state (README, Known limitations).  An error below zero (−UNRESOLVED_FLOOR · scale),
    impossible for a mean squared error, counts as infinitely sensitive.  Records where a
    moved state has no finite error are skipped.  Derived here (docs/theory.md § 10).

    Parameters
    ----------
    error : callable
        ε of a flat state vector.
    ys : ndarray, shape (n_records, n_variables)
    atol : ndarray, shape (n_variables,) or float
    scale : float
        The error's scale (the spectrum's initial error).

    Returns
    -------
    worst : float
        The largest relative change (0 if none was finite; inf at a negative error).
    record : int
        The index of the record where it occurred.
    """
    picks = np.unique(np.linspace(0, len(ys) - 1, PROBED_RECORDS).round().astype(int))
    step = atol * np.where(np.arange(ys.shape[1]) % 2, -1.0, 1.0)
    worst, where = 0.0, int(picks[-1])
    with np.errstate(all="ignore"):
        for i in picks:
            y = np.ascontiguousarray(ys[i])
            value = error(y)
            if value < -UNRESOLVED_FLOOR * scale:       # a mean squared error below 0
                return np.inf, int(i)
            change = abs(error(y + step) - value) / max(abs(value), UNRESOLVED_FLOOR * scale)
            if np.isfinite(change) and change > worst:
                worst, where = float(change), int(i)
    return worst, where


#: No output time may lie closer to t0 than this (t0 itself aside): LSODA failed from
#: 1e-160 on ("illegal input", the squares of its steps underflow), CVODE from 1e-320,
#: and the state there is the initial one to double precision anyway
NEAREST = 1e-140


def _check_span(t_span):
    if isinstance(t_span, (tuple, list, np.ndarray)):
        if len(t_span) != 2:
            raise ValueError(f"t_span must be t_max or (t0, t1), got {t_span!r}")
        t0, t1 = (check_real("t_span", t) for t in t_span)
    else:
        t0, t1 = 0.0, check_real("t_span", t_span)
    if not 0 <= t0 < t1:
        raise ValueError(f"t_span must satisfy 0 <= t0 < t1, got ({t0:g}, {t1:g})")
    if t1 - t0 < NEAREST:
        raise ValueError(f"t_span ({t0:g}, {t1:g}) is shorter than {NEAREST:g}: the solvers "
                         "cannot step that little (and the state at its end is the initial "
                         "one to double precision)")
    return t0, t1


def _check_t_eval(t_eval, t0, t1):
    try:
        t = np.asarray(t_eval, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"t_eval must be a list of times, got {t_eval!r}") from None
    if t.ndim != 1 or t.size == 0 or not np.all(np.isfinite(t)):
        raise ValueError("t_eval must be a non-empty 1-d list of finite times")
    if np.any(np.diff(t) <= 0) or t[0] < t0 or t[-1] > t1:
        raise ValueError(f"t_eval must be increasing and inside t_span [{t0:g}, {t1:g}]")
    after = t[t > t0]
    if after.size and after[0] - t0 < NEAREST:
        raise ValueError(f"t_eval has a time {after[0]:.3g} within {NEAREST:g} of t0 = "
                         f"{t0:g}: the solvers cannot step that close (and the state there "
                         "is the initial one to double precision); drop it or use t0 itself")
    return t

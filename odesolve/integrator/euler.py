"""The fixed-step Euler scheme (``method="euler"``), the published reference scheme: one
compiled loop per chunk of steps, plateau exits located to the step, and a warning when
the step is beyond the scheme's stability."""
from __future__ import annotations

import warnings

import numpy as np

from .._progress import progress_bar
from ..errors import DivergenceError, RegimeWarning
from ..trajectory import plateau_levels
from .events import _first_times
from .flow import NORM_LIMIT, _error_function, _runaway_cause

#: Seconds per Euler step and state variable (compiled loop, CI machine), for the cost
#: estimate announced before long runs.
SECONDS_PER_EULER_VALUE = 5e-9
#: Steps × state size of one compiled Euler call (about 0.01–0.1 s): between calls Python
#: serves Ctrl-C and the progress bar, so a long Euler run stays interruptible.
EULER_CHUNK_VALUES = 2**20


def _euler(compiled, f, arguments, state, lr, t0, t_eval, dt, progress):
    """Fixed-step Euler in chunks, recording at ``t_eval`` (a constant rate, checked by
    :func:`_checked`); the plateau exits are located to the step (by re-running the chunk
    in which the error crossed a level)."""
    spec = state.spectrum
    dt = 1.0 / spec.D if dt is None else dt
    targets = np.round((t_eval - t0) / dt).astype(np.int64)
    args = arguments.at_rate(arguments.rate(0.0)) + (dt,)
    euler = compiled.kernels.euler
    _warn_if_unstable(f, state.to_vector(), lr, dt, t0)
    error = _error_function(compiled, state)
    levels = plateau_levels(spec, state.model.K)
    y = state.to_vector()
    chunk = max(1, EULER_CHUNK_VALUES // y.size)
    crossings = _first_times(levels, error(y), t0, [np.nan] * len(levels))
    out = np.empty((len(targets), y.size))
    one = np.empty((1, y.size))
    step = 0
    with progress_bar(total=int(targets[-1]), desc="Euler", unit="step", unit_scale=True,
                      disable=not progress) as bar:
        for i, target in enumerate(targets):
            while step < target:
                m = int(min(chunk, target - step))
                if euler(y, *args, np.array([m]), NORM_LIMIT, one) == 0:
                    _euler_blow_up(euler, args, f, y, step, m, lr, t0, dt)
                previous, y = y, one[0].copy()
                now = error(y)
                for k in np.flatnonzero(np.isnan(crossings) & (now <= levels)):
                    crossings[k] = _euler_crossing(euler, args, error, previous, step, m,
                                                   levels[k], t0, dt)
                step += m
                bar.update(m)
            out[i] = y
    _warn_if_unstable(f, y, lr, dt, t0 + step * dt)
    return out, int(targets[-1]), crossings


def _euler_steps(euler, args, y, m):
    """Every one of ``m`` Euler steps from ``y``, shape (m, size); rows past a blow-up are
    left unwritten (the count written is returned too)."""
    rows = np.empty((m, y.size))
    written = euler(y, *args, np.arange(1, m + 1), np.inf, rows)
    return rows, written


def _euler_crossing(euler, args, error, y, step, m, level, t0, dt):
    """Time at which the error first reaches ``level`` within the ``m`` steps after ``step``
    (linear between the two steps around it)."""
    rows, _ = _euler_steps(euler, args, y, m)
    before = error(y)
    for j in range(m):
        now = error(rows[j])
        if now <= level:
            return t0 + (step + j + (before - level) / (before - now)) * dt
        before = now
    return np.nan  # crossed and came back above within the chunk: not an exit


def _euler_blow_up(euler, args, f, y, step, m, lr, t0, dt):
    """Raise the DivergenceError of a chunk that ended non-finite or runaway, at the first
    bad step."""
    rows, written = _euler_steps(euler, args, y, m)
    bad = np.flatnonzero(~np.all(np.isfinite(rows[:written]), axis=1)
                         | (np.max(np.abs(rows[:written]), axis=1) > NORM_LIMIT))
    first = int(bad[0]) if bad.size else written
    t_fail = t0 + (step + first + 1) * dt
    rate = _stiffness(f, y, t_fail)
    cause = (f"the Euler step is beyond stability (dt·ρ = {dt * rate:.3g} > 2, with ρ the "
             "largest rate of the linearised flow): use a smaller dt or an adaptive method"
             if dt * rate > 2 else _runaway_cause(lr, t_fail))
    raise DivergenceError("the ODE (Euler)", t_fail, lr, detail="the state became non-finite "
                          f"or exceeded {NORM_LIMIT:g}", cause=cause)


def _stiffness(f, y, t, iterations: int = 30) -> float:
    """Largest |eigenvalue| ρ of the Jacobian of ``f`` at ``y`` (power iteration on finite
    differences; it includes the learning rate).  Explicit Euler is stable for dt·ρ ≲ 2."""
    f0 = f(t, y)
    if not np.all(np.isfinite(f0)):
        return np.inf
    v = np.random.default_rng(0).standard_normal(y.size)
    rate = 0.0
    h = 1e-7 * max(1.0, float(np.linalg.norm(y)))
    for _ in range(iterations):
        v /= np.linalg.norm(v)
        w = (f(t, y + h * v) - f0) / h
        norm = float(np.linalg.norm(w))
        if not np.isfinite(norm) or norm == 0.0:
            break
        rate, v = norm, w
    return rate


def _warn_if_unstable(f, y, lr, dt, t):
    rate = _stiffness(f, y, t)
    if np.isfinite(rate) and dt * rate > 2:
        warnings.warn(RegimeWarning(
            f"Euler step beyond stability at t = {t:.6g}: dt·ρ = {dt * rate:.3g} > 2 (dt = "
            f"{dt:g}, ρ = {rate:.3g} the largest rate of the linearised flow at η = {lr:g}); "
            "the curve is not the ODE's: use a smaller dt or an adaptive method"),
            stacklevel=5)   # the caller of integrate (its run function, _euler, this)

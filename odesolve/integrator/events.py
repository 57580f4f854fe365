"""Plateau exits: the first time the generalisation error falls through each of the
spectrum's plateau levels (:func:`odesolve.trajectory.plateau_levels`), located to the
solver's tolerance."""
from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

#: At most this many steps (each a short integration) refine a plateau exit located on
#: the Hermite interpolant (LSODA): Newton steps kept inside a bracket of the crossing,
#: bisections where a step would leave it; 2–3 are the rule
ROOT_STEPS = 100


def _hermite_root(error, f, ys, t_eval, i, level):
    """Time in [t_{i−1}, t_i] where the error of the cubic Hermite interpolant of the
    records ys[i − 1], ys[i] (with derivatives f) falls through ``level``."""
    ta, tb = t_eval[i - 1], t_eval[i]
    with np.errstate(over="ignore", invalid="ignore"):
        spline = _cubic_hermite(ta, tb, ys[i - 1], ys[i], f(ta, ys[i - 1]), f(tb, ys[i]))
        ends = [error(spline(t)) - level for t in (ta, tb)]
    if not (np.all(np.isfinite(ends)) and ends[0] * ends[1] <= 0):
        # derivatives that overflow (a huge state) leave the spline NaN: the records'
        # secant instead (the caller's Newton steps refine it)
        above, below = error(ys[i - 1]) - level, error(ys[i]) - level
        share = above / (above - below)
        return ta + (tb - ta) * share if np.isfinite(share) else tb
    return brentq(lambda t: error(spline(t)) - level, ta, tb, xtol=1e-12 * tb, rtol=1e-12)


def _cubic_hermite(ta, tb, ya, yb, fa, fb):
    """``p(t)``: the cubic with values ya, yb and derivatives fa, fb at ta, tb (arrays),
    in the interval's own variable u = (t − ta)/(tb − ta), so that no power of its length
    is formed (its cube underflows for intervals of 1e-108).  Written out: scipy's
    CubicHermiteSpline cost 0.2 ms to build, a third of the time around the solver in a
    warm K = 2 curve."""
    h = tb - ta
    dy = yb - ya
    b1 = h * fa
    b2 = 3.0 * dy - h * (2.0 * fa + fb)
    b3 = h * (fa + fb) - 2.0 * dy

    def p(t):
        u = (t - ta) / h
        return ya + u * (b1 + u * (b2 + u * b3))

    return p


def _error_slope(error, f, t, y):
    """dε/dt along the flow at (t, y), by a central difference along f(t, y)."""
    dy = f(t, y)
    h = 1e-6 / max(float(np.max(np.abs(dy))), 1e-300)
    return (error(y + h * dy) - error(y - h * dy)) / (2 * h)


def _first_crossings(errors, levels, t_eval, root):
    """First downward crossing of each level by the recorded ``errors``: NaN if never,
    ``t_eval[0]`` if at the first record, else ``root(i, level)``, the crossing located
    between records i − 1 and i."""
    out = []
    for level in levels:
        below = np.nonzero(errors <= level)[0]
        i = int(below[0]) if below.size else -1
        out.append(np.nan if i < 0 else t_eval[0] if i == 0 else root(i, level))
    return out


def _first_times(levels, error0, t0, crossings):
    """Learning times: ``t0`` for the levels the error is already at or below at ``t0``,
    else the first downward crossing found (NaN if none) — one definition for every method."""
    return np.array([t0 if error0 <= level else c for level, c in zip(levels, crossings)],
                    dtype=float)


def _level_crossings(error, levels):
    """Integrator events, one per level: the error falls through it (exit from a plateau).

    solve_ivp calls every event at the end of each step with the same ``(t, y)``; the
    error is computed once for all of them (it cost more than the right-hand side with
    24 levels, and 70 % of an all-modes run with 1,024 modes)."""
    last = [None, None, 0.0]                # t, y (kept alive: identity is the key), ε

    def error_at(t, y):
        if t != last[0] or y is not last[1]:
            last[:] = t, y, error(y)
        return last[2]

    def crossing(level):
        def event(t, y):
            return error_at(t, y) - level
        event.direction = -1
        return event

    return [crossing(level) for level in levels]

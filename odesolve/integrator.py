"""Stage 4 of the pipeline: integrating the equations, and the trajectory they produce.

:func:`integrate` follows :func:`scipy.integrate.solve_ivp` (``t_span``, ``method``,
``t_eval``, ``rtol``/``atol``) and returns a :class:`Trajectory` of every order parameter
and of the generalisation error on a log-spaced grid; :func:`integrate_batch` integrates
many initial states of one model family (seeds, initial scales, spectra) in one call.

Solvers (``method=``): ``"LSODA"`` runs ODEPACK's LSODA through
:func:`scipy.integrate.odeint`, whose stepping loop is compiled (only the right-hand side
is a Python call): the same algorithm as ``solve_ivp(method="LSODA")``, without its Python
work per step (several times faster on small states; benchmarks/bench_engine.py).
``"dopri5"`` is a Dormand–Prince 5(4) pair with scipy's RK45 error control whose whole
stepping loop is compiled into the model's generated module (no Python per step: the
choice for large all-modes states).  Every :func:`scipy.integrate.solve_ivp` method stays
available by name (``"RK45"``, ``"DOP853"``, ``"Radau"``, ``"BDF"``, ``"RK23"``) and
``"euler"`` is the fixed-step published scheme.  Plateau exits (``learning_times``) are
located to the solver's tolerance: by the integrator's events (solve_ivp), on the step's
Hermite interpolant (dopri5), or by root-finding on restarts from the output grid (LSODA).

Two bulk treatments (``bulk=``): ``"limit"`` is the strict D → ∞ theory (the bulk modes'
eigenvalue ``σ²/D → 0`` is dropped from their dynamics, so e.g. the bulk encoder Gram
matrix is frozen); ``"finite"`` keeps ``σ²/D`` in the bulk flow, which is then *exactly*
the all-modes ODE at that D for a spiked covariance (all bulk modes share one flow).
A :class:`~odesolve.spec.spectra.Spectrum` with every mode tracked has no bulk and the choice is moot.

>>> from odesolve import Autoencoder, State, spiked_covariance
>>> spec = spiked_covariance(D=500, spikes=[2.0, 1.0], bulk=0.05)
>>> state = State.random(Autoencoder(K=2, activation="linear"), spec, scale=0.1, seed=0)
>>> traj = integrate(state, lr=1.0, t_span=200.0)
>>> round(float(traj.error[-1]), 4), round(spec.pca_error(2), 4)
(0.025, 0.025)
"""
from __future__ import annotations

import time

import numpy as np
from scipy.integrate import odeint, solve_ivp
from scipy.optimize import brentq
from threadpoolctl import threadpool_limits

from ._progress import progress_bar
from .codegen import CompiledModel, compile_model
from .errors import DivergenceError
from .state import State
from .trajectory import Trajectory, learning_times_on_grid, plateau_levels

__all__ = ["integrate", "integrate_batch", "METHODS", "BULK_MODES", "rhs_function",
           "time_grid"]

METHODS = ("auto", "LSODA", "dopri5", "RK45", "RK23", "DOP853", "Radau", "BDF", "euler")
#: ``method="auto"``: LSODA up to this many state variables, dopri5 above.  LSODA turns
#: stiff near fixed points (where explicit Runge–Kutta needs ~100× more steps), but its
#: stiff mode builds dense finite-difference Jacobians: hopeless for the ~10⁴ variables of
#: all-modes runs on real spectra, which the compiled dopri5 integrates in seconds.
AUTO_LSODA_MAX_SIZE = 400
#: Step limit of the compiled dopri5 (a blow-up or a stiff run that will not finish).
DOPRI5_MAX_STEPS = 10_000_000
BULK_MODES = ("limit", "finite")
#: a state entry beyond this is a blow-up, not learning (weights are O(1) in these units)
NORM_LIMIT = 1e8


def rhs_function(compiled: CompiledModel, state: State, lr: float, bulk: str = "limit"):
    """``f(t, y) -> dy/dt`` of the compiled equations, for use with any ODE solver."""
    spec = state.spectrum
    s = np.ascontiguousarray(spec.s)
    s_bulk = spec.bulk / spec.D
    s_dyn = s_bulk if bulk == "finite" else 0.0
    K, nb = state.model.K, compiled.blocks
    rhs = compiled.module.rhs

    def f(t, y):
        dy = np.empty_like(y)
        rhs(y, s, s_bulk, s_dyn, lr, K, nb, dy)
        return dy

    return f


def integrate(state: State, lr: float, t_span, *, method: str = "auto", t_eval=None,
              n_points: int = 200, rtol: float = 1e-7, atol: float = 1e-9, dt: float | None = None,
              bulk: str = "limit", progress: bool = False) -> Trajectory:
    """Integrate the order-parameter equations from ``state``.

    Parameters
    ----------
    state : State
        Initial state (carries the model and the spectrum).
    lr : float
        Learning rate η > 0.
    t_span : float or (float, float)
        Final time, or ``(t0, t1)``.
    method : str
        ``"auto"`` (default): LSODA, which switches to a stiff scheme near fixed points,
        for states of up to :data:`AUTO_LSODA_MAX_SIZE` variables, RK45 for larger
        all-modes states (``Trajectory.method`` says which ran); or any
        :func:`scipy.integrate.solve_ivp` method (``"LSODA"``, ``"RK45"``, ``"DOP853"``,
        ...); or ``"euler"`` (fixed step ``dt``, default ``1/D``: the published reference
        scheme).
    t_eval : array_like, optional
        Output times; default ``n_points`` log-spaced times (plus ``t0``).
    rtol, atol : float
        Tolerances of the adaptive solvers.
    bulk : {"limit", "finite"}
        Bulk treatment (see the module doc).
    progress : bool
        Show a progress bar.

    Returns
    -------
    Trajectory

    Raises
    ------
    DivergenceError
        If the state becomes non-finite or runs away (the message names t and η).
    ValueError
        For a bad learning rate, method, time span or bulk mode.
    """
    lr = _check_lr(lr)
    t0, t1 = _check_span(t_span)
    t_eval = _check_options(method, bulk, t0, t1, t_eval, n_points)
    compiled = compile_model(state.model)
    return _solve(compiled, state, lr, t0, t1, t_eval, method, rtol, atol, dt, bulk, progress)


def integrate_batch(states, lr: float, t_span, *, method: str = "auto", t_eval=None,
                    n_points: int = 200, rtol: float = 1e-7, atol: float = 1e-9,
                    dt: float | None = None, bulk: str = "limit",
                    progress: bool = False) -> list[Trajectory]:
    """Integrate many initial states of one model family in one call.

    The states may differ in K-independent ways: weights (seeds, initial scales),
    spectra (of any size), even K; they must share the activation, tying, rule and bias
    so that one compiled module serves them all.  Each state is integrated on its own
    (solvers adapt their steps to each curve) by the compiled code, with the checks and
    the compilation done once.

    Parameters
    ----------
    states : sequence of State
    lr, t_span, method, t_eval, n_points, rtol, atol, dt, bulk
        As in :func:`integrate`, shared by all states.
    progress : bool
        Show a progress bar over the states.

    Returns
    -------
    list of Trajectory
        One per state, in order.

    Raises
    ------
    ValueError
        For an empty batch, states of different families, or bad options.
    DivergenceError
        If a state diverges (the message names which).

    Examples
    --------
    >>> from odesolve import Autoencoder, State, spiked_covariance
    >>> spec = spiked_covariance(D=500, spikes=[2.0, 1.0], bulk=0.05)
    >>> model = Autoencoder(K=2, activation="erf")
    >>> runs = integrate_batch([State.random(model, spec, seed=s) for s in range(3)], 1.0, 50.0)
    >>> [round(float(r.error[-1]), 3) for r in runs]
    [0.048, 0.047, 0.048]
    """
    states = list(states)
    if not states:
        raise ValueError("integrate_batch needs at least one state")
    families = {(st.model.activation.key, st.model.tied, st.model.rule, st.model.bias)
                for st in states}
    if len(families) > 1:
        raise ValueError("integrate_batch needs states of one model family (activation, tied, "
                         "rule, bias); integrate the others in another call")
    lr = _check_lr(lr)
    t0, t1 = _check_span(t_span)
    t_eval = _check_options(method, bulk, t0, t1, t_eval, n_points)
    compiled = compile_model(states[0].model)
    out = []
    with progress_bar(total=len(states), desc="theory", unit="curve", disable=not progress) as bar:
        for i, st in enumerate(states):
            try:
                out.append(_solve(compiled if st.model == compiled.model else
                                  compile_model(st.model), st, lr, t0, t1, t_eval, method,
                                  rtol, atol, dt, bulk, False))
            except DivergenceError as err:
                raise DivergenceError(f"the ODE of batch state {i}", err.time, lr) from err
            bar.update()
    return out


def _check_options(method, bulk, t0, t1, t_eval, n_points):
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: expected one of {METHODS}")
    if bulk not in BULK_MODES:
        raise ValueError(f"unknown bulk mode {bulk!r}: expected one of {BULK_MODES}")
    t_eval = time_grid(t1, n_points, t0=t0) if t_eval is None else np.asarray(t_eval, dtype=float)
    if t_eval.ndim != 1 or np.any(np.diff(t_eval) <= 0) or t_eval[0] < t0 or t_eval[-1] > t1:
        raise ValueError("t_eval must be increasing and inside t_span")
    return t_eval


def _solve(compiled, state, lr, t0, t1, t_eval, method, rtol, atol, dt, bulk, progress):
    if method == "auto":
        method = "LSODA" if state.to_vector().size <= AUTO_LSODA_MAX_SIZE else "dopri5"
    start = time.perf_counter()
    crossings = None
    if method == "euler":
        ys, nfev = _euler(compiled, state, lr, t0, t_eval, dt, bulk)
    elif method == "LSODA":
        ys, nfev, crossings = _lsoda(compiled, state, lr, t0, t_eval, rtol, atol, bulk)
    elif method == "dopri5":
        ys, nfev, crossings = _dopri5(compiled, state, lr, t0, t_eval, rtol, atol, bulk)
    else:
        ys, nfev, crossings = _adaptive(compiled, state, lr, t0, t1, t_eval, method, rtol, atol,
                                        bulk, progress)
    wall = time.perf_counter() - start
    traj = _trajectory(compiled, state, ys, t_eval, lr, method, bulk, nfev, wall)
    if crossings is not None:
        traj.learning_times = crossings
    return traj


def _flow(state, bulk):
    """Arguments of the generated rhs after y: s, s_bulk, s_bulk_dyn."""
    spec = state.spectrum
    s_bulk = spec.bulk / spec.D
    return np.ascontiguousarray(spec.s), s_bulk, (s_bulk if bulk == "finite" else 0.0)


class _Runaway(Exception):
    """Raised inside the right-hand side when the state blows up (stops odeint)."""


def _lsoda(compiled, state, lr, t0, t_eval, rtol, atol, bulk):
    """LSODA with its stepping loop compiled (scipy.integrate.odeint)."""
    s, s_bulk, s_dyn = _flow(state, bulk)
    K, nb, rhs = state.model.K, compiled.blocks, compiled.module.rhs
    nfev = [0]

    def f(y, t):
        dy = np.empty_like(y)
        rhs(y, s, s_bulk, s_dyn, lr, K, nb, dy)
        nfev[0] += 1
        if not np.all(np.abs(y) <= NORM_LIMIT):        # also NaN
            raise _Runaway(t)
        return dy

    def run(y0, t_from, times):
        # odeint needs the initial time first; it is returned as the first record
        start = times[0] > t_from
        grid = np.concatenate([[t_from], times]) if start else times
        try:
            with threadpool_limits(limits=1, user_api="blas"):
                ys, info = odeint(f, y0, grid, rtol=rtol, atol=atol, mxstep=10**8,
                                  full_output=True)
        except _Runaway as stop:
            raise DivergenceError("the ODE", float(stop.args[0]), lr) from None
        if info["message"] != "Integration successful.":
            raise DivergenceError("the ODE", float(info["tcur"][-1]), lr, detail=info["message"])
        return ys[1:] if start else ys

    ys = run(state.to_vector(), t0, t_eval)
    error = _errors(compiled, state, ys)
    crossings = learning_times_on_grid(t_eval, error, state.spectrum, K)
    levels = plateau_levels(state.spectrum, K)
    E0 = state.spectrum.initial_error
    for j, (t_cross, level) in enumerate(zip(crossings, levels)):
        i = int(np.searchsorted(t_eval, t_cross)) if np.isfinite(t_cross) else 0
        if i == 0 or t_eval[i] == t_cross:
            continue
        # restart from the record before the crossing and find it to the tolerance
        y_start, t_start = ys[i - 1], t_eval[i - 1]

        def above(t):
            y = y_start if t <= t_start else run(y_start, t_start, np.array([t]))[-1]
            return E0 + compiled.module.error_of_state(y, s, s_bulk, K, nb) - level

        crossings[j] = brentq(above, t_start, t_eval[i], xtol=1e-12 * t_eval[i], rtol=1e-12)
    return ys, nfev[0], crossings


def _dopri5(compiled, state, lr, t0, t_eval, rtol, atol, bulk):
    """The compiled Dormand–Prince stepper of the generated module."""
    s, s_bulk, s_dyn = _flow(state, bulk)
    y0 = state.to_vector()
    levels = plateau_levels(state.spectrum, state.model.K)
    out = np.empty((len(t_eval), y0.size))
    crossings = np.empty(len(levels))
    status, nfev, t_stop = compiled.module.dopri5(
        y0, t0, t_eval, rtol, atol, s, s_bulk, s_dyn, lr, state.model.K, compiled.blocks,
        levels, state.spectrum.initial_error, NORM_LIMIT, DOPRI5_MAX_STEPS, out, crossings)
    if status == 1:
        raise DivergenceError("the ODE", t_stop, lr)
    if status == 2:
        raise DivergenceError("the ODE", t_stop, lr,
                              detail="step size underflow or too many steps")
    return out, nfev, crossings


def _adaptive(compiled, state, lr, t0, t1, t_eval, method, rtol, atol, bulk, progress):
    f = rhs_function(compiled, state, lr, bulk)
    bar = progress_bar(total=t1 - t0, desc="integrating", disable=not progress, unit="t")

    def fun(t, y):
        bar.update(max(0.0, t - t0 - bar.n))
        return f(t, y)

    def runaway(t, y):
        return NORM_LIMIT - np.max(np.abs(y))
    runaway.terminal = True

    levels = plateau_levels(state.spectrum, state.model.K)
    events = [runaway] + [_level_crossing(compiled, state, level) for level in levels]
    # ODEPACK calls BLAS on vectors of a few hundred numbers: waking a BLAS thread pool
    # for each costs more than the call (20× slower runs measured with 2 threads)
    with bar, threadpool_limits(limits=1, user_api="blas"):
        sol = solve_ivp(fun, (t0, t1), state.to_vector(), method=method, t_eval=t_eval,
                        rtol=rtol, atol=atol, events=events)
    if sol.status == 1 or sol.status == -1 or not np.all(np.isfinite(sol.y)):
        t_fail = sol.t_events[0][0] if sol.status == 1 else (sol.t[-1] if sol.t.size else t0)
        raise DivergenceError("the ODE", t_fail, lr, detail=sol.message)
    crossings = np.array([te[0] if te.size else np.nan for te in sol.t_events[1:]])
    return sol.y.T, sol.nfev, crossings


def _level_crossing(compiled, state, level):
    """Integrator event: the error falls through ``level`` (exit from a plateau)."""
    spec, K, nb = state.spectrum, state.model.K, compiled.blocks
    s, s_bulk, E0 = np.ascontiguousarray(spec.s), spec.bulk / spec.D, spec.initial_error
    error_of_state = compiled.module.error_of_state

    def crossing(t, y):
        return E0 + error_of_state(y, s, s_bulk, K, nb) - level
    crossing.direction = -1
    return crossing


def _euler(compiled, state, lr, t0, t_eval, dt, bulk):
    spec = state.spectrum
    dt = 1.0 / spec.D if dt is None else float(dt)
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"Euler step dt must be > 0, got {dt}")
    steps = np.round((t_eval - t0) / dt).astype(np.int64)
    y0 = state.to_vector()
    out = np.empty((len(steps), y0.size))
    s_bulk = spec.bulk / spec.D
    done = compiled.module.euler(y0, np.ascontiguousarray(spec.s), s_bulk,
                                 s_bulk if bulk == "finite" else 0.0, lr, state.model.K,
                                 compiled.blocks, dt, steps, NORM_LIMIT, out)
    if done < len(steps):
        raise DivergenceError("the ODE (Euler)", t_eval[done], lr)
    return out, int(steps[-1])


def _errors(compiled, state, ys) -> np.ndarray:
    s, s_bulk, _ = _flow(state, "limit")
    K, nb, error_of_state = state.model.K, compiled.blocks, compiled.module.error_of_state
    return state.spectrum.initial_error + np.array(
        [error_of_state(np.ascontiguousarray(y), s, s_bulk, K, nb) for y in ys])


def _trajectory(compiled, state, ys, t, lr, method, bulk, nfev, wall) -> Trajectory:
    spec, model = state.spectrum, state.model
    K, n, P = model.K, spec.n_tracked, state.Y.shape[0]
    ys = np.ascontiguousarray(ys)
    error = _errors(compiled, state, ys)
    if not np.all(np.isfinite(error)):
        bad = int(np.argmin(np.isfinite(error)))
        raise DivergenceError("the ODE", t[bad], lr, detail="non-finite error")
    Y = ys[:, :P * n].reshape(-1, P, n)
    G = ys[:, P * n:P * n + P * P].reshape(-1, P, P)
    weighted = np.einsum("ipt,t,iqt->ipq", Y, spec.s, Y) + spec.bulk / spec.D * G
    gram = np.einsum("ipt,iqt->ipq", Y, Y) + G
    mode = "all-modes" if spec.n_bulk == 0 else f"closure-{bulk}"
    return Trajectory(
        t=t, error=error, Q=weighted[:, :K, :K], R=weighted[:, -K:, :K],
        T=weighted[:, -K:, -K:], T0=gram[:, -K:, -K:], m=ys[:, P * n + P * P:].copy(),
        A=Y[:, :K], B=Y[:, -K:],
        learning_times=learning_times_on_grid(t, error, spec, K),
        model=model, spectrum=spec, lr=lr, method=method, bulk=bulk, mode=mode,
        nfev=int(nfev), wall_time=wall, y=ys, initial=state)


def time_grid(t_max: float, n_times: int, D: int | None = None, t0: float = 0.0) -> np.ndarray:
    """The default recording times of theory and simulation (the one time grid).

    ``t0``, then ``n_times − 1`` log-spaced times from ``max(t0, t_max/1000)`` to
    ``t_max``.  With ``D`` the times are rounded to whole SGD steps (multiples of 1/D, never
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
    """
    if n_times < 2:
        raise ValueError(f"the number of recorded times must be >= 2, got {n_times}")
    first = max(t0, t_max / 1000.0, 1.0 / D if D else 0.0)
    t = np.geomspace(first, t_max, n_times - 1) if first < t_max else np.array([t_max])
    if D:
        t = np.minimum(np.round(t * D), np.floor(t_max * D * (1 + 1e-12))) / D
    return np.unique(np.concatenate([[t0], t[t > t0]]))


def _check_lr(lr) -> float:
    try:
        lr = float(lr)
    except (TypeError, ValueError):
        raise ValueError(f"learning rate must be a number, got {lr!r}") from None
    if not np.isfinite(lr) or lr <= 0:
        raise ValueError(f"learning rate must be finite and > 0, got {lr}")
    return lr


def _check_span(t_span):
    span = (0.0, t_span) if np.isscalar(t_span) else tuple(t_span)
    if len(span) != 2:
        raise ValueError(f"t_span must be t_max or (t0, t1), got {t_span!r}")
    t0, t1 = map(float, span)
    if not (np.isfinite(t0) and np.isfinite(t1) and 0 <= t0 < t1):
        raise ValueError(f"need 0 <= t0 < t1 (finite), got {span}")
    return t0, t1

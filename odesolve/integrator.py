"""Stage 4 of the pipeline: integrating the equations, and the trajectory they produce.

:func:`integrate` follows :func:`scipy.integrate.solve_ivp` (``t_span``, ``method``,
``t_eval``, ``rtol``/``atol``) and returns a :class:`Trajectory` of every order parameter
and of the generalisation error on a log-spaced grid.

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
from scipy.integrate import solve_ivp
from threadpoolctl import threadpool_limits

from ._progress import progress_bar
from .codegen import CompiledModel, compile_model
from .errors import DivergenceError
from .protocols import Protocol, as_protocol, noise_floor
from .state import State, order_parameters_of
from .trajectory import Trajectory, learning_times_on_grid, plateau_levels

__all__ = ["integrate", "METHODS", "BULK_MODES", "rhs_function", "time_grid"]

METHODS = ("auto", "LSODA", "RK45", "RK23", "DOP853", "Radau", "BDF", "euler")
#: ``method="auto"``: LSODA up to this many state variables, RK45 above.  LSODA turns
#: stiff near fixed points (where RK45 needs ~100× more steps), but its stiff mode builds
#: dense finite-difference Jacobians: hopeless for the ~10⁴ variables of all-modes runs
#: on real spectra, which RK45 integrates in seconds.
AUTO_LSODA_MAX_SIZE = 400
BULK_MODES = ("limit", "finite")
#: a state entry beyond this is a blow-up, not learning (weights are O(1) in these units)
NORM_LIMIT = 1e8


def rhs_function(compiled: CompiledModel, state: State, lr: float, bulk: str = "limit",
                 protocol: Protocol | None = None, finite_size: bool = False):
    """``f(t, y) -> dy/dt`` of the compiled equations, for use with any ODE solver.

    ``protocol`` (:class:`~odesolve.protocols.Protocol`) makes the rate a function of
    ``t`` and scales the rows of the flow (rates, decay); see :mod:`odesolve.protocols`.
    ``finite_size`` adds SGD's O(η²/D) noise floor of the bulk decoder (docs/theory.md §8).
    """
    spec = state.spectrum
    s = np.ascontiguousarray(spec.s)
    s_bulk = spec.bulk / spec.D
    s_dyn = s_bulk if bulk == "finite" else 0.0
    K, nb = state.model.K, compiled.blocks
    rhs = compiled.module.rhs
    protocol = as_protocol(protocol)
    rates, decay = protocol.flow_multipliers(state.model)
    schedule = protocol.schedule
    floor = noise_floor(state.model, spec, protocol) if finite_size else 0.0

    def f(t, y):
        dy = np.empty_like(y)
        eta = lr / protocol.batch_size if schedule.is_constant else protocol.lr_at(lr, t)
        rhs(y, s, s_bulk, s_dyn, eta, rates, decay, floor * eta**2, K, nb, dy)
        return dy

    return f


def integrate(state: State, lr: float, t_span, *, method: str = "auto", t_eval=None,
              n_points: int = 200, rtol: float = 1e-7, atol: float = 1e-9, dt: float | None = None,
              bulk: str = "limit", protocol: Protocol | None = None,
              finite_size: bool = False, progress: bool = False) -> Trajectory:
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
    protocol : odesolve.protocols.Protocol, optional
        Learning-rate schedule, per-layer rates, weight decay and batch size (default:
        plain online SGD at the constant rate ``lr``); ``lr`` is then the base rate η.
        ``method="euler"`` takes constant schedules only.
    finite_size : bool
        Add the leading finite-D correction that odesolve derives: SGD's noise floor of the
        bulk decoder, ``dT0^B/dt += (c_v η(t)/B)² σ² (n_bulk/D²) E[g(λ)g(λ)ᵀ]`` (untied
        vanilla SGD with a bulk; docs/theory.md §8 says what it leaves out).
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
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: expected one of {METHODS}")
    if bulk not in BULK_MODES:
        raise ValueError(f"unknown bulk mode {bulk!r}: expected one of {BULK_MODES}")
    t_eval = time_grid(t1, n_points, t0=t0) if t_eval is None else np.asarray(t_eval, dtype=float)
    if t_eval.ndim != 1 or np.any(np.diff(t_eval) <= 0) or t_eval[0] < t0 or t_eval[-1] > t1:
        raise ValueError("t_eval must be increasing and inside t_span")
    protocol = as_protocol(protocol)
    protocol.check_model(state.model)
    if not isinstance(finite_size, (bool, np.bool_)):
        raise TypeError(f"finite_size must be True or False, got {finite_size!r}")
    if finite_size:
        noise_floor(state.model, state.spectrum, protocol)   # refuses, before any work
    if method == "euler" and not protocol.schedule.is_constant:
        raise ValueError("method='euler' takes a constant learning rate: use an adaptive "
                         "method with a schedule")
    compiled = compile_model(state.model)
    if method == "auto":
        method = "LSODA" if state.to_vector().size <= AUTO_LSODA_MAX_SIZE else "RK45"
    start = time.perf_counter()
    if method == "euler":
        ys, nfev = _euler(compiled, state, lr, t0, t_eval, dt, bulk, protocol, finite_size)
        crossings = None
    else:
        ys, nfev, crossings = _adaptive(compiled, state, lr, t0, t1, t_eval, method, rtol, atol,
                                        bulk, progress, protocol, finite_size)
    wall = time.perf_counter() - start
    traj = _trajectory(compiled, state, ys, t_eval, lr, method, bulk, nfev, wall)
    traj.protocol = protocol
    traj.finite_size = bool(finite_size)
    if crossings is not None:
        traj.learning_times = crossings
    return traj


def _adaptive(compiled, state, lr, t0, t1, t_eval, method, rtol, atol, bulk, progress, protocol,
              finite_size):
    f = rhs_function(compiled, state, lr, bulk, protocol, finite_size)
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


def _euler(compiled, state, lr, t0, t_eval, dt, bulk, protocol, finite_size):
    spec = state.spectrum
    dt = 1.0 / spec.D if dt is None else float(dt)
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"Euler step dt must be > 0, got {dt}")
    steps = np.round((t_eval - t0) / dt).astype(np.int64)
    y0 = state.to_vector()
    out = np.empty((len(steps), y0.size))
    s_bulk = spec.bulk / spec.D
    rates, decay = protocol.flow_multipliers(state.model)
    eta = lr / protocol.batch_size
    noise = noise_floor(state.model, spec, protocol) * eta**2 if finite_size else 0.0
    done = compiled.module.euler(y0, np.ascontiguousarray(spec.s), s_bulk,
                                 s_bulk if bulk == "finite" else 0.0, eta, rates, decay, noise,
                                 state.model.K, compiled.blocks, dt, steps, NORM_LIMIT, out)
    if done < len(steps):
        raise DivergenceError("the ODE (Euler)", t_eval[done], lr)
    return out, int(steps[-1])


def _trajectory(compiled, state, ys, t, lr, method, bulk, nfev, wall) -> Trajectory:
    spec, model = state.spectrum, state.model
    states = [state.with_vector(y) for y in ys]
    ops = [order_parameters_of(st.Y, st.G, st.m, spec, model.K) for st in states]
    E0 = spec.initial_error
    error = np.array([E0 + compiled.module.error_excess(o.Q, o.R, o.T0, o.m) for o in ops])
    if not np.all(np.isfinite(error)):
        bad = int(np.argmin(np.isfinite(error)))
        raise DivergenceError("the ODE", t[bad], lr, detail="non-finite error")
    mode = "all-modes" if spec.n_bulk == 0 else f"closure-{bulk}"
    return Trajectory(
        t=t, error=error,
        Q=np.array([o.Q for o in ops]), R=np.array([o.R for o in ops]),
        T=np.array([o.T for o in ops]), T0=np.array([o.T0 for o in ops]),
        m=np.array([o.m for o in ops]),
        A=np.array([st.A for st in states]), B=np.array([st.B for st in states]),
        learning_times=learning_times_on_grid(t, error, spec, model.K),
        model=model, spectrum=spec, lr=lr, method=method, bulk=bulk, mode=mode,
        nfev=int(nfev), wall_time=wall, states=states)


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

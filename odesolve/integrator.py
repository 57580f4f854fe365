"""Stage 4 of the pipeline: integrating the equations, and the trajectory they produce.

:func:`integrate` follows :func:`scipy.integrate.solve_ivp` (``t_span``, ``method``,
``t_eval``, ``rtol``/``atol``) and returns a :class:`Trajectory` of every order parameter
and of the generalisation error on a log-spaced grid (:func:`odesolve.batch.integrate_batch`
integrates many initial states in one call).

``method="LSODA"`` (the default for small states) runs ODEPACK's LSODA through
:func:`scipy.integrate.odeint`, whose stepping loop is compiled: the algorithm of
``solve_ivp(method="LSODA")`` without its Python work per step (several times faster on
small states, benchmarks/bench_engine.py); every other :func:`scipy.integrate.solve_ivp`
method stays available by name.

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
import warnings

import numpy as np
from scipy.integrate import odeint, solve_ivp
from scipy.interpolate import CubicHermiteSpline
from scipy.optimize import brentq

from ._checks import (check_choice, check_cost, check_integer, check_positive, check_real,
                      check_tolerance)
from ._progress import progress_bar
from ._threads import one_blas_thread
from .codegen import CompiledModel, compile_model
from .errors import DivergenceError, RegimeWarning
from .fluctuations import fluctuation_correction
from .protocols import Protocol, as_protocol, noise_floor
from .state import State, order_parameters_of
from .trajectory import Trajectory, plateau_levels

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
    return _rhs(compiled, _FlowArguments(compiled, state, lr, bulk, protocol, finite_size))


def _rhs(compiled, a):
    """:func:`rhs_function` of the flow arguments ``a``."""
    if a.wide:
        return _wide_rhs(compiled.module.flow_matrices, a.s, a.s_bulk, a.s_dyn, a.rate,
                         a.rates, a.decay, a.floor, a.K, a.nb)
    rhs = compiled.module.rhs

    def f(t, y):
        dy = np.empty_like(y)
        rhs(y, *a.at_rate(a.rate(t)), dy)
        return dy

    return f


class _FlowArguments:
    """The arguments of the compiled flow for one state, model and protocol."""

    def __init__(self, compiled, state, lr, bulk, protocol, finite_size):
        spec = state.spectrum
        self.s = np.ascontiguousarray(spec.s)
        self.s_bulk = spec.bulk / spec.D
        self.s_dyn = self.s_bulk if bulk == "finite" else 0.0
        self.K, self.nb = state.model.K, compiled.blocks
        protocol = as_protocol(protocol)
        self.rates, self.decay = protocol.flow_multipliers(state.model)
        self.constant = protocol.schedule.is_constant
        self.floor = noise_floor(state.model, spec, protocol) if finite_size else 0.0
        self.wide = self.nb * self.K >= BLAS_MIN_ROWS
        self._lr, self._protocol = lr, protocol

    def rate(self, t):
        """The SGD rate per sample at time t (η/B for a constant schedule)."""
        protocol = self._protocol
        return self._lr / protocol.batch_size if self.constant else protocol.lr_at(self._lr, t)

    def at_rate(self, eta):
        """``(s, s_bulk, s_bulk_dyn, lr, rates, decay, noise, K, nb)``: the leading
        arguments of the template's ``rhs``, ``rhs_guarded`` and ``euler`` at rate eta."""
        return (self.s, self.s_bulk, self.s_dyn, eta, self.rates, self.decay,
                self.floor * eta**2, self.K, self.nb)


def _solver_callback(compiled, a, f):
    """``fun(y, t)`` for odeint: ``f``, the right-hand side of the flow arguments ``a``,
    behind the checks of every call (a runaway or NaN state raises :class:`_Runaway`, a
    non-finite derivative :class:`_NotFinite`).  At a constant rate on the compiled loops
    it is one compiled call (``rhs_guarded``): the Python work around a small state's
    right-hand side cost more than the right-hand side.
    """
    if a.wide or not a.constant:
        def fun(y, t):
            # one dot product each screens out every sound call; NaN and overflow fail it
            if not y.dot(y) <= NORM_LIMIT**2 and not (np.abs(y) <= NORM_LIMIT).all():
                raise _Runaway(t)
            dy = f(t, y)
            if not np.isfinite(dy.dot(dy)) and not np.isfinite(dy).all():
                raise _NotFinite(t)
            return dy
        return fun
    guarded, args = compiled.module.rhs_guarded, a.at_rate(a.rate(0.0)) + (NORM_LIMIT,)

    def fun(y, t):
        dy = np.empty_like(y)
        code = guarded(y, *args, dy)
        if code:
            raise (_Runaway if code == 1 else _NotFinite)(t)
        return dy
    return fun


#: From this many rows P of the flow (2K untied, K tied) the right-hand side takes its
#: products (s_τ S + N) Y and M G, O(P² n + P³), with BLAS instead of the compiled loops.
#: Measured per call (erf, 5 spikes + bulk, one BLAS thread): K = 24: loops 146 µs, BLAS
#: 181 µs; K = 64: 3.6 vs 3.3 ms; K = 100: 8.3 vs 4.4 ms (the K² Gaussian averages of
#: the coefficients are the rest).
BLAS_MIN_ROWS = 128


def _wide_rhs(flow_matrices, s, s_bulk, s_dyn, rate, rates, decay, floor, K, nb):
    """The compiled template's ``rhs`` with its products as matrix products (same flow)."""
    P, n = nb * K, s.shape[0]
    off, b0 = P * n, P - K

    def f(t, y):
        S, N = np.zeros((P, P)), np.zeros((P, P))
        drift, hebbian = np.zeros(K), np.empty((K, K))
        flow_matrices(y, s, s_bulk, rates, decay, K, nb, S, N, drift, hebbian)
        eta = rate(t)
        Y = y[:off].reshape(P, n)
        MG = _block_product(s_dyn * S + N, y[off:off + P * P].reshape(P, P))
        dG = MG + MG.T
        dG *= eta
        if floor:
            dG[b0:, b0:] += floor * eta**2 * hebbian
        return np.concatenate([(eta * (S @ (Y * s) + N @ Y)).ravel(), dG.ravel(), eta * drift])

    return f


def _block_product(M, G):
    """``M @ G`` over the rows and columns of ``M`` that are not zero: vanilla SGD's bulk
    flow M = N acts on the decoder block only (a quarter of the work of ``M @ G`` for
    untied networks; with weight decay every row is kept)."""
    rows, cols = np.flatnonzero(M.any(axis=1)), np.flatnonzero(M.any(axis=0))
    if 2 * rows.size * cols.size > M.size:
        return M @ G
    MG = np.zeros((M.shape[0], G.shape[1]))
    MG[rows] = M[np.ix_(rows, cols)] @ G[cols]
    return MG


def integrate(state: State, lr: float, t_span, *, method: str = "auto", t_eval=None,
              n_points: int = 200, rtol: float = 1e-7, atol: float | None = None,
              dt: float | None = None, bulk: str = "limit", protocol: Protocol | None = None,
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
    rtol : float
        Relative tolerance of the adaptive solvers, in (0, 1).
    atol : float, optional
        Absolute tolerance of the adaptive solvers; default :func:`default_atol` of the
        initial state (``ATOL_PER_SCALE`` × the RMS of its overlaps), so that a tiny
        initial state is not below the tolerance.
    dt : float, optional
        Step of ``"euler"`` (default ``1/D``), at most ``t1 − t0``.
    bulk : {"limit", "finite"}
        Bulk treatment (see the module doc).
    protocol : odesolve.protocols.Protocol, optional
        Learning-rate schedule, per-layer rates, weight decay and batch size (default:
        plain online SGD at the constant rate ``lr``); ``lr`` is then the base rate η.
        ``method="euler"`` takes constant schedules only.
    finite_size : bool
        Add the leading O(1/D) finite-D correction (untied vanilla SGD with a bulk,
        docs/theory.md §9): SGD's noise floor of the bulk decoder in the flow,
        ``dT0^B/dt += (c_v η(t)/B)² σ² (n_bulk/D²) E[g(λ)g(λ)ᵀ]``, and the effect of the
        tracked overlaps' fluctuations on the mean error
        (:func:`odesolve.fluctuations.fluctuation_correction`, a few seconds more; the
        result is in ``Trajectory.fluctuations``).
    progress : bool
        Show a progress bar.

    Returns
    -------
    Trajectory

    Raises
    ------
    DivergenceError
        If the state becomes non-finite or runs away (the message names t and η).
    ValueError, TypeError
        For a bad learning rate, time span, method, bulk mode, tolerance, step or output
        times (checked before any work, with the checks of the configuration).

    See Also
    --------
    odesolve.integrate_batch : many initial states in one call.

    References
    ----------
    The equations are derived here (docs/theory.md); for untied erf autoencoders they are
    those of Refinetti & Goldt, ICML 2022 (arXiv 2201.02115).  LSODA: Petzold, SIAM J. Sci.
    Stat. Comput. 4, 136 (1983), through ODEPACK (:func:`scipy.integrate.odeint`).
    """
    lr, t0, t1, t_eval, rtol, atol, protocol = _checked(
        state, lr, t_span, method, t_eval, n_points, rtol, atol, dt, bulk, protocol, finite_size)
    compiled = compile_model(state.model)
    if method == "auto":
        method = "LSODA" if state.to_vector().size <= AUTO_LSODA_MAX_SIZE else "RK45"
    arguments = _FlowArguments(compiled, state, lr, bulk, protocol, finite_size)
    f = _rhs(compiled, arguments)
    _check_start(f, state, lr, t0)
    start = time.perf_counter()
    if method == "euler":
        ys, nfev, crossings = _euler(compiled, f, arguments, state, lr, t0, t_eval, dt,
                                     progress)
    elif method == "LSODA":
        fun = _solver_callback(compiled, arguments, f)
        ys, nfev, crossings = _lsoda(compiled, f, fun, state, lr, t0, t_eval, rtol, atol)
    else:
        ys, nfev, crossings = _adaptive(compiled, f, state, lr, t0, t1, t_eval, method, rtol,
                                        atol, progress)
    wall = time.perf_counter() - start
    traj = _trajectory(compiled, state, ys, t_eval, lr, method, bulk, nfev, wall)
    traj.learning_times = crossings
    traj.protocol = protocol
    traj.finite_size = bool(finite_size)
    if finite_size:
        _add_fluctuations(traj, compiled, f, state, t0, (dt or 1.0 / state.spectrum.D)
                          if method == "euler" else 0.0)
    return traj


def _add_fluctuations(traj, compiled, f, state, t0, mean_step=0.0):
    """The fluctuations of the tracked overlaps (docs/theory.md §9) along ``traj`` started
    from ``state`` at ``t0``: its error becomes the mean over SGD runs,
    ``ε(ȳ) + (∇ε·δ̃ + ½ε''[Σ̃])/D``; ``mean_step`` is the Euler step that produced it
    (0: an adaptive solver)."""
    traj.fluctuations = fluctuation_correction(
        f, _error_function(compiled, state), state, t0, traj.t, lr=traj.lr,
        protocol=traj.protocol, mean_step=mean_step)
    traj.error = traj.error + traj.fluctuations.error / state.spectrum.D


def _checked(state, lr, t_span, method, t_eval, n_points, rtol, atol, dt, bulk, protocol,
             finite_size):
    """The checks of :func:`integrate`'s arguments (before any work); returns
    ``(lr, t0, t1, t_eval, rtol, atol, protocol)`` in canonical form."""
    if not isinstance(state, State):
        raise TypeError(f"state must be an odesolve State, got {type(state).__name__}")
    lr = check_positive("learning rate", lr)
    t0, t1 = _check_span(t_span)
    check_choice("method", method, METHODS)
    check_choice("bulk mode", bulk, BULK_MODES)
    rtol = check_tolerance("rtol", rtol)
    atol = default_atol(state) if atol is None else check_positive("atol", atol)
    if dt is not None and check_positive("dt", dt) > t1 - t0:
        raise ValueError(f"dt must be at most the time span {t1 - t0:g}, got {dt!r}")
    if t_eval is None:
        t_eval = time_grid(t1, check_integer("n_points", n_points, minimum=2), t0=t0)
    else:
        t_eval = _check_t_eval(t_eval, t0, t1)
    if method == "euler":
        steps = (t1 - t0) / (dt or 1.0 / state.spectrum.D)
        size = state.to_vector().size
        check_cost(f"Euler: {steps:.3g} steps of {size} variables",
                   seconds=SECONDS_PER_EULER_VALUE * steps * size)
    protocol = as_protocol(protocol)
    protocol.check_model(state.model)
    if not isinstance(finite_size, (bool, np.bool_)):
        raise TypeError(f"finite_size must be True or False, got {finite_size!r}")
    if finite_size:
        noise_floor(state.model, state.spectrum, protocol)   # refuses, before any work
    if method == "euler" and not protocol.schedule.is_constant:
        raise ValueError("method='euler' takes a constant learning rate: use an adaptive "
                         "method with a schedule")
    return lr, t0, t1, t_eval, rtol, atol, protocol


class _Runaway(Exception):
    """Raised inside the right-hand side when the state blows up (stops odeint)."""


def _lsoda(compiled, f, fun, state, lr, t0, t_eval, rtol, atol):
    """LSODA with its stepping loop compiled (scipy.integrate.odeint, ODEPACK): the
    algorithm of solve_ivp's LSODA without its Python work per step; ``fun(y, t)`` is the
    checked right-hand side (:func:`_solver_callback`).  Plateau exits are located on the
    output grid, then to the tolerance by restarting from the record before the crossing
    and finding the root."""
    # one BLAS-thread limit for the run and its restarts
    with one_blas_thread():
        return _lsoda_run(compiled, f, fun, state, lr, t0, t_eval, rtol, atol)


def _lsoda_run(compiled, f, fun, state, lr, t0, t_eval, rtol, atol):
    nfev = [0]

    def run(y0, t_from, times):
        if times[-1] <= t_from:          # nothing to integrate (output at the start only)
            return np.tile(y0, (len(times), 1))
        # odeint needs the initial time first; it is returned as the first record
        grid = np.concatenate([[t_from], times]) if times[0] > t_from else times
        try:
            ys, info = odeint(fun, y0, grid, rtol=rtol, atol=atol, mxstep=10**8,
                              full_output=True)
            nfev[0] += int(info["nfe"][-1])
        except (_Runaway, _NotFinite) as stop:
            t_fail = float(stop.args[0] if isinstance(stop, _Runaway) else stop.t)
            raise DivergenceError("the ODE", t_fail, lr, detail="the state ran away",
                                  cause=_runaway_cause(lr, t_fail)) from None
        if info["message"] != "Integration successful.":
            t_fail = float(info["tcur"][-1]) if len(info["tcur"]) else t0
            raise DivergenceError("the ODE", t_fail, lr, detail=f"the solver stopped: "
                                  f"{info['message']}", cause=_runaway_cause(lr, t_fail))
        return ys[1:] if times[0] > t_from else ys

    ys = run(state.to_vector(), t0, t_eval)
    error = _error_function(compiled, state)
    levels = plateau_levels(state.spectrum, state.model.K)
    errors = np.array([error(y) for y in ys])

    def root(i, level):
        # the interpolant's root is within ~1e-4 (relative) of the solver's; Newton steps
        # on the integrated state, each one short restart from the record before, make it
        # the solver's to ~1e-10 (a bracketing search took ~12 restarts per level)
        ta, tb = t_eval[i - 1], t_eval[i]
        t = _hermite_root(error, f, ys, t_eval, i, level)
        for _ in range(NEWTON_STEPS):
            y = ys[i - 1] if t <= ta else run(ys[i - 1], ta, np.array([t]))[-1]
            slope = _error_slope(error, f, t, y)
            step = (error(y) - level) / slope if slope < 0 else 0.0
            t = min(max(t - step, ta), tb)
            if abs(step) <= 1e-10 * tb:
                break
        return t

    crossings = _first_crossings(errors, levels, t_eval, root)
    return ys, nfev[0], _first_times(levels, error(state.to_vector()), t0, crossings)


class _NotFinite(Exception):
    """Raised inside the solver's callback at the first non-finite right-hand side."""

    def __init__(self, t):
        self.t = t


def _check_start(f, state, lr, t0):
    """A state that is already non-finite or runaway, or whose right-hand side is not finite,
    is reported at t0 before any step (scipy would integrate NaNs to the end)."""
    y0 = state.to_vector()
    largest = float(np.max(np.abs(y0))) if y0.size else 0.0
    if not np.all(np.isfinite(y0)) or largest > NORM_LIMIT:
        raise DivergenceError("the ODE", t0, lr, detail=f"the initial state has an entry of "
                              f"size {largest:.3g}", cause=_START_CAUSE)
    if not np.all(np.isfinite(f(t0, y0))):
        raise DivergenceError("the ODE", t0, lr, detail="the right-hand side is not finite at "
                              f"the initial state (largest entry {largest:.3g}, largest bias "
                              f"{float(np.max(np.abs(state.m), initial=0.0)):.3g})",
                              cause=_START_CAUSE)


_START_CAUSE = ("initial weights or biases too large for the averages to be finite (use a "
                "smaller init.scale or init.bias)")


def _runaway_cause(lr, t):
    return (f"the flow itself runs away from this initial state (η·t = {lr * t:.3g}); the "
            "learning rate only rescales the ODE's time, so a smaller one does not prevent it")


def _adaptive(compiled, f, state, lr, t0, t1, t_eval, method, rtol, atol, progress):
    bar = progress_bar(total=t1 - t0, desc="integrating", disable=not progress, unit="t")

    def fun(t, y):
        bar.update(max(0.0, t - t0 - bar.n))
        dy = f(t, y)
        if not np.all(np.isfinite(dy)):
            raise _NotFinite(t)
        return dy

    def runaway(t, y):
        return NORM_LIMIT - np.max(np.abs(y))
    runaway.terminal = True

    levels = plateau_levels(state.spectrum, state.model.K)
    error = _error_function(compiled, state)
    events = [runaway] + _level_crossings(error, levels)
    # ODEPACK calls BLAS on vectors of a few hundred numbers: waking a BLAS thread pool
    # for each costs more than the call (20× slower runs measured with 2 threads)
    try:
        with bar, one_blas_thread():
            sol = solve_ivp(fun, (t0, t1), state.to_vector(), method=method, t_eval=t_eval,
                            rtol=rtol, atol=atol, events=events)
    except _NotFinite as stop:
        raise DivergenceError("the ODE", stop.t, lr, detail="first non-finite right-hand side",
                              cause=_runaway_cause(lr, stop.t)) from None
    if sol.status == 1:
        t_fail = float(sol.t_events[0][0])
        raise DivergenceError("the ODE", t_fail, lr, detail=f"an overlap exceeded {NORM_LIMIT:g}",
                              cause=_runaway_cause(lr, t_fail))
    if sol.status == -1 or not np.all(np.isfinite(sol.y)):
        t_fail = float(sol.t[-1]) if sol.t.size else t0
        raise DivergenceError("the ODE", t_fail, lr, detail=f"the solver stopped: {sol.message}",
                              cause=_runaway_cause(lr, t_fail))
    return sol.y.T, sol.nfev, _first_times(levels, error(state.to_vector()), t0,
                                           [te[0] if te.size else np.nan
                                            for te in sol.t_events[1:]])


#: Newton steps that refine a plateau exit located on the Hermite interpolant (LSODA).
NEWTON_STEPS = 3


def _hermite_root(error, f, ys, t_eval, i, level):
    """Time in [t_{i−1}, t_i] where the error of the cubic Hermite interpolant of the
    records ys[i − 1], ys[i] (with derivatives f) falls through ``level``."""
    ta, tb = t_eval[i - 1], t_eval[i]
    spline = CubicHermiteSpline([ta, tb], ys[i - 1:i + 1], [f(ta, ys[i - 1]), f(tb, ys[i])])
    return brentq(lambda t: error(spline(t)) - level, ta, tb, xtol=1e-12 * tb, rtol=1e-12)


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


def _error_function(compiled, state):
    """``ε(y)`` of a flat state vector."""
    spec, K, nb = state.spectrum, state.model.K, compiled.blocks
    s, s_bulk, E0 = np.ascontiguousarray(spec.s), spec.bulk / spec.D, spec.initial_error
    error_of_state = compiled.module.error_of_state
    return lambda y: E0 + error_of_state(y, s, s_bulk, K, nb)


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
    euler = compiled.module.euler
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
            "the curve is not the ODE's: use a smaller dt or an adaptive method"), stacklevel=3)


def _trajectory(compiled, state, ys, t, lr, method, bulk, nfev, wall) -> Trajectory:
    spec, model = state.spectrum, state.model
    states = [state.with_vector(y) for y in ys]
    nY, nG = state.Y.size, state.G.size
    Ys = ys[:, :nY].reshape((-1,) + state.Y.shape)
    o = order_parameters_of(Ys, ys[:, nY:nY + nG].reshape((-1,) + state.G.shape),
                            ys[:, nY + nG:], spec, model.K)
    error = spec.initial_error + np.array([compiled.module.error_excess(*record) for record
                                           in zip(o.Q, o.R, o.T0, o.m)])
    if not np.all(np.isfinite(error)):
        bad = int(np.argmin(np.isfinite(error)))
        raise DivergenceError("the ODE", t[bad], lr, detail="first non-finite error",
                              cause=_runaway_cause(lr, t[bad]))
    mode = "all-modes" if spec.n_bulk == 0 else f"closure-{bulk}"
    return Trajectory(
        t=t, error=error, Q=o.Q, R=o.R, T=o.T, T0=o.T0, m=o.m,
        A=Ys[:, :model.K].copy(), B=Ys[:, -model.K:].copy(),
        learning_times=np.full(len(plateau_levels(spec, model.K)), np.nan),
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


def _check_span(t_span):
    if isinstance(t_span, (tuple, list, np.ndarray)):
        if len(t_span) != 2:
            raise ValueError(f"t_span must be t_max or (t0, t1), got {t_span!r}")
        t0, t1 = (check_real("t_span", t) for t in t_span)
    else:
        t0, t1 = 0.0, check_real("t_span", t_span)
    if not 0 <= t0 < t1:
        raise ValueError(f"t_span must satisfy 0 <= t0 < t1, got ({t0:g}, {t1:g})")
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
    return t

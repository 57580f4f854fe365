"""The compiled flow's right-hand side for one state, model and protocol, and the checks
around every solver call (a run-away or non-finite state stops the run with a
:class:`~odesolve.errors.DivergenceError`)."""
from __future__ import annotations

import time

import numpy as np

from .._checks import as_real_array, check_real
from ..codegen import CompiledModel, kernels
from ..errors import DivergenceError
from ..protocols import Protocol, as_protocol, noise_floor
from ..state import State, state_variables

#: a state entry beyond this is a blow-up, not learning (weights are O(1) in these units)
NORM_LIMIT = 1e8

#: the ``jac`` argument of the kernel ``rhs_guarded`` when no Jacobian is wanted
NO_JACOBIAN = np.empty((0, 0))


def rhs_function(compiled: CompiledModel, state: State, lr: float, bulk: str = "limit",
                 protocol: Protocol | None = None, finite_size: bool = False):
    """``f(t, y) -> dy/dt`` of the compiled equations, for use with any ODE solver.

    ``protocol`` (:class:`~odesolve.protocols.Protocol`) makes the rate a function of
    ``t`` and scales the rows of the flow (rates, decay); see :mod:`odesolve.protocols`.
    ``finite_size`` adds SGD's O(η²/D) noise floor of the bulk decoder (docs/theory.md §8).
    A state where a unit's pre-activation variance Q_kk is 0 (a zero encoder row) raises a
    ValueError naming the units, where the activation's averages divide by it, and so
    does a y that is not a vector of the state's size (the compiled loops do not check
    their bounds) or a t that is not a finite real number.  y may be any real array: f
    works on a float64 copy (the compiled kernel writes into the y it is given while it
    forms a Jacobian).
    """
    a = _FlowArguments(compiled, state, lr, bulk, protocol, finite_size)
    f = _rhs(compiled, a)

    def checked(t, y):
        t = check_real("t", t)
        y = as_real_array("y", y)      # a float64 copy
        if y.shape != (a.size,):
            raise ValueError(f"y must be a state vector of {a.size} entries (this state's "
                             f"size), not an array of shape {y.shape}")
        try:
            return f(t, y)
        except ZeroDivisionError:
            raise _zero_variance_error(state.with_vector(y)) from None

    return checked


def _zero_variance_error(state):
    """The ValueError of a right-hand side that divided by zero at ``state``: an average
    over λ ~ N(m, 0), since quadratures standardise by √Q_kk and closed forms with a kink
    (ReLU) divide by it (erf's are smooth there)."""
    flat = np.flatnonzero(np.diag(state.order_parameters().Q) <= 0).tolist()
    where = (f"units {flat} have zero pre-activation variance Q_kk (zero encoder rows)"
             if flat else "a unit's pre-activation variance Q_kk reached 0")
    return ValueError(f"the right-hand side of {state.model.activation.name} divides by zero: "
                      f"{where}, where its Gaussian averages are not defined in the form "
                      "derived; start every unit from a nonzero weight")


def _rhs(compiled, a):
    """:func:`rhs_function` of the flow arguments ``a``."""
    # the entry point compiled for every run (rhs alone would be a second compilation);
    # without a limit on the state it checks nothing (the solvers check dy themselves)
    guarded = compiled.kernels.rhs_guarded
    if a.wide:
        return _wide_rhs(guarded, a)

    def f(t, y):
        dy = np.empty_like(y)
        guarded(y, *a.at_rate(a.rate(t)), np.inf, dy, False, NO_JACOBIAN)
        return dy

    return f


def _rhs_into(compiled, a, f):
    """``fill(t, y, out)``: ``f(t, y)`` (:func:`_rhs` of the flow arguments ``a``) written
    into ``out``, for a solver that hands over its own arrays (CVODE, through the full
    state it unpacks into a writable float64 array: the compiled entry point is typed for
    writable arrays, and a read-only y would be a second compilation).  At a constant rate
    on the compiled loops it is one compiled call writing into ``out`` directly, with no
    array made per call (K = 24: 6.4 µs of Python work per call around f, 2.5 µs so)."""
    if a.wide or not a.constant:
        def fill(t, y, out):
            out[:] = f(t, y)
        return fill
    guarded = compiled.kernels.rhs_guarded
    head = a.at_rate(a.rate(0.0)) + (np.inf,)

    def fill(t, y, out):
        guarded(y, *head, out, False, NO_JACOBIAN)

    return fill


class _FlowArguments:
    """The arguments of the compiled flow for one state, model and protocol.

    ``work`` is the kernels' work vector (:func:`odesolve.codegen.kernels.work_views`):
    the modes' eigenvalues ``s``, the protocol's ``rates`` and ``decay``, and the work
    arrays ``S``, ``N``, ``drift``, ``hebbian`` (attributes, views of it) that every call
    of the compiled flow fills: one per set of arguments, not one per call."""

    def __init__(self, compiled, state, lr, bulk, protocol, finite_size):
        spec = state.spectrum
        self.n, self.K, self.nb = spec.s.shape[0], state.model.K, compiled.blocks
        self.s_bulk = spec.bulk / spec.D
        self.s_dyn = self.s_bulk if bulk == "finite" else 0.0
        protocol = as_protocol(protocol)
        self.constant = protocol.schedule.is_constant
        self.floor = noise_floor(state.model, spec, protocol) if finite_size else 0.0
        self.work = np.zeros(kernels.work_size(self.n, self.K, self.nb))
        (self.s, self.rates, self.decay, self.S, self.N, self.drift,
         self.hebbian) = kernels.work_views.py_func(self.work, self.n, self.K, self.nb)
        self.s[:] = spec.s
        self.rates[:], self.decay[:] = protocol.flow_multipliers(state.model)
        P = self.nb * self.K
        self.wide = BLAS_MIN_UNITS <= self.K and self.n < BLAS_MAX_MODES_PER_ROW * P
        self.size = state_variables(self.K, state.model.tied, self.n)
        self._lr, self._protocol = lr, protocol
        self.coefficients = compiled.coefficients_handle

    def rate(self, t):
        """The SGD rate per sample at time t (η/B for a constant schedule)."""
        protocol = self._protocol
        return self._lr / protocol.batch_size if self.constant else protocol.lr_at(self._lr, t)

    def at_rate(self, eta):
        """``(coefficients, n, K, nb, s_bulk, s_bulk_dyn, lr, noise, work)``: the
        arguments after y of the kernels ``rhs_guarded`` and ``euler`` at rate eta
        (odesolve.codegen.kernels; ``coefficients`` is the family's handle)."""
        # eta**2 overflows (a Python OverflowError) for a schedule of 1e300: the noise
        # floor is only computed where there is one
        return (self.coefficients, self.n, self.K, self.nb, self.s_bulk, self.s_dyn, eta,
                self.floor * eta**2 if self.floor else 0.0, self.work)


def _solver_callback(compiled, a, f, pace):
    """``fun(y, t)`` for odeint: ``f``, the right-hand side of the flow arguments ``a``,
    behind the checks of every call (a runaway or NaN state raises :class:`_Runaway`, a
    non-finite derivative :class:`_NotFinite`), told to ``pace`` (a
    :class:`~odesolve._progress.PaceNotice`).  At a constant rate on the compiled loops
    it is one compiled call (``rhs_guarded``): the Python work around a small state's
    right-hand side cost more than the right-hand side.  ``fun.reached[0]`` is the time
    of the latest call: where odeint was when it stopped (its own record of that is not
    set after some failures).  ``fun.jacobian`` is odeint's ``Dfun`` (``col_deriv=True``):
    the forward-difference Jacobian in one compiled call, or None where odeint forms it
    itself (wide networks, schedules).
    """
    reached = [0.0]
    jacobian = None
    if a.wide or not a.constant:
        def fun(y, t):
            reached[0] = t
            pace(t)
            # one dot product each screens out every sound call; NaN and overflow fail it
            if not y.dot(y) <= NORM_LIMIT**2 and not (np.abs(y) <= NORM_LIMIT).all():
                raise _Runaway(t)
            dy = f(t, y)
            if not np.isfinite(dy.dot(dy)) and not np.isfinite(dy).all():
                raise _NotFinite(t)
            return dy
    else:
        guarded = compiled.kernels.rhs_guarded
        # odeint copies what the callbacks return: one buffer each serves every call (the
        # Jacobian's made at the first call: a non-stiff run never asks for one)
        dy, jac = np.empty(a.size), []
        head = a.at_rate(a.rate(0.0)) + (NORM_LIMIT, dy, False)
        # the arguments after y in one tuple, and the clock read instead of calling pace
        # (0.2 µs of a K = 2 call's 1.8 µs)
        tail, clock, due = head + (NO_JACOBIAN,), time.perf_counter, pace.due
        # without numba's dispatcher, which resolves the types of the arguments at
        # every call: 0.26 µs of a K = 2 call's 1.45 µs (2026-12-01, median of 7 ×
        # 20,000 calls); the arguments are these, and y is odeint's float64 vector
        direct = compiled.unchecked("rhs_guarded", (np.empty(a.size),) + tail)

        def fun(y, t):
            reached[0] = t
            if clock() >= due:
                pace(t)
            code = direct(y, *tail)
            if code:
                raise (_Runaway if code == 1 else _NotFinite)(t)
            return dy

        def jacobian(y, t):
            if not jac:
                jac.append(np.empty((a.size, a.size)))
            code = guarded(y, *head, jac[0])
            if code:
                raise (_Runaway if code == 1 else _NotFinite)(t)
            return jac[0]
    fun.reached = reached
    fun.jacobian = jacobian
    return fun


#: From this many units K the right-hand side takes its products (s_τ S + N) Y and M G,
#: O(P² n + P³) for P rows (2K untied, K tied), with BLAS instead of the compiled loops,
#: unless the modes outnumber the rows :data:`BLAS_MAX_MODES_PER_ROW` times (all-modes
#: runs, where the loops over modes vectorise).  Both go through the one compiled entry
#: point.  Measured per call, median of 5 (erf, one BLAS thread, 2026-12-01 17:15),
#: loops against BLAS: untied K = 32, 5 spikes: 32 vs 49 µs; K = 48, 48 spikes: 125 vs
#: 151 µs; K = 64, 64 spikes: 311 vs 322 µs; K = 80, 5 spikes: 226 vs 236 µs; K = 100,
#: 5 spikes: 437 vs 358 µs; tied K = 64, 64 spikes: 185 vs 186 µs; tied K = 100: 246 vs
#: 203 µs; all modes D = 1024, K = 64: 2.8 vs 4.3 ms.
BLAS_MIN_UNITS = 96
BLAS_MAX_MODES_PER_ROW = 8


def _wide_rhs(guarded, a):
    """The kernels' ``rhs`` with its products as matrix products (same flow):
    the compiled entry point ``guarded`` fills the flow matrices only."""
    P, n, K = a.nb * a.K, a.n, a.K
    off, b0 = P * n, P - K
    S, N, drift, hebbian = a.S, a.N, a.drift, a.hebbian
    unused = np.empty(0)

    def f(t, y):
        eta = a.rate(t)
        guarded(y, *a.at_rate(eta), np.inf, unused, True, NO_JACOBIAN)
        Y = y[:off].reshape(P, n)
        MG = _block_product(a.s_dyn * S + N, y[off:off + P * P].reshape(P, P))
        dG = MG + MG.T
        dG *= eta
        if a.floor:
            dG[b0:, b0:] += a.floor * eta**2 * hebbian
        return np.concatenate([(eta * (S @ (Y * a.s) + N @ Y)).ravel(), dG.ravel(),
                               eta * drift])

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


class _Runaway(Exception):
    """Raised inside the right-hand side when the state blows up (stops odeint)."""


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


#: From this time on a solver's stop for a step below the spacing of floats (scipy: "...
#: spacing ...", CVODE: "... min step size") is blamed on the spacing (1.5e-8 at 1e8, 2e-3
#: at 1e13), not on a runaway flow
FAR_TIME = 1e8


def _failure_cause(lr, t, message):
    """The cause named when a solver stopped at ``t`` with ``message``."""
    if abs(t) >= FAR_TIME and ("spacing" in message or "min step" in message):
        return (f"at t = {t:.3g} floating-point times are {np.spacing(t):.2g} apart, coarser "
                "than the steps the tolerance needs; without a schedule the flow depends only "
                "on the time elapsed, so start at a smaller t0 (or loosen rtol and atol)")
    return _runaway_cause(lr, t)


def _runaway_cause(lr, t):
    return (f"the flow itself runs away from this initial state (η·t = {lr * t:.3g}); the "
            "learning rate only rescales the ODE's time, so a smaller one does not prevent it")


def _error_function(compiled, state):
    """``ε(y)`` of a flat state vector."""
    spec, K, nb = state.spectrum, state.model.K, compiled.blocks
    s, s_bulk, E0 = np.ascontiguousarray(spec.s), spec.bulk / spec.D, spec.initial_error
    error_of_state, handle = compiled.kernels.error_of_state, compiled.error_handle
    return lambda y: E0 + error_of_state(y, handle, s, s_bulk, K, nb)

"""``integrate``: the argument checks, the method registry, the solvers and the trajectory."""
from __future__ import annotations

import time
import warnings

import numpy as np
from scipy.integrate import ODEintWarning, odeint, solve_ivp

from .._checks import check_choice, check_cost, check_integer, check_positive, check_tolerance
from .._progress import PaceNotice, progress_bar
from .._threads import one_blas_thread
from ..codegen import compile_model
from ..errors import DivergenceError, QuadratureRangeError, RegimeWarning, ToleranceWarning
from ..fluctuations import fluctuation_correction
from ..protocols import Protocol, as_protocol, noise_floor
from ..state import State, order_parameters_of
from ..trajectory import StateRecords, Trajectory, plateau_levels
from .euler import SECONDS_PER_EULER_VALUE, _euler
from .events import (ROOT_STEPS, _error_slope, _first_crossings, _first_times, _hermite_root,
                     _level_crossings)
from .cvode import _cvode
from .flow import (NORM_LIMIT, _check_start, _error_function, _failure_cause, _FlowArguments,
                   _NotFinite, _rhs, _rhs_into, _Runaway, _runaway_cause, _solver_callback,
                   _zero_variance_error)
from .grid import (UNRESOLVED, UNRESOLVED_FLOOR, _check_span, _check_t_eval, atol_sensitivity,
                   default_atol, time_grid)
from .regime import regime_notes
from .rkc import RKC

METHODS = ("auto", "LSODA", "CVODE", "RK45", "RK23", "DOP853", "Radau", "BDF", "RKC", "euler")
#: the methods that are not scipy's, by name (solve_ivp takes an OdeSolver class)
_SOLVER_CLASSES = {"RKC": RKC}
#: ``method="auto"``: LSODA up to this many state variables, CVODE (BDF with matrix-free
#: GMRES, :mod:`.cvode`) above.  LSODA turns stiff near fixed points (where RK45 needs
#: ~100× more steps), but its stiff mode builds dense finite-difference Jacobians:
#: hopeless for thousands of variables (K = 24: 17 s).  CVODE needs no Jacobian and was
#: 2.8–24× faster than RK45 (the previous choice above this size) on the large states of
#: benchmarks/bench_solvers.py, with a global error at the same rtol between 0.1× and 12×
#: RK45's (README § Performance); below this size LSODA is as fast and more accurate.
#: A linearly implicit (W-)method whose matrix is the frozen linear flow (per mode
#: s_τ S + N, cheap block solves) was measured and rejected: that matrix is not close to
#: the Jacobian (erf, K = 8: ‖J − A‖₂ ≈ 2.5, and A has eigenvalues up to +1.1 where J's
#: are ≤ 0): the spectral radius of h (I − hA)⁻¹ (J − A) was 13–700 for steps h = 3–30
#: once t ≥ 3, so the method is not stable at steps beyond RK45's (scratch measurement of
#: 2026-11-30, not a test).
AUTO_LSODA_MAX_SIZE = 400
BULK_MODES = ("limit", "finite")


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
        for states of up to :data:`AUTO_LSODA_MAX_SIZE` variables, ``"CVODE"`` for larger
        ones (``Trajectory.method`` says which ran); ``"CVODE"``: SUNDIALS' variable-order
        BDF with matrix-free GMRES (:mod:`odesolve.integrator.cvode`: no Jacobian is
        formed, so it takes stiff flows of any size); any :func:`scipy.integrate.solve_ivp`
        method (``"LSODA"``, ``"RK45"``, ``"DOP853"``, ...); ``"RKC"``, a stabilised
        explicit Runge–Kutta–Chebyshev method (:mod:`odesolve.integrator.rkc`; second
        order, so at a given ``rtol`` its global error is larger than RK45's: README §
        Performance); or ``"euler"`` (fixed step ``dt``, default ``1/D``: the published
        reference scheme).
    t_eval : array_like, optional
        Output times; default ``n_points`` log-spaced times (plus ``t0``).
    rtol : float
        Relative tolerance of the adaptive solvers, in (0, 1).
    atol : float, optional
        Absolute tolerance of the adaptive solvers; default :func:`default_atol` of the
        initial state (``ATOL_PER_SCALE`` × the RMS of its overlaps), so that a tiny
        initial state is not below the tolerance.  Where moving the state by that atol
        moves the error by more than 10⁻³ of itself, or the error is negative (a start
        with weights far too large, whose decoder collapses below it), the run is
        repeated with a smaller atol until two runs agree to max(10⁻⁴, 100 rtol), with
        CVODE after LSODA disagreed or failed under ``"auto"``; a first run that runs
        away is taken again by CVODE at atol × 10⁻⁸ (``"auto"`` and ``"CVODE"``), and
        ``Trajectory.nfev`` counts every run.
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
    QuadratureRangeError
        If a Gaussian average computed by quadrature is not accurate at a variance the
        run reached (an activation growing nearly as fast as the Gaussian decays).
    ValueError, TypeError
        For a bad learning rate, time span, method, bulk mode, tolerance, step or output
        times, or a state whose G is not symmetric (checked before any work, with the
        checks of the configuration); and, at
        the first evaluation, for a unit of zero pre-activation variance (a zero encoder
        row) where the activation's averages divide by it (quadratures, ReLU's kink).

    Warns
    -----
    RegimeWarning
        Before any work, for a state, learning rate and protocol at which finite-D SGD
        may not follow the D → ∞ equations (η/D, η·s_max/D, η·σ²·t/D too large:
        :func:`odesolve.integrator.regime.regime_notes`); the curve is still the theory's.
    CostWarning
        Once, when after 20 s the time still to go at the pace so far exceeds a minute
        (an adaptive solver's cost is set by the flow's stiffness, unknown beforehand).
    ToleranceWarning
        When the runs with a default atol scaled down do not agree after 3 reruns (the
        curve returned is the last one).

    See Also
    --------
    odesolve.integrate_batch : many initial states in one call.

    References
    ----------
    The equations are derived here (docs/theory.md); for untied erf autoencoders they are
    those of Refinetti & Goldt, ICML 2022 (arXiv 2201.02115).  LSODA: Petzold, SIAM J. Sci.
    Stat. Comput. 4, 136 (1983), through ODEPACK (:func:`scipy.integrate.odeint`).  CVODE:
    Hindmarsh et al., ACM Trans. Math. Softw. 31, 363 (2005), through scikit-sundae.  RKC:
    Sommeijer, Shampine & Verwer, J. Comput. Appl. Math. 88, 315 (1998).
    """
    lr, t0, t1, t_eval, rtol, atol, protocol = _checked(
        state, lr, t_span, method, t_eval, n_points, rtol, atol, dt, bulk, protocol, finite_size)
    for note in regime_notes(state.spectrum, lr, protocol, t_eval, bulk):
        warnings.warn(RegimeWarning(note), stacklevel=2)
    default = atol is None
    atol = default_atol(state) if default else atol
    compiled = compile_model(state.model)
    requested = method
    if method == "auto":
        method = "LSODA" if state.to_vector().size <= AUTO_LSODA_MAX_SIZE else "CVODE"
    arguments = _FlowArguments(compiled, state, lr, bulk, protocol, finite_size)
    f = _rhs(compiled, arguments)

    def solve(method, atol):
        """``(ys, nfev, crossings, errors)`` of one run; ``errors``: ε at the records
        where the solver computed them already (else None)."""
        if method == "euler":
            return _euler(compiled, f, arguments, state, lr, t0, t_eval, dt, progress) + (None,)
        if method == "LSODA":
            fun = _solver_callback(compiled, arguments, f, _pace(state, method, t0, t1))
            return _lsoda(compiled, f, fun, state, lr, t0, t_eval, rtol, atol)
        if method == "CVODE":
            return _cvode(compiled, _rhs_into(compiled, arguments, f),
                          _pace(state, method, t0, t1), state, lr, t0, t_eval, rtol, atol,
                          progress) + (None,)
        return _adaptive(compiled, f, state, lr, t0, t1, t_eval, method, rtol, atol, progress,
                         _pace(state, method, t0, t1)) + (None,)

    try:
        _check_start(f, state, lr, t0)
        start = time.perf_counter()
        try:
            ys, nfev, crossings, errors = solve(method, atol)
        except DivergenceError:
            # on starts with weights far too large LSODA (x³, K = 2, × 3·10⁴) and CVODE at
            # the default atol (x³, K = 3, × 10⁴) ran away where CVODE at a smaller atol
            # does not; a flow that runs away fails there too, and that error is raised
            if not default or requested not in ("auto", "CVODE"):
                raise
            method, atol = "CVODE", atol * SMALLEST_FACTOR
            ys, nfev, crossings, errors = solve(method, atol)
        if default and method != "euler":
            ys, nfev, crossings, errors, method = _resolved(
                solve, _error_function(compiled, state), state, ys, nfev, crossings, errors,
                method, requested, atol, rtol, t_eval)
        wall = time.perf_counter() - start
        traj = _trajectory(compiled, state, ys, t_eval, lr, method, bulk, nfev, wall,
                           crossings, errors)
        traj.protocol = protocol
        traj.finite_size = bool(finite_size)
        if finite_size:
            _add_fluctuations(traj, compiled, f, state, t0, (dt or 1.0 / state.spectrum.D)
                              if method == "euler" else 0.0)
    except QuadratureRangeError as err:
        # raised inside a compiled average, under the solver's frames: shown from here
        raise QuadratureRangeError(f"the ODE stopped: {err}") from None
    except ZeroDivisionError:
        raise _zero_variance_error(state) from None
    return traj


#: Reruns of a run whose default atol may not resolve its error (:func:`_resolved`)
ATOL_RETRIES = 3
#: Two runs agree when their errors at every record differ by at most this fraction, or
#: by RTOL_GAP × rtol where that is larger (runs at rtol = 10⁻³ differ by ~4·10⁻⁴)
CONVERGED = 1e-4
RTOL_GAP = 100.0
#: A rerun's atol is the last one times min(0.1, rtol/change), but at least this factor
#: of it (a change of 10¹¹ sent LSODA to atol 10⁻²⁷, where it failed)
SMALLEST_FACTOR = 1e-8


def _resolved(solve, error, state, ys, nfev, crossings, errors, method, requested, atol,
              rtol, t_eval):
    """The run ``(ys, nfev, crossings, errors, method)`` itself, or a rerun with a smaller
    absolute tolerance where the default one may not resolve its error (its ``errors``,
    ε at the records, then computed here for the comparison, not again).

    The default atol is scaled on the initial state; a start with weights far too large
    collapses the decoder's overlaps below it (README, Known limitations).  Where moving
    the state by atol moves the error by more than :data:`~.grid.UNRESOLVED` of itself,
    or the error is negative (:func:`~.grid.atol_sensitivity`), the run is repeated with
    atol scaled down, until two runs in a row agree to max(:data:`CONVERGED`,
    :data:`RTOL_GAP` · rtol) at every record (the error's sensitivity alone does not
    decide: it was 1 on x³ started 100× too large, where LSODA's answer was right to
    10⁻⁷).  ``method="auto"`` takes CVODE after a disagreement or a failure of LSODA
    (LSODA did not converge on such starts at any tolerance).  Runs that never agree are
    returned with a :class:`~odesolve.errors.ToleranceWarning`."""
    scale = state.spectrum.initial_error
    worst = atol_sensitivity(error, ys, atol, scale)[0]
    if worst <= UNRESOLVED:
        return ys, nfev, crossings, errors, method
    agree = max(CONVERGED, RTOL_GAP * rtol)
    last = _record_errors(error, ys) if errors is None else errors
    for _ in range(ATOL_RETRIES):
        atol = atol * max(SMALLEST_FACTOR, min(0.1, rtol / worst))
        try:
            ys, more, crossings, errors = solve(method, atol)
        except DivergenceError:
            if requested != "auto" or method == "CVODE":
                raise
            method = "CVODE"
            ys, more, crossings, errors = solve(method, atol)
        nfev += more
        now = _record_errors(error, ys) if errors is None else errors
        with np.errstate(all="ignore"):
            gap = np.abs(now - last) / np.maximum(np.abs(last), UNRESOLVED_FLOOR * scale)
        if np.all(gap <= agree):
            return ys, nfev, crossings, now, method
        if requested == "auto":
            method = "CVODE"
        worst = max(atol_sensitivity(error, ys, atol, scale)[0], rtol)
        last = now
    record = int(np.nanargmax(gap)) if np.any(np.isfinite(gap)) else len(gap) - 1
    warnings.warn(ToleranceWarning(
        f"{method}'s error does not converge as atol falls: {ATOL_RETRIES + 1} runs with "
        f"the default atol scaled down to {float(np.min(atol)):.2g} differ by "
        f"{float(gap[record]):.2g} of the error at t = {t_eval[record]:.3g} (a start with "
        "weights far too large?); pass a smaller rtol and atol"
        + ("" if method == "CVODE" else ", or method='CVODE'")), stacklevel=3)
    return ys, nfev, crossings, now, method


def _record_errors(error, ys):
    """ε at every record of ``ys`` (n_records, size); the rows are made contiguous first
    (solve_ivp's records are a transposed view, whose rows the compiled error would take
    as a second type, i.e. a second compilation)."""
    return np.array([error(y) for y in np.ascontiguousarray(ys)])


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
    state.check_symmetric_gram()
    lr = check_positive("learning rate", lr)
    t0, t1 = _check_span(t_span)
    check_choice("method", method, METHODS)
    check_choice("bulk mode", bulk, BULK_MODES)
    rtol = check_tolerance("rtol", rtol)
    atol = None if atol is None else check_positive("atol", atol)
    if dt is not None and method != "euler":
        raise ValueError(f"dt is the step of method='euler'; method={method!r} chooses its "
                         "own steps (rtol, atol)")
    if dt is not None and check_positive("dt", dt) > t1 - t0:
        raise ValueError(f"dt must be at most the time span {t1 - t0:g}, got {dt!r}")
    if t_eval is None:
        n_points = check_integer("n_points", n_points, minimum=2)
        _check_output_size(state, n_points)
        t_eval = time_grid(t1, n_points, t0=t0)
    else:
        t_eval = _check_t_eval(t_eval, t0, t1)
        _check_output_size(state, t_eval.size)
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


def _check_output_size(state, n_times):
    """Refuse, before any work, a trajectory beyond memory: the state vector and the order
    parameters (Q, R, T, T0, K × K each) at every output time, in float64."""
    K, size = state.model.K, state.to_vector().size
    check_cost(f"integrate: {n_times} output times of {size} state variables (K = {K})",
               nbytes=8.0 * n_times * (size + 4 * K * K + K))


#: LSODA records this many times per output interval; the Hermite interpolant between two
#: of them starts a plateau exit's Newton steps.  Measured on a warm K = 2 curve to 10⁴
#: (median of 9): 1 (the output records) 6.3 ms, 2: 5.5, 4: 5.3, 8: 5.5 (odeint's outputs
#: cost more than the short restarts they save); integrating the interval holding an exit
#: again on 33 records: 5.6 ms
REFINE = 4
#: At most this many numbers in those records (fewer records per interval beyond)
REFINED_VALUES = 2_000_000


def _lsoda(compiled, f, fun, state, lr, t0, t_eval, rtol, atol):
    """LSODA with its stepping loop compiled (scipy.integrate.odeint, ODEPACK): the
    algorithm of solve_ivp's LSODA without its Python work per step; ``fun(y, t)`` is the
    checked right-hand side (:func:`_solver_callback`) and ``fun.jacobian`` its compiled
    Jacobian.  Plateau exits are located on the output grid (and t0), then between the
    REFINE records per output interval of the same run, then to the tolerance by Newton
    steps on short restarts, kept inside a bracket of the crossing (docs/theory.md § 10).
    Returns ``(ys, nfev, learning_times, errors)``, the last ε at the records."""
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
            # the callback's finiteness checks overflow on a blow-up, which they report;
            # odeint's own warning of a failure becomes the DivergenceError below
            with np.errstate(over="ignore", invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", ODEintWarning)
                ys, info = odeint(fun, y0, grid, rtol=rtol, atol=atol, mxstep=10**8,
                                  full_output=True, Dfun=fun.jacobian, col_deriv=True)
            # the compiled Jacobian's n + 1 right-hand sides are not in odeint's count
            nfev[0] += int(info["nfe"][-1]) + (0 if fun.jacobian is None else
                                               int(info["nje"][-1]) * (y0.size + 1))
        except (_Runaway, _NotFinite) as stop:
            t_fail = float(stop.args[0] if isinstance(stop, _Runaway) else stop.t)
            raise DivergenceError("the ODE", t_fail, lr, detail="the state ran away",
                                  cause=_runaway_cause(lr, t_fail)) from None
        if info["message"] != "Integration successful.":
            # not info["tcur"]: after some failures it is not set (6.9e-310 was reported)
            t_fail = float(fun.reached[0])
            raise DivergenceError("the ODE", t_fail, lr, detail=f"the solver stopped: "
                                  f"{info['message']}", cause=_runaway_cause(lr, t_fail))
        return ys[1:] if times[0] > t_from else ys

    # the run also records REFINE − 1 times inside each output interval (fewer where
    # that would hold more than REFINED_VALUES numbers): the plateau exits start from
    # them instead of integrating an interval again.  The records of the exits start at
    # t0, also where the output starts later (an exit before the first output time)
    y0 = state.to_vector()
    lead = int(t_eval[0] > t0)
    times = np.concatenate([[t0], t_eval]) if lead else t_eval
    refine = int(min(REFINE, REFINED_VALUES // (len(times) * y0.size)))
    refine = refine if refine > 1 and len(times) > 1 else 1
    grid = np.append((times[:-1, None] + np.diff(times)[:, None]
                      * (np.arange(refine) / refine)).ravel(), times[-1])
    ys_fine = run(y0, t0, grid)
    error = _error_function(compiled, state)
    levels = plateau_levels(state.spectrum, state.model.K)
    errors = _record_errors(error, ys_fine[::refine])
    fine = {}

    def records_between(i):
        """Times, states and errors of the records from record i − 1 to i of ``times``."""
        if i not in fine:
            rows = slice((i - 1) * refine, i * refine + 1)
            fine[i] = grid[rows], ys_fine[rows], _record_errors(error, ys_fine[rows])
        return fine[i]

    def root(i, level):
        # the root of the Hermite interpolant between the two finer records that bracket
        # the crossing starts Newton steps on the integrated error, each integrating from
        # the bracket's left end (the latest state above the level) and narrowing the
        # bracket; a step that would leave it is a bisection instead.  (Newton steps
        # clamped to the output interval instead returned t0 for an exit at 2.4 in
        # [0, 1000]; restarts from the output record before took 724 of a K = 2 curve's
        # 3,282 evaluations, these take 115.)
        tol = 1e-10 * max(abs(times[i - 1]), abs(times[i]))
        t_fine, y_fine, e_fine = records_between(i)
        j = int(np.flatnonzero(e_fine <= level)[0])         # ≥ 1: e_fine[0] is above
        a, ya, b = t_fine[j - 1], y_fine[j - 1], t_fine[j]
        t = _hermite_root(error, f, y_fine, t_fine, j, level)
        for _ in range(ROOT_STEPS):
            if not a < t < b:
                t = 0.5 * (a + b)
            y = run(ya, a, np.array([t]))[-1]
            above = error(y) - level
            if above > 0:
                a, ya = t, y
            else:
                b = t
            slope = _error_slope(error, f, t, y)
            step = above / slope if slope < 0 else np.inf
            if abs(step) <= tol:
                return min(max(t - step, a), b)
            if b - a <= tol:
                return b
            t = t - step
        return b

    crossings = _first_crossings(errors, levels, times, root)
    ys = np.ascontiguousarray(ys_fine[lead * refine::refine])   # the finer ones are not kept
    return ys, nfev[0], _first_times(levels, error(y0), t0, crossings), errors[lead:]


def _pace(state, method, t0, t1):
    """The notice of a slow integration (:class:`~odesolve._progress.PaceNotice`): an
    adaptive solver's cost is set by the flow's stiffness, unknown before the run."""
    implicit = ("CVODE steps over the fast modes at any size (method='CVODE' or "
                "theory.solver = \"CVODE\" in a configuration); so does LSODA up to a few "
                "thousand variables (its Jacobians are dense)")
    stiff = "" if method in ("LSODA", "CVODE", "Radau", "BDF") else f"; {implicit}"
    return PaceNotice(f"integrating the ODE with {method} ({state.to_vector().size:,} "
                      "variables)", t0, t1,
                      hint=" (small steps: a stiff flow, e.g. a large eigenvalue times the "
                           f"learning rate{stiff}; Ctrl-C stops it)")


def _adaptive(compiled, f, state, lr, t0, t1, t_eval, method, rtol, atol, progress, pace):
    bar = progress_bar(total=t1 - t0, desc="integrating", disable=not progress, unit="t")

    def fun(t, y):
        pace(t)
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
            sol = solve_ivp(fun, (t0, t1), state.to_vector(),
                            method=_SOLVER_CLASSES.get(method, method), t_eval=t_eval,
                            rtol=rtol, atol=atol, events=events)
    except _NotFinite as stop:
        raise DivergenceError("the ODE", stop.t, lr, detail="first non-finite right-hand side",
                              cause=_runaway_cause(lr, stop.t)) from None
    if sol.status == 1:
        t_fail = float(sol.t_events[0][0])
        raise DivergenceError("the ODE", t_fail, lr, detail=f"an overlap exceeded {NORM_LIMIT:g}",
                              cause=_runaway_cause(lr, t_fail))
    if sol.status == -1 or not np.all(np.isfinite(sol.y)):
        # solve_ivp's t is a list, not an array, when it stopped before its first output
        t_fail = float(sol.t[-1]) if len(sol.t) else t0
        raise DivergenceError("the ODE", t_fail, lr, detail=f"the solver stopped: {sol.message}",
                              cause=_failure_cause(lr, t_fail, sol.message))
    return sol.y.T, sol.nfev, _first_times(levels, error(state.to_vector()), t0,
                                           [te[0] if te.size else np.nan
                                            for te in sol.t_events[1:]])


def _trajectory(compiled, state, ys, t, lr, method, bulk, nfev, wall, learning_times,
                errors=None) -> Trajectory:
    """The Trajectory of the records ``ys`` at times ``t``; ``errors``: ε at the records
    where the solver computed them (else computed here)."""
    spec, model = state.spectrum, state.model
    nY, nG = state.Y.size, state.G.size
    Ys = ys[:, :nY].reshape((-1,) + state.Y.shape)
    o = order_parameters_of(Ys, ys[:, nY:nY + nG].reshape((-1,) + state.G.shape),
                            ys[:, nY + nG:], spec, model.K)
    if errors is None:
        errors = _record_errors(_error_function(compiled, state), ys)
    if not np.all(np.isfinite(errors)):
        bad = int(np.argmin(np.isfinite(errors)))
        raise DivergenceError("the ODE", t[bad], lr, detail="first non-finite error",
                              cause=_runaway_cause(lr, t[bad]))
    mode = "all-modes" if spec.n_bulk == 0 else f"closure-{bulk}"
    return Trajectory(
        t=t, error=errors, Q=o.Q, R=o.R, T=o.T, T0=o.T0, m=o.m,
        A=Ys[:, :model.K].copy(), B=Ys[:, -model.K:].copy(),
        learning_times=learning_times,
        model=model, spectrum=spec, lr=lr, method=method, bulk=bulk, mode=mode,
        nfev=int(nfev), wall_time=wall, states=StateRecords(state, ys))

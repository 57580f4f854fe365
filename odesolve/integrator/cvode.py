"""SUNDIALS CVODE for large states: variable-order BDF whose Newton systems are solved by
matrix-free GMRES (scikit-sundae's wrapper of SUNDIALS).

Why this method for large states (docs/theory.md §10): the flow is mildly stiff (at
t = 10³ its Jacobian has eigenvalues near −5 beside ones near 0), which holds explicit
methods to steps of ~0.7; an implicit method steps over the fast modes, but a dense
Jacobian of 10³–10⁵ variables is out of reach (LSODA's finite-difference Jacobians took
17 s at K = 24).  GMRES needs only products of the Jacobian with vectors, which CVODE
takes as differences of right-hand sides: a few per Newton iteration.  No preconditioner:
the frozen linear flow (per mode s_τ S + N) tried as one made every run slower (K = 24:
6,566 against 1,441 evaluations), as it is not close to the Jacobian (odesolve.integrator
.solve, AUTO_LSODA_MAX_SIZE).

References
----------
Hindmarsh et al., "SUNDIALS: Suite of nonlinear and differential/algebraic equation
solvers", ACM Trans. Math. Softw. 31, 363 (2005); Brown & Hindmarsh, "Reduced storage
matrix methods in stiff ODE systems", Appl. Math. Comput. 31, 40 (1989) (BDF with
matrix-free Krylov solves).
"""
from __future__ import annotations

import contextlib
import io

import numpy as np

from .._progress import progress_bar
from .._threads import one_blas_thread
from ..errors import DivergenceError
from ..trajectory import plateau_levels
from .events import _first_times
from .flow import _error_function, _failure_cause, _NotFinite, _Runaway, _runaway_cause

#: Krylov basis vectors per GMRES solve (SUNDIALS' default is 5): 10 took 15–40 % fewer
#: right-hand sides on the flows of benchmarks/bench_solvers.py (K = 6–16, erf).
KRYLOV_DIM = 10
#: steps CVODE may take between two output times before it gives up (a run that slow is
#: announced by the pace notice, and Ctrl-C stops it)
MAX_STEPS = 10**9
#: CVODE's return status when it stopped at an event (scikit-sundae's convention)
_AT_EVENT = 2


def _cvode(compiled, fun, state, lr, t0, t_eval, rtol, atol, progress):
    """Integrate with CVODE (BDF, matrix-free GMRES), recording ``t_eval``.

    ``fun(y, t)`` is the checked right-hand side (:func:`.flow._solver_callback`); the
    plateau exits are CVODE's own roots of ε(y) − level (direction: falling).  Returns
    ``(ys, nfev, learning_times)``; ``nfev`` counts every call of the right-hand side,
    the GMRES products included (CVODE's own count leaves those out).
    """
    from sksundae.cvode import CVODE     # 0.3 s to import: only for the runs that use it

    error = _error_function(compiled, state)
    levels = plateau_levels(state.spectrum, state.model.K)
    calls = [0]

    def rhs(t, y, yp):
        calls[0] += 1
        yp[:] = fun(np.array(y), t)      # y is a read-only view of CVODE's memory

    def falling_through(t, y, out):
        out[:] = error(np.array(y)) - levels

    falling_through.terminal = [False] * len(levels)
    falling_through.direction = [-1] * len(levels)
    t1 = float(t_eval[-1])
    # steps below the spacing of floats at t1 would leave t unchanged (SUNDIALS warns on
    # stderr and continues); with this floor CVODE fails instead, and the error says why
    min_step = 4.0 * float(np.spacing(max(abs(t0), abs(t1))))
    options = dict(method="BDF", linsolver="gmres", krylov_dim=KRYLOV_DIM, rtol=rtol,
                   atol=atol, max_num_steps=MAX_STEPS, min_step=min_step,
                   max_step=max(t1 - t0, min_step))
    if len(levels):
        options.update(eventsfn=falling_through, num_events=len(levels))
    y0 = state.to_vector()
    ys = np.empty((len(t_eval), y0.size))
    bar = progress_bar(total=t1 - t0, desc="integrating", disable=not progress, unit="t")
    # scikit-sundae prints SUNDIALS' error messages on stdout; they go into the exception.
    # The checks of every call report a blow-up (numpy's overflow warnings would repeat it)
    said = io.StringIO()
    try:
        with bar, one_blas_thread(), contextlib.redirect_stdout(said), \
                np.errstate(over="ignore", invalid="ignore"):
            solver = CVODE(rhs, **options)
            solver.init_step(t0, y0)
            result = None
            for i, t in enumerate(t_eval):
                if t == t0:
                    ys[i] = y0
                    continue
                result = solver.step(t)
                while result.success and result.status == _AT_EVENT and result.t < t:
                    result = solver.step(t)
                if not result.success:
                    break
                ys[i] = result.y
                bar.update(t - t0 - bar.n)
    except (_Runaway, _NotFinite) as stop:
        t_fail = float(stop.args[0] if isinstance(stop, _Runaway) else stop.t)
        raise DivergenceError("the ODE", t_fail, lr, detail="the state ran away",
                              cause=_runaway_cause(lr, t_fail)) from None
    if result is not None and not result.success:
        t_fail = float(fun.reached[0])
        message = " ".join([result.message] + said.getvalue().split())
        raise DivergenceError("the ODE", t_fail, lr, detail=f"the solver stopped: {message}",
                              cause=_failure_cause(lr, t_fail, message))
    crossings = np.full(len(levels), np.nan)
    if result is not None and result.i_events is not None:
        for time, row in zip(np.atleast_1d(result.t_events), np.atleast_2d(result.i_events)):
            crossings[row != 0] = np.fmin(crossings[row != 0], time)
    return ys, calls[0], _first_times(levels, error(y0), t0, crossings)

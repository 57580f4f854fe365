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
import sys
import threading
import time

import numpy as np

from .._progress import progress_bar
from .._threads import one_blas_thread
from ..errors import DivergenceError
from ..trajectory import plateau_levels
from .events import _first_times
from .flow import (FAR_TIME, NORM_LIMIT, _error_function, _failure_cause, _NotFinite,
                   _runaway_cause)
from .packing import pack, packed_size, unpack

#: Krylov basis vectors per GMRES solve (SUNDIALS' default is 5): 10 took 15–40 % fewer
#: right-hand sides on the flows of benchmarks/bench_solvers.py (K = 6–16, erf).
KRYLOV_DIM = 10
#: steps CVODE may take between two output times before it gives up (a run that slow is
#: announced by the pace notice, and Ctrl-C stops it)
MAX_STEPS = 10**9
#: CVODE's return status when it stopped at an event (scikit-sundae's convention)
_AT_EVENT = 2


class _ThreadRoutedStdout:
    """Stands for ``sys.stdout`` while CVODE runs: what a thread inside a run writes goes to
    that run's buffer, everything else to the stream it replaced.  scikit-sundae prints
    SUNDIALS' error messages with ``print``; swapping ``sys.stdout`` for a buffer
    (contextlib.redirect_stdout) would swallow every other thread's output and, with
    overlapping runs in threads, could leave the buffer in place for good."""

    def __init__(self, stream):
        self.stream = stream
        self.buffers = {}

    def write(self, text):
        return self.buffers.get(threading.get_ident(), self.stream).write(text)

    def __getattr__(self, name):            # flush, fileno, encoding, isatty, ...
        return getattr(self.stream, name)


_ROUTING = threading.Lock()


@contextlib.contextmanager
def _stdout_of_this_thread():
    """The text this thread prints meanwhile, in a buffer; other threads' go through."""
    buffer = io.StringIO()
    with _ROUTING:
        if not isinstance(sys.stdout, _ThreadRoutedStdout):
            sys.stdout = _ThreadRoutedStdout(sys.stdout)
        router = sys.stdout
        router.buffers[threading.get_ident()] = buffer
    try:
        yield buffer
    finally:
        with _ROUTING:
            router.buffers.pop(threading.get_ident(), None)
            if not router.buffers and sys.stdout is router:
                sys.stdout = router.stream


def _cvode(compiled, fill, pace, state, lr, t0, t_eval, rtol, atol, progress):
    """Integrate with CVODE (BDF, matrix-free GMRES), recording ``t_eval``.

    ``fill(t, y, out)`` writes the right-hand side into ``out`` (:func:`.flow._rhs_into`),
    ``pace`` is the notice of a slow run.  CVODE integrates the packed state, with G's
    entries above its diagonal left out (:mod:`.packing`); the records are full states.
    CVODE evaluates f at trial vectors too (Newton iterates, GMRES differences), so the
    checks are on its solution: a terminal root where the largest entry reaches
    ``NORM_LIMIT`` (a runaway), and non-finite records; a non-finite f at a state within
    that limit stops the run at once.  The plateau exits are CVODE's own roots of
    ε(y) − level (direction: falling).  Returns ``(ys, nfev, learning_times)``; ``nfev``
    counts every call of f, the GMRES products included (CVODE's own count leaves those
    out).
    """
    y0 = state.to_vector()
    error = _error_function(compiled, state)
    levels = plateau_levels(state.spectrum, state.model.K)
    t1 = float(t_eval[-1])
    if t1 <= t0:                                     # the initial state is every record
        return np.tile(y0, (len(t_eval), 1)), 0, _first_times(levels, error(y0), t0,
                                                                [np.nan] * len(levels))
    from sksundae.cvode import CVODE     # imported by the runs that use it only

    calls, reached = [0], [t0]
    clock, due = time.perf_counter, pace.due
    P, off = state.Y.shape[0], state.Y.size
    # CVODE's y is a read-only view of its memory: unpacked into a work array of ours
    y_full, dy_full = np.empty(y0.size), np.empty(y0.size)

    def rhs(t, y, yp):
        calls[0] += 1
        reached[0] = t
        if clock() >= due:
            pace(t)
        unpack(y, y_full, off, P)
        fill(t, y_full, dy_full)
        pack(dy_full, yp, off, P)
        if not np.isfinite(yp.dot(yp)) and np.max(np.abs(y)) <= NORM_LIMIT:
            raise _NotFinite(t)

    found = np.zeros(len(levels), dtype=bool)

    def events(t, y, out):
        out[0] = NORM_LIMIT - max(y.max(), -y.min())
        unpack(y, y_full, off, P)
        # a level is wanted once: after its first crossing its root function is a
        # constant, since a slow crossing leaves ε − level zero to rounding at the root and
        # just after it, which CVODE refuses ("root found at and very near t"): at
        # dε/dt ≈ −10⁻⁶, 4,096 tracked modes, K = 3 (benchmarks/bench_theory.py)
        out[1:] = np.where(found, 1.0, error(y_full) - levels)

    events.terminal = [True] + [False] * len(levels)
    events.direction = [-1] * (1 + len(levels))
    # steps below the spacing of floats would leave t unchanged (SUNDIALS warns on stderr
    # and goes on): CVODE's step is floored at four spacings of t0, and of t1 for runs
    # that reach far times, so that it fails instead, and the error says why
    min_step = 4.0 * float(np.spacing(max(abs(t0), abs(t1) if abs(t1) >= FAR_TIME else 0.0)))
    y0_packed = np.empty(packed_size(y0.size, P))
    pack(y0, y0_packed, off, P)
    if np.ndim(atol):                      # one tolerance per variable (the default's)
        full_atol, atol = np.asarray(atol, dtype=float), np.empty(y0_packed.size)
        pack(full_atol, atol, off, P)
    options = dict(method="BDF", linsolver="gmres", krylov_dim=KRYLOV_DIM, rtol=rtol,
                   atol=atol, max_num_steps=MAX_STEPS, min_step=min_step,
                   max_step=max(t1 - t0, min_step), eventsfn=events, num_events=1 + len(levels))
    ys = np.empty((len(t_eval), y0.size))
    bar = progress_bar(total=t1 - t0, desc="integrating", disable=not progress, unit="t")
    # scikit-sundae prints SUNDIALS' error messages on stdout; they go into the exception.
    # f at far trial vectors may overflow, which the checks above judge
    try:
        with bar, one_blas_thread(), _stdout_of_this_thread() as said, \
                np.errstate(over="ignore", invalid="ignore"):
            solver = CVODE(rhs, **options)
            solver.init_step(t0, y0_packed)

            def advance(t):
                """CVODE's step towards t; it stops at each root, recorded in ``found``."""
                result = solver.step(t)
                if result.success and result.status == _AT_EVENT:
                    found[result.i_events[-1][1:] != 0] = True
                return result

            for i, t in enumerate(t_eval):
                if t == t0:
                    ys[i] = y0
                    continue
                result = advance(t)
                while (result.success and result.status == _AT_EVENT and result.t < t
                       and not result.i_events[-1][0]):
                    result = advance(t)
                if not result.success or (result.i_events is not None
                                          and result.i_events[-1][0]):
                    break
                if not np.all(np.isfinite(result.y)):
                    raise _NotFinite(result.t)
                unpack(result.y, ys[i], off, P)
                bar.update(t - t0 - bar.n)
    except _NotFinite as stop:
        raise DivergenceError("the ODE", stop.t, lr, detail="first non-finite right-hand side",
                              cause=_runaway_cause(lr, stop.t)) from None
    if result.i_events is not None and result.i_events[-1][0]:
        t_fail = float(result.t)
        raise DivergenceError("the ODE", t_fail, lr, detail=f"an overlap exceeded {NORM_LIMIT:g}",
                              cause=_runaway_cause(lr, t_fail))
    if not result.success:
        t_fail = float(reached[0])
        message = " ".join([result.message] + said.getvalue().split())
        cause = _failure_cause(lr, t_fail, message)
        if "min step" in message and abs(t_fail) < FAR_TIME < abs(t1):
            cause = (f"CVODE's steps are floored at {min_step:.2g} (four float spacings at "
                     f"t = {t1:g}) and this flow needs smaller ones near t = {t_fail:.3g}: "
                     "integrate up to a nearer time first, or use method='LSODA'")
        raise DivergenceError("the ODE", t_fail, lr, detail=f"the solver stopped: {message}",
                              cause=cause)
    crossings = np.full(len(levels), np.nan)
    if result.i_events is not None:
        for when, row in zip(np.atleast_1d(result.t_events), np.atleast_2d(result.i_events)):
            crossed = row[1:] != 0
            crossings[crossed] = np.fmin(crossings[crossed], when)
    return ys, calls[0], _first_times(levels, error(y0), t0, crossings)

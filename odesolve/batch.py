"""Many initial states in one call: the stacked system of a batch.

B states of one model family whose state vectors have one size (same K and number of
tracked modes: seeds, initial scales, spectra of the same size) are stacked into one
system ``y = [y_1, …, y_B]``: its right-hand side is one compiled call (``rhs_batch`` of
the generated module), and one solver run integrates all of them, so the Python work of
every step is shared by the batch.

* ``method="auto"`` / ``"LSODA"``: LSODA through :func:`scipy.integrate.odeint` with a
  banded Jacobian.  The members do not interact, so the Jacobian is block diagonal with
  blocks of one state's size n_y; as a band of half-width n_y − 1 it costs LSODA 2 n_y − 1
  stacked calls to estimate, instead of B·n_y for a dense one.
* Any other :func:`scipy.integrate.solve_ivp` method runs on the stack as it is.
* Tolerances are divided by √B: the solvers control the root-mean-square of the error
  estimate over all components, so one member's own error could otherwise reach √B
  times the tolerance.
* Learning times (plateau exits) are located per member by root finding on the cubic
  Hermite interpolant of its state between the two records around the crossing (state
  and derivative at the records); :func:`odesolve.integrate` locates them by restarting
  the solver instead.  Both agree to ~1e-4 relative on the default grid (tested).

States of other sizes form their own stacks; ``method="euler"`` and single states are
integrated one by one by :func:`odesolve.integrate`.

>>> from odesolve import Autoencoder, State, spiked_covariance
>>> spec = spiked_covariance(D=500, spikes=[2.0, 1.0], bulk=0.05)
>>> model = Autoencoder(K=2, activation="erf")
>>> runs = integrate_batch([State.random(model, spec, seed=s) for s in range(3)], 1.0, 50.0)
>>> [round(float(r.error[-1]), 3) for r in runs]
[0.048, 0.047, 0.048]
"""
from __future__ import annotations

import time

import numpy as np
from scipy.integrate import odeint, solve_ivp

from ._threads import one_blas_thread
from .codegen import compile_model
from .errors import DivergenceError
from .integrator import (NORM_LIMIT, _add_fluctuations, _check_start, _checked,
                         _error_function, _first_times, _runaway_cause, _trajectory,
                         _first_crossings, _hermite_root, integrate, rhs_function)
from .protocols import noise_floor
from .state import State
from .trajectory import Trajectory, plateau_levels

__all__ = ["integrate_batch"]


def integrate_batch(states, lr: float, t_span, *, method: str = "auto", t_eval=None,
                    n_points: int = 200, rtol: float = 1e-7, atol: float | None = None,
                    dt: float | None = None, bulk: str = "limit", protocol=None,
                    finite_size: bool = False) -> list[Trajectory]:
    """Integrate many initial states of one model family, stacked into one system.

    Parameters
    ----------
    states : sequence of State
        Initial states of one family (activation, tied, rule, bias); they may differ in
        weights (seeds, initial scales), spectra and K.  States with equal state-vector
        sizes are integrated together.
    lr, t_span, method, t_eval, n_points, rtol, atol, dt, bulk, protocol, finite_size
        As for :func:`odesolve.integrate`, shared by every state (``atol`` default: each
        state's own).

    Returns
    -------
    list of Trajectory
        One per state, in order; ``nfev`` counts the stacked right-hand-side calls and
        ``wall_time`` is the stack's time divided by its size.

    Raises
    ------
    TypeError, ValueError
        For an empty batch, a non-State entry, states of several families, or the bad
        arguments :func:`odesolve.integrate` refuses (before any work).
    DivergenceError
        If a state runs away (the message says which member).

    Notes
    -----
    Derived here: the members are uncoupled, see the module doc for the solver set-up.
    """
    states = list(states)
    if not states:
        raise ValueError("integrate_batch needs at least one state")
    for i, st in enumerate(states):
        if not isinstance(st, State):
            raise TypeError(f"batch entry {i} must be an odesolve State, got {type(st).__name__}")
    if len({_family(st) for st in states}) > 1:
        raise ValueError("integrate_batch needs states of one model family (activation, tied, "
                         "rule, bias); integrate the others in another call")
    options = dict(method=method, t_eval=t_eval, n_points=n_points, rtol=rtol, atol=atol,
                   dt=dt, bulk=bulk, protocol=protocol, finite_size=finite_size)
    checked = [_checked(st, lr, t_span, **options) for st in states]
    out: list = [None] * len(states)
    stacks: dict = {}
    for i, st in enumerate(states):
        stacks.setdefault(st.to_vector().size, []).append(i)
    for members in stacks.values():
        if method == "euler" or len(members) == 1:
            for i in members:
                out[i] = _alone(states[i], i, lr, t_span, options)
            continue
        trajs = _stacked([states[i] for i in members], [checked[i] for i in members], members,
                         method, bulk, finite_size)
        for i, traj in zip(members, trajs):
            out[i] = traj
    return out


def _family(state):
    model = state.model
    return model.activation.key, model.tied, model.rule, model.bias


def _alone(state, index, lr, t_span, options):
    try:
        return integrate(state, lr, t_span, **options)
    except DivergenceError as err:
        raise _member_error(index, err) from None


def _member_error(index, err):
    """``err`` of one state, naming its place in the batch."""
    return DivergenceError(f"the ODE of batch state {index}", err.time, err.lr,
                           detail=err.detail, cause=err.cause)


def _stacked(members, checked, indices, method, bulk, finite_size):
    lr, t0, t1, t_eval, rtol, _, protocol = checked[0]
    model = members[0].model
    compiled = compile_model(model)
    B, K, nb = len(members), model.K, compiled.blocks
    singles = [rhs_function(compiled, st, lr, bulk, protocol, finite_size) for st in members]
    for index, st, f in zip(indices, members, singles):
        try:
            _check_start(f, st, lr, t0)
        except DivergenceError as err:
            raise _member_error(index, err) from None
    y0 = np.concatenate([st.to_vector() for st in members])
    size = y0.size // B
    scale = 1.0 / np.sqrt(B)
    atol = np.concatenate([np.broadcast_to(c[5], (size,)) for c in checked]) * scale
    s = np.ascontiguousarray([st.spectrum.s for st in members], dtype=float)
    s_bulk = np.array([st.spectrum.bulk / st.spectrum.D for st in members])
    s_dyn = s_bulk if bulk == "finite" else np.zeros(B)
    rates, decay = protocol.flow_multipliers(model)
    floors = np.array([noise_floor(model, st.spectrum, protocol) if finite_size else 0.0
                       for st in members])
    rhs_batch, schedule = compiled.module.rhs_batch, protocol.schedule
    nfev = [0]

    def f(t, y):
        nfev[0] += 1
        if not np.all(np.abs(y) <= NORM_LIMIT):          # also NaN
            raise _MemberRunaway(t, int(np.argmax(~(np.abs(y) <= NORM_LIMIT))) // size)
        eta = lr / protocol.batch_size if schedule.is_constant else protocol.lr_at(lr, t)
        dy = np.empty_like(y)
        rhs_batch(y, s, s_bulk, s_dyn, eta, rates, decay, floors * eta**2, K, nb, dy)
        return dy

    start = time.perf_counter()
    try:
        with one_blas_thread():
            if method in ("auto", "LSODA"):
                method = "LSODA"
                grid = np.concatenate([[t0], t_eval]) if t_eval[0] > t0 else t_eval
                ys, info = odeint(lambda y, t: f(t, y), y0, grid, rtol=rtol * scale, atol=atol,
                                  ml=size - 1, mu=size - 1, mxstep=10**8, full_output=True)
                if info["message"] != "Integration successful.":
                    t_fail = float(info["tcur"][-1]) if len(info["tcur"]) else t0
                    raise DivergenceError("the ODE of a batch", t_fail, lr,
                                          detail=f"the solver stopped: {info['message']}",
                                          cause=_runaway_cause(lr, t_fail))
                ys = ys[1:] if t_eval[0] > t0 else ys
            else:
                sol = solve_ivp(f, (t0, t1), y0, method=method, t_eval=t_eval,
                                rtol=rtol * scale, atol=atol)
                if sol.status != 0:
                    raise DivergenceError("the ODE of a batch", float(sol.t[-1]), lr,
                                          detail=f"the solver stopped: {sol.message}",
                                          cause=_runaway_cause(lr, float(sol.t[-1])))
                ys = sol.y.T
    except _MemberRunaway as stop:
        raise DivergenceError(f"the ODE of batch state {indices[stop.member]}", stop.t, lr,
                              detail="the state ran away",
                              cause=_runaway_cause(lr, stop.t)) from None
    wall = (time.perf_counter() - start) / B
    out = []
    for b, (st, single) in enumerate(zip(members, singles)):
        ys_b = ys[:, b * size:(b + 1) * size]
        traj = _trajectory(compiled, st, ys_b, t_eval, lr, method, bulk, nfev[0], wall)
        traj.learning_times = _learning_times(compiled, st, single, ys_b, t_eval, t0, traj.error)
        traj.protocol = protocol
        traj.finite_size = bool(finite_size)
        if finite_size:
            _add_fluctuations(traj, compiled, single, st, t0)
        out.append(traj)
    return out


class _MemberRunaway(Exception):
    """Raised inside the stacked right-hand side when a member blows up."""

    def __init__(self, t, member):
        super().__init__(t, member)
        self.t, self.member = float(t), member


def _learning_times(compiled, state, f, ys, t_eval, t0, errors):
    """First downward crossings of the plateau levels, by root finding on the cubic
    Hermite interpolant of the state between the records around each crossing."""
    error = _error_function(compiled, state)
    levels = plateau_levels(state.spectrum, state.model.K)
    crossings = _first_crossings(errors, levels, t_eval,
                                 lambda i, level: _hermite_root(error, f, ys, t_eval, i, level))
    return _first_times(levels, error(state.to_vector()), t0, crossings)

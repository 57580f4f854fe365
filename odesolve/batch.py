"""Many initial states in one call.

:func:`integrate_batch` integrates initial states of one model family (seeds, initial
scales, spectra, widths) with the arguments of :func:`odesolve.integrate`, checking every
state and argument before any work, and names the member that diverges.

Each member runs on the single-curve engine.  Stacking the members into one system (one
compiled right-hand side for all, one solver run) was built and measured, and lost once
the single curve's LSODA callback became one compiled call: K = 3 erf curves to t = 10³,
100 states stacked 2.47 s against a loop's 2.12 s, 1,000 states 39.3 s against 28.3 s
(benchmarks/bench_engine.py), and explicit RK45 0.45× at 50 states, because the stacked
solver controls the root-mean-square error of all members (tolerances / √B, twice the
steps) and LSODA's banded Jacobian of the stack costs B times a member's band.

>>> from odesolve import Autoencoder, State, spiked_covariance
>>> spec = spiked_covariance(D=500, spikes=[2.0, 1.0], bulk=0.05)
>>> model = Autoencoder(K=2, activation="erf")
>>> runs = integrate_batch([State.random(model, spec, seed=s) for s in range(3)], 1.0, 50.0)
>>> [round(float(r.error[-1]), 3) for r in runs]
[0.048, 0.047, 0.048]
"""
from __future__ import annotations

from .errors import DivergenceError
from .integrator.solve import _checked, integrate
from .state import State
from .trajectory import Trajectory

__all__ = ["integrate_batch"]


def integrate_batch(states, lr: float, t_span, *, method: str = "auto", t_eval=None,
                    n_points: int = 200, rtol: float = 1e-7, atol: float | None = None,
                    dt: float | None = None, bulk: str = "limit", protocol=None,
                    finite_size: bool = False) -> list[Trajectory]:
    """Integrate many initial states of one model family.

    Parameters
    ----------
    states : sequence of State
        Initial states of one family (activation, tied, rule, bias); they may differ in
        weights (seeds, initial scales), spectra and K.
    lr, t_span, method, t_eval, n_points, rtol, atol, dt, bulk, protocol, finite_size
        As for :func:`odesolve.integrate`, shared by every state (``atol`` default: each
        state's own).

    Returns
    -------
    list of Trajectory
        One per state, in order, each equal to ``integrate(state, ...)``.

    Raises
    ------
    TypeError, ValueError
        For an empty batch, a non-State entry, states of several families, or the bad
        arguments :func:`odesolve.integrate` refuses for any state (before any work).
    DivergenceError
        If a state runs away (the message says which member).

    Notes
    -----
    The module doc gives the measurements behind integrating the members one by one.
    """
    if isinstance(states, State):
        raise TypeError("integrate_batch takes a sequence of States; for one state, use "
                        "integrate or pass [state]")
    try:
        states = list(states)
    except TypeError:
        raise TypeError(f"states must be a sequence of odesolve States, got "
                        f"{type(states).__name__}") from None
    if not states:
        raise ValueError("integrate_batch needs at least one state")
    for i, st in enumerate(states):
        if not isinstance(st, State):
            raise TypeError(f"batch entry {i} must be an odesolve State, got {type(st).__name__}")
    if len({st.model.family for st in states}) > 1:
        raise ValueError("integrate_batch needs states of one model family (activation, tied, "
                         "rule, bias); integrate the others in another call")
    options = dict(method=method, t_eval=t_eval, n_points=n_points, rtol=rtol, atol=atol,
                   dt=dt, bulk=bulk, protocol=protocol, finite_size=finite_size)
    for st in states:
        _checked(st, lr, t_span, **options)
    out = []
    for i, st in enumerate(states):
        try:
            out.append(integrate(st, lr, t_span, **options))
        except DivergenceError as err:
            raise DivergenceError(f"the ODE of batch state {i}", err.time, err.lr,
                                  detail=err.detail, cause=err.cause) from None
    return out

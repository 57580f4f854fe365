"""Stage 4 of the pipeline: integrating the equations, and the trajectory they produce.

:func:`integrate` follows :func:`scipy.integrate.solve_ivp` (``t_span``, ``method``,
``t_eval``, ``rtol``/``atol``) and returns a :class:`~odesolve.trajectory.Trajectory` of
every order parameter and of the generalisation error on a log-spaced grid
(:func:`odesolve.batch.integrate_batch` integrates many initial states in one call).

``method="LSODA"`` (the default for small states) runs ODEPACK's LSODA through
:func:`scipy.integrate.odeint`, whose stepping loop is compiled: the algorithm of
``solve_ivp(method="LSODA")`` without its Python work per step (several times faster on
small states, benchmarks/bench_engine.py).  ``method="CVODE"`` (the default for larger
states) runs SUNDIALS' BDF with matrix-free GMRES (:mod:`.cvode`): implicit, so the flow's
stiffness does not hold it to small steps, and without a Jacobian, so it takes any size
(docs/theory.md §10).  Every other :func:`scipy.integrate.solve_ivp` method stays
available by name, and ``method="RKC"`` runs the stabilised explicit
Runge–Kutta–Chebyshev method of :mod:`.rkc`.

Two bulk treatments (``bulk=``): ``"limit"`` is the strict D → ∞ theory (the bulk modes'
eigenvalue ``σ²/D → 0`` is dropped from their dynamics, so e.g. the bulk encoder Gram
matrix is frozen); ``"finite"`` keeps ``σ²/D`` in the bulk flow, which is then *exactly*
the all-modes ODE at that D for a spiked covariance (all bulk modes share one flow).
A :class:`~odesolve.spec.spectra.Spectrum` with every mode tracked has no bulk and the choice is moot.

The modules, in the order a call passes through them:

* :mod:`.solve`: :func:`integrate` (argument checks, the method registry
  :data:`METHODS`, LSODA and the :func:`scipy.integrate.solve_ivp` methods, the
  trajectory);
* :mod:`.flow`: the compiled flow's right-hand side for one state, model and protocol
  (:func:`rhs_function`), the checks of every solver call, the error of a state;
* :mod:`.events`: plateau exits, located to the solver's tolerance;
* :mod:`.cvode`: SUNDIALS' CVODE (BDF, matrix-free GMRES) through scikit-sundae;
* :mod:`.rkc`: the Runge–Kutta–Chebyshev solver (a :class:`scipy.integrate.OdeSolver`);
* :mod:`.euler`: the fixed-step Euler scheme (the published reference scheme);
* :mod:`.grid`: the one time grid of theory and simulation, default tolerances.

>>> from odesolve import Autoencoder, State, spiked_covariance
>>> spec = spiked_covariance(D=500, spikes=[2.0, 1.0], bulk=0.05)
>>> state = State.random(Autoencoder(K=2, activation="linear"), spec, scale=0.1, seed=0)
>>> traj = integrate(state, lr=1.0, t_span=200.0)
>>> round(float(traj.error[-1]), 4), round(spec.pca_error(2), 4)
(0.025, 0.025)
"""
from .flow import NORM_LIMIT, rhs_function
from .grid import default_atol, time_grid
from .solve import AUTO_LSODA_MAX_SIZE, BULK_MODES, METHODS, integrate

__all__ = ["integrate", "METHODS", "BULK_MODES", "AUTO_LSODA_MAX_SIZE", "NORM_LIMIT",
           "rhs_function", "time_grid", "default_atol"]

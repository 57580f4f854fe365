"""Stage 5 of the pipeline: the trajectory of the order parameters, and the error.

:class:`Trajectory` is what :func:`odesolve.integrate` returns; :func:`generalisation_error`
is the one error formula of theory and simulator: ``ε = tr Ω/(2D) + E[L(λ, u, T0)]``
with the field-space loss of :mod:`odesolve.derive.equations`; the average is derived
symbolically and compiled with the model's equations.  It is exact at any D for any
weights (the inputs are Gaussian).

>>> import numpy as np
>>> from odesolve import Autoencoder, OrderParameters, spiked_covariance
>>> spec = spiked_covariance(D=100, spikes=[1.0], bulk=0.5)
>>> ops = OrderParameters.from_weights(spec, np.zeros((1, 100)), np.zeros((1, 100)))
>>> generalisation_error(Autoencoder(K=1, activation="erf"), ops) == spec.initial_error
True
"""
from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .codegen import compile_model
from .spec.model import Autoencoder
from .spec.spectra import Spectrum
from .state import OrderParameters, State

__all__ = ["Trajectory", "StateRecords", "generalisation_error", "plateau_levels",
           "LEVEL_OFFSET"]


class StateRecords(Sequence):
    """The :class:`State` at each record of a trajectory, made when first read.

    A sequence (index, slice, iterate, ``len``) over the rows of the flat state vectors
    ``ys`` (shape (n, size)); record ``i`` is ``state.with_vector(ys[i])``.  A warm K = 2
    curve spent a tenth of its time making 200 State objects nobody read.
    """

    def __init__(self, state: State, ys: np.ndarray):
        self._state, self._ys, self._made = state, ys, {}

    def __len__(self) -> int:
        return len(self._ys)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        j = operator.index(i)
        j += len(self) if j < 0 else 0
        if not 0 <= j < len(self):
            raise IndexError(f"record {i} of a trajectory of {len(self)} records")
        if j not in self._made:
            self._made[j] = self._state.with_vector(self._ys[j])
        return self._made[j]


@dataclass
class Trajectory:
    """Solution of :func:`integrate`.

    Attributes
    ----------
    t : ndarray, shape (n,)
        Times (samples seen / D).
    error : ndarray, shape (n,)
        Generalisation error ε(t).
    Q, R, T, T0 : ndarray, shape (n, K, K)
        Order parameters.
    m : ndarray, shape (n, K)
        Encoder biases.
    A, B : ndarray, shape (n, K, n_tracked)
        Overlaps ``w_k·e_τ`` and ``v_k·e_τ/√D`` with the tracked modes.
    learning_times : ndarray, shape (min(K, n_tracked),)
        Exit from the k-th plateau: the first time t ≥ t0 at which the error is at or
        below the level between the PCA errors of rank k−1 and k (:func:`plateau_levels`);
        ``t0`` when it already is at the start, NaN if never reached.  One definition for
        every method: LSODA locates the crossing by Newton steps on short integrations
        inside a bracket of it (docs/theory.md § 10), the other adaptive solvers with
        integrator events (a root of their dense output), Euler to within one step.
    model, spectrum, lr, method, bulk : the problem that was solved.
    mode : str
        ``"all-modes"`` when every mode is tracked, else ``"closure-limit"`` or
        ``"closure-finite"`` (see the module doc).
    nfev : int
        Number of right-hand-side evaluations.
    protocol : odesolve.protocols.Protocol
        Schedule, rates, decay and batch size of the run (``lr`` is the base rate).
    finite_size : bool
        Whether the leading finite-D correction was included (``integrate(finite_size=True)``):
        ``error`` is then the mean error of SGD at the spectrum's D to O(1/D), while the
        order parameters stay those of the mean flow.
    fluctuations : odesolve.fluctuations.Fluctuations or None
        With ``finite_size``: covariance and mean shift of the state and the error
        correction (docs/theory.md §9).
    wall_time : float
        Seconds spent integrating (after compilation).
    states : StateRecords
        The :class:`State` at each record (``states[i]``, also :meth:`state`), made
        when read.

    References
    ----------
    The order parameters are those of Refinetti & Goldt, ICML 2022 (arXiv 2201.02115) in
    the spec's scalings (docs/theory.md).
    """

    t: np.ndarray
    error: np.ndarray
    Q: np.ndarray
    R: np.ndarray
    T: np.ndarray
    T0: np.ndarray
    m: np.ndarray
    A: np.ndarray
    B: np.ndarray
    learning_times: np.ndarray
    model: Autoencoder
    spectrum: Spectrum
    lr: float
    method: str
    bulk: str
    mode: str
    nfev: int = 0
    wall_time: float = 0.0
    states: Sequence = field(default_factory=list, repr=False)
    protocol: object = None
    finite_size: bool = False
    fluctuations: object = None

    def state(self, i: int = -1) -> State:
        """The :class:`State` at record ``i`` (to restart or to compare)."""
        return self.states[i]

    def order_parameters(self, i: int = -1) -> OrderParameters:
        """The :class:`OrderParameters` at record ``i``."""
        return self.states[i].order_parameters()


def generalisation_error(model: Autoencoder, order_parameters: OrderParameters) -> float:
    """Population (generalisation) error ``ε = E‖x − x̂‖²/(2D)`` at given order parameters.

    ``ε = tr Ω/(2D) − Σ_k E[u_k g(λ_k)] + ½ Σ_kl T0_kl E[g(λ_k) g(λ_l)]`` with the
    Gaussian averages of the compiled family (:func:`odesolve.compile_model`).

    Parameters
    ----------
    model : Autoencoder
    order_parameters : OrderParameters
        ``Q``, ``R``, ``T0`` of shape (K, K), ``m`` (K,) and ``trace = tr Ω/D``.

    Returns
    -------
    float
        ε, in units of the input's squared norm per dimension (``tr Ω/(2D)`` at zero
        weights).

    Raises
    ------
    ValueError
        If ``Q``, ``R`` or ``T0`` is not K × K.

    References
    ----------
    Refinetti & Goldt, ICML 2022 (arXiv 2201.02115), the population error in the spec's
    scalings; derived here, see docs/theory.md §1.

    Examples
    --------
    >>> import numpy as np
    >>> from odesolve import Autoencoder, OrderParameters
    >>> zero = np.zeros((1, 1))
    >>> ops = OrderParameters(Q=zero, R=zero, T=zero, T0=zero, m=np.zeros(1), trace=2.0)
    >>> generalisation_error(Autoencoder(K=1, activation="erf"), ops)
    1.0
    """
    ops = order_parameters
    K = model.K
    for name in ("Q", "R", "T0"):
        shape = np.shape(getattr(ops, name))
        if shape != (K, K):
            raise ValueError(f"{name} must have shape ({K}, {K}), got {shape}")
    excess = compile_model(model).module.error_excess(
        np.ascontiguousarray(ops.Q, dtype=float), np.ascontiguousarray(ops.R, dtype=float),
        np.ascontiguousarray(ops.T0, dtype=float), np.ascontiguousarray(ops.m, dtype=float))
    return float(ops.trace / 2 + excess)


#: Plateau exits are crossings of the mid-level between PCA errors, lowered by this
#: fraction of the gap: some fixed points sit exactly at the mid-level (one ReLU unit
#: on one spike reconstructs half of it), where an event on the exact level would see
#: rounding noise change sign.
LEVEL_OFFSET = 1e-4


def plateau_levels(spec: Spectrum, K: int) -> np.ndarray:
    """Mid-levels between the PCA errors of ranks k−1 and k, k = 1..min(K, n_tracked)."""
    errors = spec.pca_errors(min(K, spec.n_tracked))
    above, below = errors[:-1], errors[1:]
    return 0.5 * (above + below) - LEVEL_OFFSET * (above - below)



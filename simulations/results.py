"""Results of the simulator: recorded order parameters, errors and weights."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from odesolve.spec.model import Autoencoder
from odesolve.spec.spectra import Spectrum
from odesolve.state import OrderParameters, State
from odesolve.trajectory import generalisation_error

# --------------------------------------------------------------------------- #
# Results


# --------------------------------------------------------------------------- #
@dataclass(eq=False)
class SimulationResult:
    """One online-SGD run, recorded at the times ``t``, in the theory's vocabulary.

    Attributes
    ----------
    t : ndarray, shape (n,)
        Recording times (samples seen / D); ``steps = t·D``.
    steps : ndarray of int, shape (n,)
    test_error : ndarray, shape (n,)
        Monte-Carlo error ``mean ‖x − x̂‖²/(2D)`` on the held-out test set.
    Q, R, T, T0 : ndarray, shape (n, K, K)
        Order parameters (:class:`odesolve.state.OrderParameters`, exact for the weights).
    m : ndarray, shape (n, K)
        Encoder biases.
    A, B : ndarray, shape (n, K, n_tracked)
        Overlaps ``w_k·e_τ`` and ``v_k·e_τ/√D`` with the tracked modes of ``spectrum``.
    bulk_gram : ndarray, shape (n, P, P)
        Gram matrix of the weights' bulk components in the layout of
        :class:`odesolve.state.State` (P = 2K untied, K tied): with A and B it makes the
        theory's state at every record.
    W0, V0, m0, W, V : ndarray
        Initial and final weights in the eigenbasis of ``spectrum`` (V = c·W if tied).
    model, spectrum, lr, seed, tied_normalisation, n_test
        The run.
    passes : float or None
        For training on a data set, the number of passes over its training samples
        (above 1, samples were reused); None for Gaussian inputs.
    wall_time : float
        Seconds spent simulating (after the activation's kernel is compiled).
    protocol : odesolve.protocols.Protocol
        Schedule, rates, decay and batch size of the run (``lr`` is the base rate).
    """

    t: np.ndarray
    steps: np.ndarray
    test_error: np.ndarray
    Q: np.ndarray
    R: np.ndarray
    T: np.ndarray
    T0: np.ndarray
    m: np.ndarray
    A: np.ndarray
    B: np.ndarray
    bulk_gram: np.ndarray
    W0: np.ndarray
    V0: np.ndarray
    m0: np.ndarray
    W: np.ndarray
    V: np.ndarray
    model: Autoencoder
    spectrum: Spectrum
    lr: float
    seed: int
    tied_normalisation: str = "sqrtD"
    n_test: int = 0
    passes: float | None = None
    wall_time: float = 0.0
    protocol: object = None

    def order_parameters(self, i: int = -1) -> OrderParameters:
        """The :class:`~odesolve.state.OrderParameters` at record ``i``."""
        return OrderParameters(Q=self.Q[i], R=self.R[i], T=self.T[i], T0=self.T0[i],
                               m=self.m[i].copy(), trace=self.spectrum.trace / self.spectrum.D)

    def state(self, i: int = -1) -> State:
        """The theory's :class:`~odesolve.state.State` at record ``i``, exact for the weights.

        ``odesolve.integrate(result.state(i), lr, ...)`` starts the ODE from it.  Not
        defined for ``tied_normalisation="unit"``, which has no O(1) equations.
        """
        if self.tied_normalisation != "sqrtD":
            raise ValueError("the theory's state needs tied weights v = √D w; this run used "
                             f"tied_normalisation={self.tied_normalisation!r}")
        Y = self.A[i] if self.model.tied else np.vstack([self.A[i], self.B[i]])
        return State(self.model, self.spectrum, Y.copy(), self.bulk_gram[i].copy(),
                     self.m[i].copy())

    def theory_error(self) -> np.ndarray:
        """Exact population error of the simulated weights at every record.

        :func:`odesolve.trajectory.generalisation_error` of the recorded order parameters: the
        theory's error formula evaluated on the simulation (no Monte-Carlo noise).
        """
        return np.array([generalisation_error(self.model, self.order_parameters(i))
                         for i in range(len(self.t))])


@dataclass(eq=False)
class FiniteTrainingResult:
    """Repeated passes over a finite training set (:func:`train_finite`).

    Attributes
    ----------
    epoch : ndarray of int, shape (epochs + 1,)
        0 (the initial weights), 1, …, epochs.
    train_error, test_error : ndarray, shape (epochs + 1,)
        Mean ``‖x − x̂‖²/(2D)`` over the training set and over the held-out test set,
        after each epoch.
    W, V, m : ndarray
        Final weights, in the basis of the data.
    model, lr, batch_size, seed, n_train, n_test, tied_normalisation
        The run.
    """

    epoch: np.ndarray
    train_error: np.ndarray
    test_error: np.ndarray
    W: np.ndarray
    V: np.ndarray
    m: np.ndarray
    model: Autoencoder
    lr: float
    batch_size: int
    seed: int
    n_train: int
    n_test: int
    tied_normalisation: str = "sqrtD"
    wall_time: float = field(default=0.0)

"""Initial conditions and order parameters, shared by the theory and the simulator.

All weights are written in the eigenbasis of the data: column τ of ``W`` is ``w·e_τ``,
in the order the :class:`~odesolve.spec.spectra.Spectrum` lists its eigenvalues (tracked modes,
then the bulk).  The theory works with

* ``A[k, τ] = w_k·e_τ`` and ``B[k, τ] = v_k·e_τ / √D`` for every tracked mode τ,
* the Gram matrix of the same overlaps summed over the bulk modes (they share one
  eigenvalue, hence one linear flow, so their Gram matrix closes exactly),
* the encoder biases ``m`` (zeros when the model has none),

from which the order parameters of the spec follow, e.g.
``Q = A diag(s) Aᵀ + s_bulk G_aa`` and ``T0 = B Bᵀ + G_bb``.
With tied weights ``v_k = √D w_k``, so ``B = A``.

>>> from odesolve.spec.spectra import spiked_covariance
>>> from odesolve.spec.model import Autoencoder
>>> spec = spiked_covariance(D=200, spikes=[2.0, 1.0], bulk=0.1)
>>> model = Autoencoder(K=2, activation="erf")
>>> W, V, m = initial_weights(model, spec.D, scale=0.1, rng=np.random.default_rng(0))
>>> state = State.from_weights(model, spec, W, V, m)
>>> exact = OrderParameters.from_weights(spec, W, V, m)
>>> ops = state.order_parameters()
>>> all(np.allclose(getattr(ops, k), getattr(exact, k)) for k in "QRT")
True
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ._checks import (check_cost, check_integer, check_non_negative, check_real, check_rng,
                      check_seed)
from .spec.model import Autoencoder
from .spec.spectra import Spectrum

__all__ = ["initial_weights", "OrderParameters", "State", "order_parameters_of"]


def initial_weights(model: Autoencoder, D: int, scale: float, rng: np.random.Generator,
                    bias: float = 0.0):
    """Draw initial weights, the one convention shared by theory and simulator.

    Untied: ``W, V`` i.i.d. ``N(0, scale²)``.  Tied: ``V`` i.i.d. ``N(0, scale²)`` and
    ``W = V / √D`` (so that ``v_k = √D w_k``).  ``W`` is drawn first, then ``V``, so a
    given seed gives the same untied decoder whatever K-independent option is chosen.

    Returns
    -------
    W, V : ndarray, shape (K, D)
        Encoder and decoder in the eigenbasis of the data.
    m : ndarray, shape (K,)
        Encoder biases (all equal to ``bias``; zeros for a model without bias).
    """
    if not isinstance(model, Autoencoder):
        raise TypeError(f"model must be an odesolve Autoencoder, got {type(model).__name__}")
    D = check_integer("D", D, minimum=2)
    model.check_dimension(D)
    scale = check_non_negative("initial weight scale", scale)
    bias = check_real("initial bias", bias)
    check_rng(rng)
    check_cost(f"initial weights of K = {model.K} units in D = {D}", nbytes=8.0 * 3 * model.K * D)
    W = rng.normal(0.0, scale, (model.K, D))
    V = rng.normal(0.0, scale, (model.K, D))
    if model.tied:
        W = V / np.sqrt(D)
    m = np.full(model.K, float(bias) if model.has_bias else 0.0)
    return W, V, m


@dataclass(frozen=True)
class OrderParameters:
    """The K×K order parameters of the spec (and the biases ``m``).

    ``Q = WΩWᵀ/D``, ``R = VΩWᵀ/D^{3/2}``, ``T = VΩVᵀ/D²``, ``T0 = VVᵀ/D``.
    ``trace`` is ``tr Ω / D``, needed for the error.
    """

    Q: np.ndarray
    R: np.ndarray
    T: np.ndarray
    T0: np.ndarray
    m: np.ndarray
    trace: float

    @classmethod
    def from_weights(cls, spectrum: Spectrum, W, V, m=None) -> "OrderParameters":
        """Exact order parameters of finite-D weights written in the eigenbasis."""
        W, V = _check_weights(spectrum, W, V)
        D = spectrum.D
        rho = spectrum.all_eigenvalues
        Wr, Vr = W * rho, V * rho
        m = np.zeros(W.shape[0]) if m is None else np.asarray(m, dtype=float)
        return cls(Q=Wr @ W.T / D, R=Vr @ W.T / D**1.5, T=Vr @ V.T / D**2,
                   T0=V @ V.T / D, m=m, trace=spectrum.trace / D)


@dataclass(frozen=True)
class State:
    """State of the order-parameter equations: tracked modes, bulk Gram matrix, biases.

    ``Y`` stacks the overlaps of every unit with the tracked modes: ``Y = [A; B]``
    (shape 2K × n_tracked) for untied weights and ``Y = A`` (K × n_tracked) for tied
    ones.  The bulk modes share one eigenvalue, so they all follow the same linear flow
    and are carried exactly by their Gram matrix ``G = Σ_bulk y_τ y_τᵀ`` (same block
    layout as a column of ``Y``).  Build it with :meth:`from_weights` (any weights, e.g. a
    simulation's at any time) or :meth:`random` (weights drawn by :func:`initial_weights`).
    """

    model: Autoencoder
    spectrum: Spectrum
    Y: np.ndarray
    G: np.ndarray
    m: np.ndarray

    @classmethod
    def from_weights(cls, model: Autoencoder, spectrum: Spectrum, W, V=None, m=None) -> "State":
        """State of given weights ``W, V`` (K×D, eigenbasis of the data).

        For tied weights ``V`` may be omitted (``V = √D W``).
        """
        D = spectrum.D
        if V is None:
            if not model.tied:
                raise ValueError("untied models need both W and V")
            V = np.sqrt(D) * np.asarray(W, dtype=float)
        W, V = _check_weights(spectrum, W, V)
        if W.shape[0] != model.K:
            raise ValueError(f"weights have {W.shape[0]} rows but the model has K = {model.K}")
        model.check_dimension(D)
        Z = W if model.tied else np.vstack([W, V / np.sqrt(D)])
        n = spectrum.n_tracked
        m = np.zeros(model.K) if m is None else np.asarray(m, dtype=float).copy()
        if m.shape != (model.K,):
            raise ValueError(f"bias must have shape ({model.K},), got {m.shape}")
        if not np.all(np.isfinite(m)):
            raise ValueError("biases m contain NaN or inf")
        return cls(model, spectrum, Z[:, :n].copy(), Z[:, n:] @ Z[:, n:].T, m)

    @classmethod
    def random(cls, model: Autoencoder, spectrum: Spectrum, scale: float = 0.1,
               seed=0, bias: float = 0.0) -> "State":
        """State of weights drawn by :func:`initial_weights` with ``default_rng(seed)``."""
        rng = np.random.default_rng(check_seed("seed", seed))
        W, V, m = initial_weights(model, spectrum.D, scale, rng, bias)
        return cls.from_weights(model, spectrum, W, V, m)

    @property
    def A(self) -> np.ndarray:
        """Encoder overlaps ``w_k·e_τ`` with the tracked modes, shape (K, n_tracked)."""
        return self.Y[: self.model.K]

    @property
    def B(self) -> np.ndarray:
        """Decoder overlaps ``v_k·e_τ/√D`` with the tracked modes, shape (K, n_tracked)."""
        return self.Y[-self.model.K:]

    def order_parameters(self) -> OrderParameters:
        """Q, R, T, T0 and m of this state (exact for the weights it was built from)."""
        return order_parameters_of(self.Y, self.G, self.m, self.spectrum, self.model.K)

    def to_vector(self) -> np.ndarray:
        """Flatten to the ODE state vector ``[Y, G, m]``."""
        return np.concatenate([self.Y.ravel(), self.G.ravel(), self.m])

    def with_vector(self, y: np.ndarray) -> "State":
        """A copy of this state holding the values of the flat vector ``y``."""
        nY, nG = self.Y.size, self.G.size
        y = np.asarray(y, dtype=float)
        return replace(self, Y=y[:nY].reshape(self.Y.shape),
                       G=y[nY:nY + nG].reshape(self.G.shape), m=y[nY + nG:].copy())


def order_parameters_of(Y, G, m, spectrum: Spectrum, K: int) -> OrderParameters:
    """Order parameters from tracked overlaps ``Y`` and bulk Gram matrix ``G``."""
    s_bulk = spectrum.bulk / spectrum.D
    weighted = (Y * spectrum.s) @ Y.T + s_bulk * G   # Σ_τ s_τ y_τ y_τᵀ over all modes
    gram = Y @ Y.T + G                               # Σ_τ y_τ y_τᵀ over all modes
    Q = weighted[:K, :K]
    return OrderParameters(Q=Q, R=weighted[-K:, :K], T=weighted[-K:, -K:],
                           T0=gram[-K:, -K:], m=np.asarray(m, dtype=float).copy(),
                           trace=spectrum.trace / spectrum.D)


def _check_weights(spectrum: Spectrum, W, V):
    W = np.asarray(W, dtype=float)
    V = np.asarray(V, dtype=float)
    if W.ndim != 2 or W.shape[1] != spectrum.D:
        raise ValueError(f"W must have shape (K, {spectrum.D}), got {W.shape}")
    if V.shape != W.shape:
        raise ValueError(f"V must have the shape of W {W.shape}, got {V.shape}")
    if not (np.all(np.isfinite(W)) and np.all(np.isfinite(V))):
        raise ValueError("weights contain NaN or inf")
    return W, V

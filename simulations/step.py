"""One SGD step: the compiled kernels (one per activation) and the learning-rule flags.

The kernel of an activation is :mod:`simulations.kernels` with its own ``g`` and
almost-everywhere derivative ``g'`` pasted in by the package's one emitter
(:mod:`odesolve.codegen.emit`) and written by its one module writer
(:func:`odesolve.codegen.load_generated`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from odesolve.codegen import load_generated
from odesolve.codegen.emit import activation_functions, emit_module, fingerprint
from odesolve.derive.averages import check_sgd_averages
from odesolve.protocols import Protocol, as_protocol
from odesolve.spec.activations import BUILTIN_ACTIVATIONS
from odesolve.spec.model import Autoencoder

from . import kernels as _kernel
from ._setup import _given_weights

#: Decoder of tied weights: ``v_k = √D w_k`` (the theory's) or ``v_k = w_k``.
TIED_NORMALISATIONS = ("sqrtD", "unit")

_KERNELS: dict = {}

# --------------------------------------------------------------------------- #
# Compiled kernels


# --------------------------------------------------------------------------- #
def kernel(activation):
    """The compiled kernel module of an activation (cached in memory and on disk).

    The linear kernel is :mod:`simulations.kernels` itself; any other activation gets a
    copy of it with its own ``g`` and almost-everywhere derivative ``g'`` (Dirac deltas,
    e.g. of sign, dropped), emitted by :func:`odesolve.codegen.emit.emit_module` (the
    emitter of the theory's modules) and written by
    :func:`odesolve.codegen.load_generated` under its fingerprint.

    Parameters
    ----------
    activation : odesolve.spec.activations.Activation

    Raises
    ------
    ValueError
        When the activation's SGD has no Gaussian theory
        (:func:`odesolve.derive.averages.check_sgd_averages`: the simulator refuses what
        the theory refuses), or a constant of g is beyond double precision.

    Examples
    --------
    >>> from odesolve import resolve_activation
    >>> k = kernel(resolve_activation("erf"))
    >>> round(k.g(1.0), 6), round(k.g_prime(0.0), 6)    # erf(x/√2), √(2/π)
    (0.682689, 0.797885)
    >>> print(Path(k.__file__).read_text().splitlines()[3])
    # g(x) = erf(sqrt(2)*x/2)
    """
    if activation.key == BUILTIN_ACTIVATIONS["linear"].key:
        return _kernel
    if activation.key in _KERNELS:
        return _KERNELS[activation.key]
    check_sgd_averages(activation)
    template = Path(_kernel.__file__).read_text()
    functions = activation_functions(activation)
    digest = fingerprint(template, *functions)[:16]
    module, _ = load_generated(f"simulations_kernel_{digest}", lambda: emit_module(
        template, functions, activation=activation, fingerprint=digest,
        title=f"simulator kernel of activation {activation.name!r}: simulations.kernels "
              "with this activation's g and g'"))
    _KERNELS[activation.key] = module
    return module


@dataclass(frozen=True)
class _Rule:
    """The flags of the compiled kernel for a model."""

    tie: float          # 0 untied; else the decoder is tie·w_k
    truncated: bool
    encoder: bool       # False for Sanger's rule: no back-propagated term
    train_bias: bool

    @classmethod
    def of(cls, model: Autoencoder, D: int, tied_normalisation: str) -> "_Rule":
        if tied_normalisation not in TIED_NORMALISATIONS:
            raise ValueError(f"unknown tied_normalisation {tied_normalisation!r}: expected one "
                             f"of {TIED_NORMALISATIONS}")
        if tied_normalisation != "sqrtD" and not model.tied:
            raise ValueError("tied_normalisation applies to tied models only")
        if model.rule == "sanger" and model.bias == "trained":
            raise ValueError("Sanger's rule has no loss, so it does not define a bias update")
        tie = 0.0 if not model.tied else (math.sqrt(D) if tied_normalisation == "sqrtD" else 1.0)
        return cls(tie, model.rule != "sgd", model.rule != "sanger", model.bias == "trained")

    def decoder(self, W, V):
        """The decoder of weights ``W, V`` (``tie·W`` for tied weights)."""
        return self.tie * W if self.tie else V


def _scratch(K, D):
    """Per-step scratch arrays of the kernel: λ, g(λ) and the error vector."""
    return np.empty(K), np.empty(K), np.empty(D)


def _rates(protocol: Protocol) -> np.ndarray:
    """The kernel's ``rates = [c_w, c_v, c_m, κ_w, κ_v]`` of a protocol."""
    return np.array([protocol.encoder_rate, protocol.decoder_rate, protocol.bias_rate,
                     protocol.encoder_decay, protocol.decoder_decay])


def sgd_step(model: Autoencoder, x, W, V, m, lr: float, *, tied_normalisation: str = "sqrtD",
             protocol: Protocol | None = None):
    """One step of the model's learning rule on one input (new arrays; for checks).

    This runs the compiled update of :func:`simulate` on a single sample, so it is slow
    per call; it exists to test the update against finite differences of the loss.

    Parameters
    ----------
    model : odesolve.spec.model.Autoencoder
    x : array_like, shape (D,)
    W, V : array_like, shape (K, D)
        Encoder and decoder (``V`` is ignored for tied weights and may be None).
    m : array_like, shape (K,)
        Encoder biases.
    lr : float
        Learning rate η.
    protocol : odesolve.protocols.Protocol, optional
        Rate multiples and decays of the step (its schedule and batch size do not apply
        to a single step: ``lr`` is the rate of this step).

    Returns
    -------
    W, V, m : ndarray
        Weights after the step (``V`` is the decoder ``c·W`` for tied weights).

    Examples
    --------
    >>> model = Autoencoder(K=1, activation="linear")
    >>> W, V, m = sgd_step(model, [2.0, 0.0], [[1.0, 0.0]], [[0.0, 0.0]], [0.0], lr=1.0)
    >>> V                                    # (η/D) g(λ) e with λ = 2/√2, e = x
    array([[1.41421356, 0.        ]])
    """
    x = np.ascontiguousarray(x, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"x must be one input of shape (D,), got {x.shape}")
    D = x.shape[0]
    rule = _Rule.of(model, D, tied_normalisation)
    W, V, m = _given_weights(model, D, rule, (W, V, m))
    protocol = as_protocol(protocol)
    protocol.check_model(model)
    lam, gl, e = _scratch(model.K, D)
    kernel(model.activation).online(x[None, :], 0, 1, W, V, m, np.array([lr / D]),
                                    _rates(protocol), 1, rule.tie, rule.truncated, rule.encoder,
                                    rule.train_bias, np.inf, W, V, m, lam, gl, e)
    return W, rule.decoder(W, V), m

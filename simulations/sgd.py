"""Online SGD of two-layer autoencoders at finite D, in the model and units of the theory.

The model is ``x̂ = Σ_k v_k g(λ_k)`` with ``λ_k = w_k·x/√D + m_k`` and the loss of one
sample is ``ℓ = ‖x − x̂‖²/(2D)``.  One step on one fresh sample (``e = x − x̂``):

* vanilla SGD, untied: ``W ← W − (η/D)∇_W ℓ``, ``V ← V − η∇_V ℓ``, i.e.
  ``v_k += (η/D) g(λ_k) e`` and ``w_k += (η/D)(e·v_k/D) g'(λ_k) x/√D``;
* trained bias: ``m_k += (η/D)(e·v_k/D) g'(λ_k)`` (the encoder rate; a ``"fixed"`` bias
  never moves);
* truncated SGD: unit k's update uses ``e_k = x − Σ_{l≤k} v_l g(λ_l)``, i.e. it is the
  gradient of ``‖e_k‖²/(2D)`` with respect to unit k's own parameters;
* tied weights: one vector per unit, ``v_k = √D w_k`` (``tied_normalisation="sqrtD"``,
  the normalisation of the theory) or ``v_k = w_k`` (``"unit"``), updated by
  ``w ← w − (η/D)∇_w ℓ`` in both normalisations; with ``v_k = c·w_k`` that is
  ``w_k += (η/D)[(e·v_k/D) g'(λ_k) x/√D + (c/D) g(λ_k) e]``;
* Sanger's rule (tied only): the decoder (Hebbian) term alone with the truncated error,
  ``w_k += (η/D)(c/D) g(λ_k) e_k`` (Sanger's generalised Hebbian algorithm for linear g);
* sign activation: ``g' = 0`` almost everywhere, so encoder and bias never move and only
  the decoder learns (for tied weights, the shared vector through its decoder term).

Time is ``t = (samples seen)/D``.  Inputs are drawn in chunks from an explicit
:class:`numpy.random.Generator` and the steps run in a compiled loop (:mod:`._kernel`),
in place and without allocation.  ``default_rng(seed)`` first draws the initial weights
with :func:`odesolve.state.initial_weights` (the theory's convention, so that
``State.random(model, spectrum, scale, seed)`` starts from the same weights), then every
training input; the held-out test set comes from a separate stream, so the training
trajectory does not depend on ``n_test``.

>>> from odesolve import Autoencoder, spiked_covariance
>>> spec = spiked_covariance(D=100, spikes=[2.0], bulk=0.1)
>>> res = simulate(Autoencoder(K=1, activation="linear"), spec, lr=1.0, t_max=20.0,
...                n_times=5, n_test=500)
>>> res.t
array([ 0.  ,  0.02,  0.2 ,  2.  , 20.  ])
>>> bool(abs(res.test_error[-1] - spec.pca_error(1)) < 0.02)
True
"""
from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sympy

from odesolve.activations import BUILTIN_ACTIVATIONS, print_code
from odesolve.codegen import cache_dir
from odesolve.config import time_grid
from odesolve.data import Spectrum
from odesolve.errors import DivergenceError
from odesolve.model import Autoencoder
from odesolve.progress import progress_bar
from odesolve.state import OrderParameters, State, initial_weights

from . import _kernel
from .datasets import Dataset

__all__ = ["simulate", "simulate_seeds", "SimulationResult", "train_finite",
           "FiniteTrainingResult", "sgd_step", "kernel", "TIED_NORMALISATIONS"]

#: Decoder of tied weights: ``v_k = √D w_k`` (the theory's) or ``v_k = w_k``.
TIED_NORMALISATIONS = ("sqrtD", "unit")
#: Inputs drawn per chunk: 2^19 numbers (4 MiB), so that a chunk is still in the cache
#: when the compiled loop reads it.
CHUNK_VALUES = 2**19
#: A sample loss above this multiple of ``1 + tr Ω/D`` (the loss scale) is a blow-up.
LOSS_LIMIT = 1e8
#: Seeds the test-set stream ``default_rng((seed, TEST_STREAM))``, apart from training.
TEST_STREAM = 0x7E57

_KERNELS: dict = {}
_MARKERS = ("# ---- ACTIVATION", "# ---- END OF ACTIVATION ----")


# --------------------------------------------------------------------------- #
# Compiled kernels
# --------------------------------------------------------------------------- #
def kernel(activation):
    """The compiled kernel module of an activation (cached in memory and on disk).

    The linear kernel is :mod:`simulations._kernel` itself; any other activation gets a
    copy of it with its own ``g`` and almost-everywhere derivative ``g'`` (Dirac deltas,
    e.g. of sign, dropped), written to ``odesolve.codegen.cache_dir()`` under a hash of
    its source.

    Parameters
    ----------
    activation : odesolve.activations.Activation

    Examples
    --------
    >>> from odesolve import resolve_activation
    >>> k = kernel(resolve_activation("erf"))
    >>> round(k.g(1.0), 6), round(k.g_prime(0.0), 6)    # erf(x/√2), √(2/π)
    (0.682689, 0.797885)
    """
    if activation.key == BUILTIN_ACTIVATIONS["linear"].key:
        return _kernel
    if activation.key in _KERNELS:
        return _KERNELS[activation.key]
    template = Path(_kernel.__file__).read_text()
    start, end = template.index(_MARKERS[0]), template.index(_MARKERS[1])
    d1 = activation.derivative(1)
    d1 = d1.xreplace({d: sympy.Integer(0) for d in d1.atoms(sympy.DiracDelta)})
    functions = (f"{_MARKERS[0]}\n"
                 f"@njit(cache=True)\n{activation.numba_source(0, 'g')}\n\n"
                 f"@njit(cache=True)\ndef g_prime(x):\n    return 1.0 * ({print_code(d1)})\n\n\n")
    source = template[:start] + functions + template[end:]
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    name = f"simulations_kernel_{digest}"
    path = cache_dir() / f"{name}.py"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)  # atomic: a concurrent process never imports half a file
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
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


def sgd_step(model: Autoencoder, x, W, V, m, lr: float, *, tied_normalisation: str = "sqrtD"):
    """One step of the model's learning rule on one input (new arrays; for checks).

    This runs the compiled update of :func:`simulate` on a single sample, so it is slow
    per call; it exists to test the update against finite differences of the loss.

    Parameters
    ----------
    model : odesolve.model.Autoencoder
    x : array_like, shape (D,)
    W, V : array_like, shape (K, D)
        Encoder and decoder (``V`` is ignored for tied weights and may be None).
    m : array_like, shape (K,)
        Encoder biases.
    lr : float
        Learning rate η.

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
    lam, gl, e = _scratch(model.K, D)
    kernel(model.activation).online(x[None, :], 0, 1, W, V, m, lr / D, rule.tie, rule.truncated,
                                    rule.encoder, rule.train_bias, np.inf, lam, gl, e)
    return W, rule.decoder(W, V), m


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
        Seconds spent simulating.
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

        :func:`odesolve.error.generalisation_error` of the recorded order parameters: the
        theory's error formula evaluated on the simulation (no Monte-Carlo noise).
        """
        from odesolve.error import generalisation_error

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


# --------------------------------------------------------------------------- #
# Online SGD
# --------------------------------------------------------------------------- #
def simulate(model: Autoencoder, spectrum: Spectrum, lr: float, t_max: float, seed: int = 0, *,
             scale: float = 0.1, bias: float = 0.0, times=None, n_times: int = 60,
             n_test: int = 2000, weights=None, data=None, eigenbasis: bool = True,
             tied_normalisation: str = "sqrtD", progress: bool = False) -> SimulationResult:
    """Train ``model`` by online SGD on inputs with covariance ``spectrum`` up to ``t_max``.

    Parameters
    ----------
    model : odesolve.model.Autoencoder
        Architecture and learning rule.
    spectrum : odesolve.data.Spectrum
        Covariance of the inputs; the weights and order parameters are expressed in its
        eigenbasis.
    lr : float
        Learning rate η > 0.
    t_max : float
        Final time (``round(t_max·D)`` steps).
    seed : int
        ``default_rng(seed)`` draws the initial weights, then the training inputs.
    scale, bias : float
        Initial weight scale and bias (see :func:`odesolve.state.initial_weights`).
    times : array_like, optional
        Recording times in ``[0, t_max]``, rounded to whole steps; default: the theory's
        grid :func:`odesolve.config.time_grid` with ``n_times`` points.
    n_test : int
        Held-out samples for the test error, drawn once (Gaussian inputs) or held out of
        ``data``, from the stream ``default_rng((seed, TEST_STREAM))``.
    weights : tuple (W, V, m), optional
        Initial weights (eigenbasis) instead of a random draw; V and m may be None for
        tied weights and for a model without bias.
    data : simulations.datasets.Dataset or array_like (n, D), optional
        Train on these samples (written in the basis of ``spectrum``'s eigenvectors,
        e.g. ``dataset.X`` with ``spectrum = dataset.spectrum()``) instead of Gaussian
        draws: ``n_test`` of them are held out, the others are visited in random order
        without replacement, a fresh permutation for each further pass.
    eigenbasis : bool
        Simulate in the eigenbasis (default: Gaussian inputs ``√ρ ⊙ z``).  ``False``
        rotates the inputs into the basis of the stored eigenvectors (one D×D product per
        input: slow) and the weights back for the measurements; the trajectories agree
        up to rounding.
    tied_normalisation : {"sqrtD", "unit"}
        Decoder of tied weights, ``√D w`` or ``w`` (random initial ``w`` i.i.d.
        ``N(0, scale²)`` for ``"unit"``).
    progress : bool
        Show a progress bar (only on a terminal).

    Returns
    -------
    SimulationResult

    Raises
    ------
    ValueError
        For an invalid argument (K ≥ D, lr not finite and positive, shapes, times, …).
    odesolve.errors.DivergenceError
        When the loss of a sample stops being finite or exceeds ``LOSS_LIMIT·(1 + tr Ω/D)``;
        its ``step`` is the step at which that was detected.
    """
    if not isinstance(model, Autoencoder):
        raise TypeError(f"model must be an odesolve Autoencoder, got {type(model).__name__}")
    if not isinstance(spectrum, Spectrum):
        raise TypeError(f"spectrum must be an odesolve Spectrum, got {type(spectrum).__name__}")
    D, K = spectrum.D, model.K
    model.check_dimension(D)
    lr, total, steps = _check_run(lr, t_max, times, n_times, D)
    seed = _check_seed(seed)
    _check_count(n_test, "n_test")
    rule = _Rule.of(model, D, tied_normalisation)
    start_time = time.perf_counter()

    rng = np.random.default_rng(seed)
    W, V, m = _start_weights(model, D, scale, bias, rng, rule, weights)
    W0, V0, m0 = W.copy(), rule.decoder(W, V).copy(), m.copy()
    test_rng = np.random.default_rng((seed, TEST_STREAM))
    basis = None if eigenbasis else spectrum.eigenvectors  # None: simulate in the eigenbasis
    if data is None:
        X_test = spectrum.sample(n_test, test_rng)
        draw = _gaussian_draws(spectrum, rng, basis)
        passes = None
    else:
        train, test = _as_dataset(data, D).split(n_test, test_rng)
        to_eigen = spectrum.eigenvectors
        X_test = test.X if to_eigen is None else test.X @ to_eigen
        X_train = train.X if to_eigen is None or basis is not None else train.X @ to_eigen
        draw = _data_draws(X_train, rng)
        passes = total / train.n
    if basis is not None:  # train in the original basis: rotate the initial weights there
        W, V = W @ basis.T, V @ basis.T

    record = _Recorder(model, spectrum, rule, X_test, len(steps))
    code = kernel(model.activation)
    lam, gl, e = _scratch(K, D)
    loss_limit = LOSS_LIMIT * (1.0 + spectrum.trace / D)
    rows = max(1, min(4096, CHUNK_VALUES // D))
    done, r = 0, 0
    with progress_bar(total=total, desc=f"SGD seed {seed}", unit="step", unit_scale=True,
                      disable=not progress) as bar:
        while r < len(steps) and steps[r] == 0:
            r = record(r, W, V, m, basis, done, lr)
        for X in _prefetched_chunks(draw, rows, D, total):
            n = len(X)
            i = 0
            while i < n:
                stop = n if r == len(steps) else min(n, i + steps[r] - done)
                bad = code.online(X, i, stop, W, V, m, lr / D, rule.tie, rule.truncated,
                                  rule.encoder, rule.train_bias, loss_limit, lam, gl, e)
                if bad >= 0:
                    step = int(done + bad - i + 1)
                    raise DivergenceError("online SGD", step / D, lr, step,
                                          f"the loss of a sample exceeded {loss_limit:.3g} or "
                                          "was not finite")
                done += stop - i
                bar.update(stop - i)
                i = stop
                while r < len(steps) and steps[r] == done:
                    r = record(r, W, V, m, basis, done, lr)
    if basis is not None:
        W, V = W @ basis, V @ basis
    return SimulationResult(
        t=steps / D, steps=steps, test_error=record.error, Q=record.Q, R=record.R, T=record.T,
        T0=record.T0, m=record.m, A=record.A, B=record.B, bulk_gram=record.G,
        W0=W0, V0=V0, m0=m0, W=W, V=rule.decoder(W, V), model=model, spectrum=spectrum,
        lr=lr, seed=seed, tied_normalisation=tied_normalisation, n_test=int(n_test),
        passes=passes, wall_time=time.perf_counter() - start_time)


def simulate_seeds(model: Autoencoder, spectrum: Spectrum, lr: float, t_max: float, seeds, *,
                   progress: bool = False, **kwargs) -> list[SimulationResult]:
    """:func:`simulate` once per seed (same keyword arguments); a list of results.

    Examples
    --------
    >>> from odesolve import Autoencoder, spiked_covariance
    >>> runs = simulate_seeds(Autoencoder(K=1, activation="erf"),
    ...                       spiked_covariance(D=50, spikes=[1.0], bulk=0.5),
    ...                       lr=1.0, t_max=2.0, seeds=range(3), n_times=4, n_test=100)
    >>> [r.seed for r in runs], runs[0].test_error.shape
    ([0, 1, 2], (4,))
    """
    seeds = list(seeds)
    results = []
    with progress_bar(total=len(seeds), desc="SGD", unit="seed", disable=not progress) as bar:
        for seed in seeds:
            results.append(simulate(model, spectrum, lr, t_max, seed, **kwargs))
            bar.update()
    return results


class _Recorder:
    """Measurements at the recording times, in the eigenbasis."""

    def __init__(self, model, spectrum, rule, X_test, n):
        K, n_tr = model.K, spectrum.n_tracked
        self.model, self.spectrum, self.rule, self.X_test = model, spectrum, rule, X_test
        self.g = model.activation.numpy
        self.error = np.empty(n)
        self.Q, self.R, self.T, self.T0 = (np.empty((n, K, K)) for _ in range(4))
        self.m = np.empty((n, K))
        self.A, self.B = np.empty((n, K, n_tr)), np.empty((n, K, n_tr))
        P = K if model.tied else 2 * K
        self.G = np.empty((n, P, P))

    def __call__(self, r, W, V, m, basis, step, lr):
        """Record index ``r`` from the current weights; returns ``r + 1``."""
        spec = self.spectrum
        if not (np.all(np.isfinite(W)) and np.all(np.isfinite(V)) and np.all(np.isfinite(m))):
            raise DivergenceError("online SGD", step / spec.D, lr, int(step),
                                  "non-finite weights")
        if basis is not None:
            W, V = W @ basis, V @ basis
        V = self.rule.decoder(W, V)
        ops = OrderParameters.from_weights(spec, W, V, m)
        self.Q[r], self.R[r], self.T[r], self.T0[r], self.m[r] = ops.Q, ops.R, ops.T, ops.T0, m
        n_tr = spec.n_tracked
        self.A[r], self.B[r] = W[:, :n_tr], V[:, :n_tr] / np.sqrt(spec.D)
        Z = W if self.model.tied else np.vstack([W, V / np.sqrt(spec.D)])
        self.G[r] = Z[:, n_tr:] @ Z[:, n_tr:].T
        self.error[r] = _mc_error(self.X_test, W, V, m, self.g)
        return r + 1


def _mc_error(X, W, V, m, g) -> float:
    """Mean ``‖x − x̂‖²/(2D)`` over the rows of X."""
    D = X.shape[1]
    residual = X - g(X @ W.T / np.sqrt(D) + m) @ V
    return float(np.mean(np.sum(residual**2, axis=1)) / (2 * D))


def _prefetched_chunks(draw, rows, D, total):
    """The ``total`` inputs in chunks of ``rows``, each drawn on a second thread while the
    previous one is trained on (numpy's generators and the compiled loop release the GIL).

    One thread makes every draw, in order, so the stream is that of a serial loop.
    """
    buffers = (np.empty((rows, D)), np.empty((rows, D)))
    sizes = [min(rows, total - start) for start in range(0, total, rows)]
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(draw, buffers[0][:sizes[0]])
        for j in range(len(sizes)):
            X = pending.result()
            if j + 1 < len(sizes):
                pending = pool.submit(draw, buffers[(j + 1) % 2][:sizes[j + 1]])
            yield X


def _gaussian_draws(spectrum, rng, basis):
    """``draw(out)``: fills ``out`` (n, D) with inputs and returns them."""
    sqrt_rho = np.sqrt(spectrum.all_eigenvalues)

    def draw(out):
        rng.standard_normal(out=out)
        out *= sqrt_rho
        return out if basis is None else out @ basis.T

    return draw


def _data_draws(X, rng):
    """``draw(out)``: the next rows of X in random order, a new permutation per pass."""
    state = {"order": rng.permutation(len(X)), "next": 0}

    def draw(out):
        filled = 0
        while filled < len(out):
            if state["next"] == len(X):
                state["order"], state["next"] = rng.permutation(len(X)), 0
            take = min(len(out) - filled, len(X) - state["next"])
            idx = state["order"][state["next"]:state["next"] + take]
            np.take(X, idx, axis=0, out=out[filled:filled + take])
            filled += take
            state["next"] += take
        return out

    return draw


# --------------------------------------------------------------------------- #
# Finite data: repeated passes, mini-batches
# --------------------------------------------------------------------------- #
def train_finite(model: Autoencoder, data, lr: float, epochs: int, batch_size: int = 1,
                 seed: int = 0, *, scale: float = 0.1, bias: float = 0.0, n_test: int | None = None,
                 weights=None, tied_normalisation: str = "sqrtD") -> FiniteTrainingResult:
    """Train on a finite data set for several epochs of mini-batch SGD.

    Each epoch visits the training samples in a new random order, in batches of
    ``batch_size``; a batch makes one step on the mean of its samples' updates (the
    rule and rates of :func:`simulate`, so ``batch_size = 1`` is online SGD reusing the
    samples).  Errors are measured on the whole training set and on the held-out set
    after every epoch.

    Parameters
    ----------
    model : odesolve.model.Autoencoder
    data : simulations.datasets.Dataset or array_like (n, D)
    lr : float
        Learning rate η.
    epochs, batch_size : int
    seed : int
        ``default_rng(seed)`` draws the initial weights, then the epochs' orders; the
        held-out split comes from ``default_rng((seed, TEST_STREAM))``.
    scale, bias, weights, tied_normalisation
        As in :func:`simulate` (weights in the basis of the data).
    n_test : int, optional
        Held-out samples (default: a fifth of the data).

    Returns
    -------
    FiniteTrainingResult

    Examples
    --------
    >>> from simulations.datasets import digits
    >>> res = train_finite(Autoencoder(K=4, activation="linear"), digits(), lr=0.5,
    ...                    epochs=3, batch_size=8)
    >>> res.epoch, bool(res.train_error[-1] < res.train_error[0])
    (array([0, 1, 2, 3]), True)
    """
    if not isinstance(model, Autoencoder):
        raise TypeError(f"model must be an odesolve Autoencoder, got {type(model).__name__}")
    dataset = _as_dataset(data, None)
    D = dataset.D
    model.check_dimension(D)
    lr = _check_lr(lr)
    epochs = _check_count(epochs, "epochs", minimum=0)
    batch_size = _check_count(batch_size, "batch_size")
    seed = _check_seed(seed)
    n_test = max(1, dataset.n // 5) if n_test is None else _check_count(n_test, "n_test")
    rule = _Rule.of(model, D, tied_normalisation)
    start_time = time.perf_counter()
    rng = np.random.default_rng(seed)
    W, V, m = _start_weights(model, D, scale, bias, rng, rule, weights)
    train, test = dataset.split(n_test, np.random.default_rng((seed, TEST_STREAM)))
    g = model.activation.numpy
    errors = np.empty((epochs + 1, 2))
    code = kernel(model.activation)
    lam, gl, e = _scratch(model.K, D)
    dW, dV, dm = np.empty_like(W), np.empty_like(V), np.empty_like(m)
    loss_limit = LOSS_LIMIT * (1.0 + np.mean(np.sum(train.X**2, axis=1)) / D)
    for epoch in range(epochs + 1):
        if epoch:
            bad = code.minibatch_epoch(train.X, rng.permutation(train.n), batch_size, W, V, m,
                                       lr / D, rule.tie, rule.truncated, rule.encoder,
                                       rule.train_bias, loss_limit, dW, dV, dm, lam, gl, e)
            if bad >= 0:
                batches = -(-train.n // batch_size)
                step = (epoch - 1) * batches + bad + 1
                samples = (epoch - 1) * train.n + bad * batch_size
                raise DivergenceError(f"mini-batch SGD (epoch {epoch}, batch {bad + 1})",
                                      samples / D, lr, step, "the mean loss of a batch exceeded "
                                      f"{loss_limit:.3g} or was not finite")
        decoder = rule.decoder(W, V)
        errors[epoch] = _mc_error(train.X, W, decoder, m, g), _mc_error(test.X, W, decoder, m, g)
    return FiniteTrainingResult(
        epoch=np.arange(epochs + 1), train_error=errors[:, 0], test_error=errors[:, 1],
        W=W, V=rule.decoder(W, V), m=m, model=model, lr=lr, batch_size=batch_size, seed=seed,
        n_train=train.n, n_test=test.n, tied_normalisation=tied_normalisation,
        wall_time=time.perf_counter() - start_time)


# --------------------------------------------------------------------------- #
# Checks and initial weights
# --------------------------------------------------------------------------- #
def _start_weights(model, D, scale, bias, rng, rule, weights):
    """The given ``weights`` checked, or a random draw from ``rng`` when they are None."""
    if weights is None:
        return _initial_weights(model, D, scale, bias, rng, rule)
    return _given_weights(model, D, rule, weights)


def _initial_weights(model, D, scale, bias, rng, rule):
    """Weights from the shared convention; ``V`` is zeros for tied weights (unused)."""
    W, V, m = initial_weights(model, D, scale, rng, bias)
    if rule.tie == 1.0:  # v = w: the shared vector is the decoder drawn by the convention
        W = V
    if rule.tie:
        V = np.zeros_like(W)
    return np.ascontiguousarray(W), np.ascontiguousarray(V), m


def _given_weights(model, D, rule, weights):
    """Checked copies of user weights ``(W, V, m)``."""
    try:
        W, V, m = weights
    except (TypeError, ValueError):
        raise ValueError("weights must be a tuple (W, V, m)") from None
    K = model.K
    W = np.array(W, dtype=float)
    if W.shape != (K, D):
        raise ValueError(f"W must have shape ({K}, {D}), got {W.shape}")
    if rule.tie:
        if V is not None and not np.allclose(V, rule.tie * W, rtol=1e-10, atol=1e-12):
            raise ValueError(f"tied weights need V = {rule.tie:g}·W (or V = None)")
        V = np.zeros_like(W)
    elif V is None:
        raise ValueError("untied models need a decoder V")
    V = np.array(V, dtype=float)
    if V.shape != (K, D):
        raise ValueError(f"V must have shape ({K}, {D}), got {V.shape}")
    m = np.zeros(K) if m is None else np.array(m, dtype=float).reshape(-1)
    if m.shape != (K,):
        raise ValueError(f"m must have shape ({K},), got {m.shape}")
    if not model.has_bias and np.any(m != 0):
        raise ValueError("the model has no bias: m must be zero")
    for name, a in (("W", W), ("V", V), ("m", m)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"initial weights {name} contain NaN or inf")
    return W, V, m


def _as_dataset(data, D):
    dataset = data if isinstance(data, Dataset) else Dataset(data, "samples")
    if D is not None and dataset.D != D:
        raise ValueError(f"data have D = {dataset.D} but the spectrum has D = {D}")
    return dataset


def _check_lr(lr) -> float:
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.number)) \
            or not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"learning rate must be a finite number > 0, got {lr!r}")
    return float(lr)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def _check_count(n, name, minimum=1) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {n!r}")
    return int(n)


def _check_run(lr, t_max, times, n_times, D):
    """``(lr, total steps, recording steps)`` of a run, checked."""
    lr = _check_lr(lr)
    if isinstance(t_max, bool) or not isinstance(t_max, (int, float, np.number)) \
            or not (math.isfinite(t_max) and t_max > 0):
        raise ValueError(f"t_max must be a finite number > 0, got {t_max!r}")
    total = int(round(t_max * D))
    if total < 1:
        raise ValueError(f"t_max = {t_max} is less than one step (1/D = {1 / D:g})")
    if times is None:
        _check_count(n_times, "n_times", minimum=2)
        times = time_grid(float(t_max), n_times, D)
    times = np.asarray(times, dtype=float)
    if times.ndim != 1 or len(times) == 0 or not np.all(np.isfinite(times)):
        raise ValueError("times must be a non-empty 1-d list of finite numbers")
    if np.any(np.diff(times) < 0) or times[0] < 0 or times[-1] > t_max * (1 + 1e-12):
        raise ValueError(f"times must be increasing and within [0, t_max = {t_max}]")
    return lr, total, np.unique(np.minimum(np.round(times * D).astype(np.int64), total))

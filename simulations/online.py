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

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from odesolve._checks import SECONDS_PER_FLOP, check_cost, check_type
from odesolve._progress import progress_bar
from odesolve.errors import DivergenceError
from odesolve.protocols import Protocol, as_protocol
from odesolve.spec.model import Autoencoder
from odesolve.spec.spectra import Spectrum
from odesolve.state import OrderParameters, check_state_cost, state_variables

from ._setup import _as_dataset, _check_count, _check_run, _check_seed, _start_weights
from .results import SimulationResult
from .step import _rates, _Rule, _scratch, kernel

#: Inputs drawn per chunk: 2^19 numbers (4 MiB), so that a chunk is still in the cache
#: when the compiled loop reads it.
CHUNK_VALUES = 2**19
#: A sample loss above this multiple of ``1 + tr Ω/D`` (the loss scale) is a blow-up.
LOSS_LIMIT = 1e8
#: Seeds the test-set stream ``default_rng((seed, TEST_STREAM))``, apart from training.
TEST_STREAM = 0x7E57

# --------------------------------------------------------------------------- #
# Online SGD


# --------------------------------------------------------------------------- #
#: Seconds per SGD step and per K·D (2.2 ns measured on the 2-core CI machine, see
#: benchmarks/RESULTS.md), for the cost estimate announced before long runs.
SECONDS_PER_STEP_KD = 2.2e-9


def simulate(model: Autoencoder, spectrum: Spectrum, lr: float, t_max: float, seed: int = 0, *,
             scale: float = 0.1, bias: float = 0.0, times=None, n_times: int = 60,
             n_test: int = 2000, weights=None, data=None, eigenbasis: bool = True,
             tied_normalisation: str = "sqrtD", protocol: Protocol | None = None,
             progress: bool = False) -> SimulationResult:
    """Train ``model`` by online SGD on inputs with covariance ``spectrum`` up to ``t_max``.

    Parameters
    ----------
    model : odesolve.spec.model.Autoencoder
        Architecture and learning rule.
    spectrum : odesolve.spec.spectra.Spectrum
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
        grid :func:`odesolve.integrator.time_grid` with ``n_times`` points.
    n_test : int
        Held-out samples for the test error, drawn once (Gaussian inputs) or held out of
        ``data``, from the stream ``default_rng((seed, TEST_STREAM))``.
    weights : tuple (W, V, m), optional
        Initial weights (eigenbasis) instead of a random draw; V and m may be None for
        tied weights and for a model without bias.
    data : odesolve.spec.images.Dataset or array_like (n, D), optional
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
    protocol : odesolve.protocols.Protocol, optional
        Learning-rate schedule (the step that starts after n samples uses ``η(n/D)``),
        per-layer rates, weight decay and mini-batches of B fresh samples (one step on the
        mean of their updates; time still counts samples, so ``t_max·D`` and the recording
        steps are rounded to multiples of B).  Default: plain online SGD.
    progress : bool
        Show a progress bar (only on a terminal).

    Returns
    -------
    SimulationResult

    Raises
    ------
    TypeError
        For a model or spectrum of the wrong type, or weights that are not real numbers.
    ValueError
        For an invalid argument (K ≥ D, lr not finite and positive, shapes, times, a
        nonzero ``bias`` on a model without a bias, …), or a request whose estimated
        memory or time is out of reach (:func:`odesolve.state.check_state_cost`, the
        estimates of ``odesolve run``), before anything is allocated.
    odesolve.errors.DivergenceError
        When the loss of a sample stops being finite or exceeds ``LOSS_LIMIT·(1 + tr Ω/D)``;
        its ``step`` is the step at which that was detected.

    References
    ----------
    The scalings (encoder rate η/D, decoder rate η on a loss with a 1/D, t = samples/D) are
    those under which the order parameters follow the ODEs of Refinetti & Goldt, ICML 2022,
    arXiv:2201.02115 (derived here, see docs/theory.md).

    Examples
    --------
    >>> from odesolve import Autoencoder, spiked_covariance
    >>> spec = spiked_covariance(D=200, spikes=[2.0], bulk=0.1)
    >>> run = simulate(Autoencoder(K=1, activation="erf"), spec, lr=1.0, t_max=5.0,
    ...                n_times=3, n_test=200, seed=1)
    >>> run.t.shape, run.Q.shape, run.A.shape
    ((3,), (3, 1, 1), (3, 1, 1))
    >>> bool(run.theory_error()[-1] < run.theory_error()[0])      # exact error of the weights
    True
    """
    check_type("model", model, Autoencoder, "Autoencoder(K=2)")
    check_type("spectrum", spectrum, Spectrum, "spiked_covariance(D, spikes, bulk)")
    D, K = spectrum.D, model.K
    model.check_dimension(D)
    lr, total, steps = _check_run(lr, t_max, times, n_times, D)
    protocol = as_protocol(protocol)
    protocol.check_model(model)
    batch = protocol.batch_size
    if batch > 1:
        total -= total % batch
        if total == 0:
            raise ValueError(f"t_max = {t_max} holds less than one batch of {batch} samples")
        steps = np.unique(np.minimum(np.round(steps / batch).astype(np.int64) * batch, total))
    seed = _check_seed(seed)
    _check_count(n_test, "n_test")
    # the weights (drawn, initial copies, increments) are those of a theory state of the
    # same model (odesolve.state.check_state_cost, the estimate `odesolve run` makes);
    # each record holds Q, R, T, T0 and a state's variables (overlaps, bulk Gram matrix,
    # biases), formed from the stacked weights by a P × P × D product
    check_state_cost(model, D, spectrum.n_tracked)
    P = K if model.tied else 2 * K
    record_seconds = SECONDS_PER_FLOP * 2.0 * (P * P + n_test * K) * D
    check_cost(f"online SGD: {total:.3g} steps at K = {K}, D = {D}",
               seconds=SECONDS_PER_STEP_KD * total * K * D + record_seconds * len(steps),
               nbytes=8.0 * (2 * n_test * D + 3 * min(total, CHUNK_VALUES // D + 1) * D
                             + 6 * K * D + P * D + n_test * K
                             + len(steps) * (4 * K * K + state_variables(
                                 K, model.tied, spectrum.n_tracked))))
    rule = _Rule.of(model, D, tied_normalisation)
    code = kernel(model.activation)         # refuses an activation without a theory
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
    lam, gl, e = _scratch(K, D)
    dW, dV, dm = np.empty_like(W), np.empty_like(V), np.empty_like(m)
    rates = _rates(protocol)
    loss_limit = LOSS_LIMIT * (1.0 + spectrum.trace / D)
    rows = max(1, min(4096, CHUNK_VALUES // D) // batch) * batch
    done, r = 0, 0
    with progress_bar(total=total, desc=f"SGD seed {seed}", unit="step", unit_scale=True,
                      disable=not progress) as bar:
        while r < len(steps) and steps[r] == 0:
            r = record(r, W, V, m, basis, done, lr)
        for X in _prefetched_chunks(draw, rows, D, total):
            n = len(X)
            a = _step_sizes(protocol, lr, D, done, n)
            i = 0
            while i < n:
                stop = n if r == len(steps) else min(n, i + steps[r] - done)
                bad = code.online(X, i, stop, W, V, m, a, rates, batch, rule.tie,
                                  rule.truncated, rule.encoder, rule.train_bias, loss_limit,
                                  dW, dV, dm, lam, gl, e)
                if bad >= 0:
                    step = int(done + bad - i) // batch + 1
                    raise DivergenceError("online SGD", step * batch / D, lr, step,
                                          f"the loss of a {'batch' if batch > 1 else 'sample'} "
                                          f"exceeded {loss_limit:.3g} or was not finite")
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
        passes=passes, wall_time=time.perf_counter() - start_time, protocol=protocol)


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


def _step_sizes(protocol, lr, D, done, n):
    """``η(t)/D`` for each of the next ``n`` samples (samples ``done…done+n−1``): the step
    a sample belongs to starts after ``B·⌊sample/B⌋`` samples, at that time."""
    if protocol.schedule.is_constant:
        return np.full(n, lr / D)
    batch = protocol.batch_size
    starts = np.arange(done, done + n) // batch * batch
    return lr * protocol.schedule(starts / D) / D


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

"""Training on a finite data set: repeated passes (epochs) of mini-batch SGD."""
from __future__ import annotations

import time

import numpy as np

from odesolve.errors import DivergenceError
from odesolve.protocols import Protocol
from odesolve.spec.model import Autoencoder

from ._setup import _as_dataset, _check_count, _check_lr, _check_seed, _start_weights
from .online import LOSS_LIMIT, TEST_STREAM, _mc_error
from .results import FiniteTrainingResult
from .step import _rates, _Rule, _scratch, kernel

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
    model : odesolve.spec.model.Autoencoder
    data : odesolve.spec.images.Dataset or array_like (n, D)
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
    >>> from odesolve.spec.images import digits
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
    code = kernel(model.activation)         # refuses an activation without a theory
    start_time = time.perf_counter()
    rng = np.random.default_rng(seed)
    W, V, m = _start_weights(model, D, scale, bias, rng, rule, weights)
    train, test = dataset.split(n_test, np.random.default_rng((seed, TEST_STREAM)))
    g = model.activation.numpy
    errors = np.empty((epochs + 1, 2))
    lam, gl, e = _scratch(model.K, D)
    dW, dV, dm = np.empty_like(W), np.empty_like(V), np.empty_like(m)
    plain = _rates(Protocol())
    loss_limit = LOSS_LIMIT * (1.0 + np.mean(np.sum(train.X**2, axis=1)) / D)
    for epoch in range(epochs + 1):
        if epoch:
            bad = code.minibatch_epoch(train.X, rng.permutation(train.n), batch_size, W, V, m,
                                       lr / D, plain, rule.tie, rule.truncated, rule.encoder,
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

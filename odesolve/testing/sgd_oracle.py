"""Independent, vectorised reference for one online-SGD step, and the Monte-Carlo drift.

Written directly from the update rules of the spec, without the derivation machinery,
so that the derived equations can be checked against it.
"""
from __future__ import annotations

import numpy as np
from scipy.special import erf

from ..codegen import compile_model
from ..integrator import rhs_function
from ..spec.model import Autoencoder
from ..spec.spectra import spiked_covariance
from ..state import State

SQRT2 = np.sqrt(2.0)


def _sigmoid(x):
    return 0.5 * (1 + np.tanh(x / 2))


def _erf_gauss(x):
    return np.sqrt(2 / np.pi) * np.exp(-x**2 / 2)


#: The activations of issue 9's corpus: name -> (expression given to the package,
#: g, its almost-everywhere derivative), g and g' written here by hand with numpy.
CORPUS = {
    "linear": ("linear", lambda x: x, np.ones_like),
    "erf": ("erf", lambda x: erf(x / SQRT2), _erf_gauss),
    "tanh": ("tanh", np.tanh, lambda x: 1 - np.tanh(x)**2),
    "relu": ("relu", lambda x: np.maximum(x, 0.0), lambda x: (x > 0).astype(float)),
    "leaky_relu": ("Max(x, 0.1*x)", lambda x: np.where(x > 0, x, 0.1 * x),
                   lambda x: np.where(x > 0, 1.0, 0.1)),
    "sign": ("sign", np.sign, np.zeros_like),
    "heaviside": ("Heaviside(x)", lambda x: (x > 0).astype(float), np.zeros_like),
    "abs": ("Abs(x)", np.abs, np.sign),
    "sigmoid": ("1/(1+exp(-x))", _sigmoid, lambda x: _sigmoid(x) * (1 - _sigmoid(x))),
    "hardtanh": ("Min(Max(x, -1), 1)", lambda x: np.clip(x, -1.0, 1.0),
                 lambda x: (np.abs(x) < 1).astype(float)),
    "gelu": ("x*(1 + erf(x/sqrt(2)))/2", lambda x: x * (1 + erf(x / SQRT2)) / 2,
             lambda x: (1 + erf(x / SQRT2)) / 2 + x * np.exp(-x**2 / 2) / np.sqrt(2 * np.pi)),
    "elu": ("Piecewise((x, x > 0), (exp(x) - 1, True))",
            lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
            lambda x: np.where(x > 0, 1.0, np.exp(np.minimum(x, 0.0)))),
    "sin": ("sin(x)", np.sin, np.cos),
    "cube": ("x**3", lambda x: x**3, lambda x: 3 * x**2),
    "gauss": ("exp(-x**2)", lambda x: np.exp(-x**2), lambda x: -2 * x * np.exp(-x**2)),
}
#: Activations beyond the corpus with a test of their own: powers of |x| (their
#: derivatives' steps sit inside roots, e.g. g'' = 0.75 |x|^(-1/2) for |x|^1.5; for
#: |x|^0.75, g'' is not locally integrable and its products are integrated by parts).
POWERS_OF_ABS = {
    "abs_pow_0.75": ("Abs(x)**0.75", lambda x: np.abs(x)**0.75,
                     lambda x: 0.75 * np.sign(x) * np.abs(x)**-0.25),
    "abs_pow_1.5": ("Abs(x)**1.5", lambda x: np.abs(x)**1.5,
                    lambda x: 1.5 * np.sign(x) * np.sqrt(np.abs(x))),
    "abs_pow_2.5": ("Abs(x)**(5/2)", lambda x: np.abs(x)**2.5,
                    lambda x: 2.5 * np.sign(x) * np.abs(x)**1.5),
}
#: An activation whose derivative has a logarithmic singularity at its kink
#: (g' = 1 + log|x|): its averages need graded quadrature nodes there.
LOGARITHMIC = {
    "x_log_abs": ("x*log(abs(x))", lambda x: x * np.log(np.abs(x)),
                  lambda x: 1.0 + np.log(np.abs(x))),
}
_BY_NAME = {**CORPUS, **POWERS_OF_ABS, **LOGARITHMIC}
_BY_EXPRESSION = {spec: (g, gp) for spec, g, gp in _BY_NAME.values()}


def activation_and_derivative(name: str):
    """g and its almost-everywhere derivative, as numpy functions, for an activation of
    :data:`CORPUS`, :data:`POWERS_OF_ABS` or :data:`LOGARITHMIC` given by its name or by
    the expression the package was given."""
    if name in _BY_NAME:
        return _BY_NAME[name][1:]
    if name in _BY_EXPRESSION:
        return _BY_EXPRESSION[name]
    raise KeyError(name)


def sgd_increments(X, W, V, m, lr, g, gp, *, tied=False, rule="sgd", train_bias=False,
                   rates=(1.0, 1.0, 1.0, 0.0, 0.0), dimension=None):
    """Per-sample increments (dW, dV, dm) of one SGD step for each row of X.

    X: (n, D) inputs; W, V: (K, D); returns arrays (n, K, D), (n, K, D), (n, K).
    ``dimension`` is the D of the scalings when X, W, V are given in fewer coordinates
    (see :func:`monte_carlo_drift`); default ``X.shape[1]``.
    For tied weights V is √D W and dV is √D dW.  ``rates = (c_w, c_v, c_m, κ_w, κ_v)``:
    rate multiples and weight decays of :class:`odesolve.protocols.Protocol`, i.e.
    ``ΔW = c_w (η/D)(−∇_W ℓ − κ_w W)``, ``ΔV = c_v η(−∇_V ℓ − κ_v V/D)``,
    ``Δm = c_m (η/D)(−∂ℓ/∂m)`` (tied: the shared vector takes c_w and κ_w).
    """
    c_w, c_v, c_m, k_w, k_v = rates
    n, d = X.shape
    D = d if dimension is None else dimension
    K = W.shape[0]
    lam = X @ W.T / np.sqrt(D) + m
    G, Gp = g(lam), gp(lam)
    dW = np.empty((n, K, d))
    dV = np.empty((n, K, d))
    dm = np.zeros((n, K))
    for k in range(K):
        units = range(K) if rule == "sgd" else range(k + 1)
        err = X - sum(G[:, [l]] * V[l] for l in units)          # x − x̂ (possibly truncated)
        signal = err @ V[k] / D * Gp[:, k]                     # (x − x̂)·v_k/D · g'(λ_k)
        encoder = signal[:, None] * X / np.sqrt(D)
        decoder = err * G[:, [k]]
        if tied:
            hebb = decoder / np.sqrt(D)
            dW[:, k] = c_w * lr / D * ((hebb if rule == "sanger" else encoder + hebb) - k_w * W[k])
            dV[:, k] = np.sqrt(D) * dW[:, k]
        else:
            dW[:, k] = c_w * lr / D * (encoder - k_w * W[k])
            dV[:, k] = c_v * lr / D * (decoder - k_v * V[k])
        if train_bias:
            dm[:, k] = c_m * lr / D * signal
    return dW, dV, dm


#: Model variants of the one-step Monte-Carlo check (activation, tied, rule, bias).
CASES = [
    # (activation, tied, rule, bias)
    ("linear", False, "sgd", "none"),
    ("erf", False, "sgd", "none"),
    ("erf", False, "truncated", "none"),
    ("erf", True, "sgd", "none"),
    ("erf", True, "truncated", "none"),
    ("erf", True, "sanger", "none"),
    ("relu", False, "sgd", "none"),
    ("relu", False, "sgd", "trained"),
    ("relu", True, "sgd", "trained"),
    ("relu", False, "truncated", "trained"),
    ("sign", False, "sgd", "none"),
    ("tanh", False, "sgd", "none"),
    ("linear", True, "sanger", "none"),
]


def random_state(model: Autoencoder, rng, D: int = 1000):
    """Weights with O(1) order parameters and O(1) overlaps with the spikes."""
    spec = spiked_covariance(D, spikes=[1.2, 0.6], bulk=0.3)
    W = rng.normal(0.0, 0.6, (model.K, D))
    V = rng.normal(0.0, 0.6, (model.K, D))
    V[:, :2] *= np.sqrt(D)       # decoder overlaps b = v·e/√D of order one on the spikes
    if model.tied:
        V = np.sqrt(D) * W
    m = rng.normal(0.0, 0.5, model.K) if model.has_bias else np.zeros(model.K)
    return spec, W, V, m


def reduce_coordinates(W, V, M):
    """Weights in the coordinates (first M modes, an orthonormal basis of the span of
    the rows' remaining parts); returns ``W, V, basis`` with basis (D − M, r), r ≤ 2K."""
    rest = np.vstack([W, V])[:, M:]
    basis = np.linalg.qr(rest.T)[0] if rest.size else np.zeros((rest.shape[1], 0))
    W, V = (np.concatenate([A[:, :M], A[:, M:] @ basis], axis=1) for A in (W, V))
    return W, V, basis


def monte_carlo_drift(model, spec, W, V, m, lr, rng, n_samples: int = 40_000, chunk=2000,
                      rates=(1.0, 1.0, 1.0, 0.0, 0.0)):
    """Mean and standard error of D·Δ(state vector) over independent SGD steps.

    The step is computed in the coordinates (tracked modes, an orthonormal basis of the
    span of the weights' bulk parts): every inner product the step takes (λ = w·x/√D,
    (x − x̂)·v, and the overlaps of the increment with the weights that the bulk Gram
    matrix records) is the same there as in all D coordinates, so this is the same SGD
    step per sample.  With an isotropic bulk (a spiked covariance) the bulk coordinates
    of x in that basis are themselves i.i.d. N(0, σ²) and are drawn directly, so the cost
    does not grow with D."""
    g, gp = activation_and_derivative(model.activation.name)
    D, M = spec.D, spec.n_tracked
    sqrtD = np.sqrt(D)
    W, V, basis = reduce_coordinates(W, V, M)
    Z = W if model.tied else np.vstack([W, V / sqrtD])       # rows of Y (reduced coordinates)
    bulk = spec.all_eigenvalues[M:]
    isotropic = bulk.size > 0 and np.all(bulk == bulk[0])
    scale = np.sqrt(np.concatenate([spec.all_eigenvalues[:M],
                                    np.full(basis.shape[1], bulk[0] if isotropic else 0.0)]))
    samples = []
    for _ in range(n_samples // chunk):
        if isotropic:
            X = rng.standard_normal((chunk, scale.size)) * scale
        else:
            X = spec.sample(chunk, rng)
            X = np.concatenate([X[:, :M], X[:, M:] @ basis], axis=1)
        dW, dV, dm = sgd_increments(X, W, V, m, lr, g, gp, tied=model.tied, rule=model.rule,
                                    train_bias=model.bias == "trained", rates=rates,
                                    dimension=D)
        dZ = dW if model.tied else np.concatenate([dW, dV / sqrtD], axis=1)
        dY = dZ[:, :, :M]
        # linear part of the change of the bulk Gram matrix (the quadratic part is O(1/D))
        cross = np.einsum("nid,jd->nij", dZ[:, :, M:], Z[:, M:])
        dG = cross + cross.transpose(0, 2, 1)
        samples.append(D * np.concatenate(
            [dY.reshape(chunk, -1), dG.reshape(chunk, -1), dm], axis=1))
    samples = np.concatenate(samples)
    return samples.mean(0), samples.std(0) / np.sqrt(len(samples))


def compiled_drift(model, spec, W, V, m, lr, protocol=None):
    """The compiled right-hand side (bulk=\"finite\", exact at this D) at these weights."""
    state = State.from_weights(model, spec, W, V, m)
    f = rhs_function(compile_model(model), state, lr, bulk="finite", protocol=protocol)
    return f(0.0, state.to_vector())

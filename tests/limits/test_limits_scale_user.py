"""User-supplied activations at any representable scale (``odesolve.limits``).

The kernels of a callable or a sympy expression are computed by Gauss–Hermite quadrature
with the scales of B's rows and of Σ factored out (kernels.py, ``_quadrature_factors``):
only the activation itself meets the true scale.  Before, tanh at rows of 1e-200 gave a
risk of 1.0 (the kernels underflowed: nothing explained) where tanh is linear, and tanh at
1e200 or x³ at 1e120 leaked numpy overflow warnings.  The oracles: an independent, direct
Gauss–Hermite quadrature on the unscaled covariance (written here), the scale identities
of the risk, and the limits of tanh (linear near 0, sign far out).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import sympy
from threadpoolctl import threadpool_limits

from odesolve import limits as L
from odesolve.limits._common import _QUADRATURE_ORDER

X = sympy.Symbol("x")


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(autouse=True)
def _warnings_are_errors():
    """No numpy RuntimeWarning may leak from the factored path."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def relu(u):
    return np.maximum(u, 0)


def cube(u):
    return u**3


def _problem(n=3, d=6, seed=3):
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(d, d))
    return rng.normal(size=(n, d)), M @ M.T / d


def _direct_kernels(B, activations, covariance):
    """K and H by Gauss–Hermite at the true scale, one activation per unit: for each pair
    i ≤ j (the module's rule: unit i on the first axis) the 2×2 covariance is factored,
    (λ_i, λ_j) = (a z₁, c z₁ + e z₂), and E[x g(λ_i)] = Σb_i E[λ_i g(λ_i)]/C_ii (Stein)."""
    t, w = np.polynomial.hermite_e.hermegauss(_QUADRATURE_ORDER)
    w = w / w.sum()
    C = B @ covariance @ B.T
    n = len(B)
    K, e = np.zeros((n, n)), np.zeros(n)
    for i in range(n):
        a = np.sqrt(C[i, i])
        e[i] = np.sum(w * a * t * activations[i](a * t))
        for j in range(i, n):
            c = C[i, j] / a
            second = np.sqrt(max(C[j, j] - c**2, 0.0))
            z1, z2 = np.meshgrid(t, t, indexing="ij")
            K[i, j] = K[j, i] = np.sum(np.outer(w, w) * activations[i](a * z1)
                                       * activations[j](c * z1 + second * z2))
    return K, (covariance @ B.T) * (e / np.diag(C))[None, :]


def _direct_risk(B, activations, covariance):
    K, H = _direct_kernels(B, activations, covariance)
    return (np.trace(covariance) - np.sum(H * (H @ np.linalg.pinv(K, rcond=1e-12)))) / B.shape[1]


# --------------------------------------------------------------------------- ordinary scales
@pytest.mark.parametrize("activation, g", [
    (np.tanh, np.tanh), (X**3 - X, lambda u: u**3 - u), (relu, relu),
    (sympy.exp(-X**2), lambda u: np.exp(-u**2)), (lambda u: np.sin(2 * u) + 0.3, None)])
def test_the_factored_quadrature_is_the_direct_one_at_ordinary_scales(activation, g):
    """Same rule, other arithmetic: agreement to rounding (1e-10), kernels and risks."""
    g = g or activation
    B, cov = _problem()
    B[1] *= 3.0                                   # exp(−x²) at σ ≈ 10: its tails underflow
    K, H = L.activation_kernels(B, activation, cov)
    K_ref, H_ref = _direct_kernels(B, [g] * 3, cov)
    np.testing.assert_allclose(K, K_ref, rtol=0, atol=1e-10 * np.abs(K_ref).max())
    np.testing.assert_allclose(H, H_ref, rtol=0, atol=1e-10 * np.abs(H_ref).max())
    assert L.optimal_risk(B, activation, cov) == pytest.approx(_direct_risk(B, [g] * 3, cov),
                                                               rel=1e-10)
    A = np.random.default_rng(0).normal(size=(6, 3))
    direct = (np.trace(cov) - 2 * np.sum(A * H_ref) + np.sum((A @ K_ref) * A)) / 6
    assert L.population_risk(A, B, activation, cov) == pytest.approx(direct, rel=1e-10)


# --------------------------------------------------------------------------- extreme scales
def test_tanh_is_linear_at_tiny_rows_and_sign_at_huge_ones():
    """At 1e-200 tanh(λ) = λ in floating point: the linear (PCA) risk, 1/2 for three rows
    of d = 6 with Σ = I (it was 1.0).  At 1e200 tanh(λ) = sign(λ) at every node: the same
    quadrature as for np.sign, which differs from the closed-form arcsine kernel by the
    quadrature error of a jump, of the order of the node spacing, 1/√order (docstring of
    _quadrature_factors; 0.03 here)."""
    B, cov = _problem()
    for covariance in (None, cov):
        linear = L.optimal_risk(B, "linear", covariance)
        sign = L.optimal_risk(B, np.sign, covariance)
        for scale in (1e-300, 1e-200, 1e-100):
            tanh = L.optimal_risk(B * scale, np.tanh, covariance)
            assert tanh == pytest.approx(linear, rel=1e-12)
        for scale in (1e100, 1e200, 1e300):
            assert L.optimal_risk(B * scale, np.tanh, covariance) == pytest.approx(sign, rel=1e-12)
        assert sign == pytest.approx(L.optimal_risk(B, "sign", covariance),
                                     abs=1 / np.sqrt(_QUADRATURE_ORDER))
    assert L.optimal_risk(B * 1e-200, np.tanh) == pytest.approx(0.5, rel=1e-12)


def test_homogeneous_user_activations_are_row_scale_invariant():
    """The optimal decoder absorbs a rescaled feature: relu(aλ) = a relu(λ), (aλ)³ = a³λ³.
    The callable ReLU is the named one up to the quadrature error of its kink (3e-3)."""
    B, cov = _problem(n=4)
    mixed = np.array([1e-200, 1.0, 1e200, 1e-30])[:, None]
    base = L.optimal_risk(B, relu, cov)
    assert base == pytest.approx(L.optimal_risk(B, "relu", cov), abs=3e-3)
    for rows in (1e-200 * B, 1e-100 * B, 1e100 * B, 1e200 * B, mixed * B):
        assert L.optimal_risk(rows, relu, cov) == pytest.approx(base, rel=1e-12)
        assert L.optimal_risk(rows, relu, cov) == pytest.approx(L.optimal_risk(rows, "relu", cov),
                                                                abs=3e-3)
    base = L.optimal_risk(B, cube, cov)
    for rows in (1e-90 * B, 1e90 * B, np.array([1e-90, 1.0, 1e90, 1e-30])[:, None] * B):
        assert L.optimal_risk(rows, cube, cov) == pytest.approx(base, rel=1e-12)
    # σ = √s·‖b‖·√ṽ = 1e4 · 1e306 · 1e-10 is representable though √s·‖b‖ is not
    thin = np.diag([1e8, 1e-12])
    np.testing.assert_allclose(1e306 * L.optimal_decoder([[0.0, 1e306]], relu, thin),
                               L.optimal_decoder([[0.0, 1.0]], relu, thin), rtol=1e-12)


@pytest.mark.parametrize("activation, scales", [
    (np.tanh, (1e-300, 1e-4, 1e4, 1e300)), (cube, (1e-100, 1e100)),
    (sympy.tanh(X) + X / 4, (1e-300, 1e300))])
def test_covariance_scale_identity(activation, scales):
    """x = √s x': risk(B, sΣ) = s·risk(√s B, Σ); for a degree-3 homogeneous activation
    the rows' scale is absorbed, so risk(B, sΣ) = s·risk(B, Σ)."""
    B, cov = _problem()
    for s in scales:
        assert (L.optimal_risk(B, activation, s * cov) / s
                == pytest.approx(L.optimal_risk(np.sqrt(s) * B, activation, cov), rel=1e-12))
        if activation is cube:
            assert (L.optimal_risk(B, cube, s * cov) / s
                    == pytest.approx(L.optimal_risk(B, cube, cov), rel=1e-12))


def test_sympy_expressions_are_the_callables():
    B, cov = _problem()
    for scale in (1e-200, 1.0, 1e200):
        assert (L.optimal_risk(B * scale, sympy.tanh(X), cov)
                == pytest.approx(L.optimal_risk(B * scale, np.tanh, cov), rel=1e-14))


@pytest.mark.parametrize("activation", [np.tanh, relu, sympy.tanh(X)])
def test_the_optimal_decoder_has_the_optimal_risk_at_any_scale(activation):
    B, cov = _problem()
    for scale in (1e-200, 1.0, 1e200):
        decoder = L.optimal_decoder(B * scale, activation, cov)
        assert np.all(np.isfinite(decoder))
        assert (L.population_risk(decoder, B * scale, activation, cov)
                == pytest.approx(L.optimal_risk(B * scale, activation, cov), rel=1e-9))
        if activation is relu:                   # the decoder absorbs the rows' scale
            np.testing.assert_allclose(decoder * scale, L.optimal_decoder(B, relu, cov),
                                       rtol=1e-12)


def test_dead_units_and_null_rows_are_zero_features():
    """relu(x − 1) at σ = 1e-200 is exactly 0 without underflow: a dead unit (decoder
    column 0, nothing explained), not an error.  A row in Σ's null space at 1e200 has
    the pre-activation 0, so tanh gives the zero feature (it overflowed before)."""
    B, cov = _problem()
    shifted = lambda u: np.maximum(u - 1, 0)                         # noqa: E731
    assert L.optimal_risk(B * 1e-200, shifted, cov) == pytest.approx(np.trace(cov) / 6,
                                                                     rel=1e-12)
    rows = B * np.array([1e-200, 1.0, 1.0])[:, None]
    assert L.optimal_risk(rows, shifted, cov) == pytest.approx(L.optimal_risk(B[1:], shifted, cov),
                                                               rel=1e-12)
    assert np.all(L.optimal_decoder(rows, shifted, cov)[:, 0] == 0)
    # the tails of the healthy units underflow (numpy's flag is up: exp(−e^{|u|/100}) at
    # the far nodes, |u| ≈ 900), the tiny unit's values are exact zeros without underflow:
    # still a dead unit, wherever it stands (the damping is smooth on the nodes' scale,
    # so the quadrature kernel is PSD; a bump of width 1 there is not, and is refused)
    damped = lambda u: np.maximum(u - 1, 0) * np.exp(-np.exp(np.abs(u) / 100))  # noqa: E731
    for scales in ([1e-200, 1e2, 1e2], [1e2, 1e2, 1e-200]):
        rows = B * np.array(scales)[:, None]
        alive = rows[np.abs(rows).max(axis=1) > 1]
        assert (L.optimal_risk(rows, damped, cov)
                == pytest.approx(L.optimal_risk(alive, damped, cov), rel=1e-12))
        decoder = L.optimal_decoder(rows, damped, cov)
        assert np.all(decoder[:, np.abs(rows).max(axis=1) < 1] == 0)
    # relu(x − 1) at σ ≈ 0.07 vanishes at every node σ t_a, not at every 2-D node: it is
    # the zero feature of this quadrature, its kernel row zero (K̃ stays PSD)
    rows = B.copy()
    rows[2] *= 0.07 / np.sqrt(rows[2] @ cov @ rows[2])
    K, _ = L.activation_kernels(rows, shifted, cov)
    assert np.all(K[2] == 0) and np.all(L.optimal_decoder(rows, shifted, cov)[:, 2] == 0)
    U = np.linalg.qr(np.random.default_rng(0).standard_normal((5, 5)))[0]
    singular = U[:, :3] @ np.diag([3.0, 2.0, 1.0]) @ U[:, :3].T
    null = np.vstack([1e200 * U[:, 3], U[:, 0]])
    assert L.optimal_risk(null, np.tanh, singular) == pytest.approx(
        L.optimal_risk(U[:, :1].T, np.tanh, singular), rel=1e-12)
    assert np.all(L.optimal_decoder(null, np.tanh, singular)[:, 0] == 0)


# --------------------------------------------------------------------------- errors
B0, COV0 = _problem()


def _entry_points(B, activation):
    return [lambda: L.optimal_risk(B, activation, COV0),
            lambda: L.optimal_decoder(B, activation, COV0),
            lambda: L.population_risk(np.ones((6, 3)), B, activation, COV0),
            lambda: L.activation_kernels(B, activation, COV0)]


@pytest.mark.parametrize("B, activation, message", [
    (1e-320 * B0, np.tanh, r"order 1e-3\d\d.*, beyond floating point for a user-supplied"),
    (1e307 * B0, np.tanh, r"order 1e30\d.*, beyond floating point for a user-supplied"),
    (1e120 * B0, cube, r"activation cube overflows at the scale of units \[0, 1, 2\]"),
    (1e-200 * B0, cube, r"activation cube underflows at the scale of units \[0, 1, 2\]"),
    (np.array([1.0, 1e-200, 1.0])[:, None] * B0, cube, r"underflows .*units \[1\]"),
    (B0, lambda u: 1e-310 * np.tanh(u), "underflows"),               # subnormal values
    (B0, np.log, r"activation log returns non-finite values"),
    (B0, lambda u: 1 / 0, r"activation <lambda> raised ZeroDivisionError: division by zero"),
    (B0, lambda u: u[0], r"returned shape \(48,\) for an input of shape \(3, 48\)"),
    (B0, lambda u: u + 0j, "returned complex values"),
    (B0, lambda u: np.full(u.shape, "1"), "returned non-numeric values"),
    (B0, lambda u: None, "returned non-numeric values"),
    (B0, lambda u: [u, 1], "ragged"),
    (B0, sympy.Symbol("x") * sympy.Symbol("y"), "one symbol"),
    (B0, "softplux", "unknown activation"),
])
def test_user_activations_fail_with_one_clear_line(B, activation, message):
    for call in _entry_points(B, activation):
        with pytest.raises(ValueError, match=message) as error:
            call()
        assert "\n" not in str(error.value)


def test_kernels_beyond_floating_point_are_refused_but_the_risk_is_not():
    """K = f² K̃ with f ≈ 1e-200 underflows; the factored risk does not need it."""
    with pytest.raises(ValueError, match="the kernels of this activation underflow"):
        L.activation_kernels(1e-200 * B0, np.tanh, COV0)
    with pytest.raises(ValueError, match="the kernels of this activation overflow"):
        L.activation_kernels(1e60 * B0, cube, COV0)
    assert L.optimal_risk(1e60 * B0, cube, COV0) == pytest.approx(L.optimal_risk(B0, cube, COV0),
                                                                  rel=1e-12)


def test_a_kernel_that_quadrature_makes_indefinite_is_refused():
    """50 ReLU units on 5 inputs: the pairwise product rules' errors (≈3e-3 per entry)
    exceed K̃'s small eigenvalues, which gave a negative risk (−0.0129 against the closed
    form's 0.0026); the same units 5 at a time are fine (within 2e-3 of the closed form)."""
    B = np.random.default_rng(0).normal(size=(50, 5))
    relu = lambda x: np.maximum(x, 0)                              # noqa: E731
    for call in (lambda: L.optimal_risk(B, relu), lambda: L.optimal_decoder(B, relu),
                 lambda: L.population_risk(np.zeros((5, 50)), B, relu)):
        with pytest.raises(ValueError, match="not positive semi-definite.*50 units"):
            call()
    assert L.optimal_risk(B[:5], relu) == pytest.approx(L.optimal_risk(B[:5], "relu"), abs=2e-3)


def test_sympy_special_functions_and_expressions_without_code():
    """erf, Bessel and gamma functions are evaluated through scipy (numpy has none of them);
    zoo has no numeric code: one line, not a KeyError from sympy's printer."""
    x = sympy.Symbol("x")
    B = np.random.default_rng(1).normal(size=(3, 5))
    assert L.optimal_risk(B, sympy.erf(x / sympy.sqrt(2))) == pytest.approx(
        L.optimal_risk(B, "erf"), abs=1e-4)
    # J0 is even: E[x J0(λ)] = 0, nothing is explained
    assert L.optimal_risk(B, sympy.besselj(0, x)) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="no numeric code"):
        L.optimal_risk(B, sympy.zoo * x)

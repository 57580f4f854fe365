"""Fundamental limits of two-layer autoencoders (``odesolve.limits``).

Every oracle here is independent of the formula it checks: Monte Carlo averages with
≥ 10⁵ samples, the bound's closed-form values, exact quadratic identities, and
structural facts about frames.
"""
from __future__ import annotations

import numpy as np
import pytest
import sympy
from scipy.special import erf
from threadpoolctl import threadpool_limits

from odesolve import limits as L

C = np.pi / 2 - 1


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """The machine is shared: one BLAS thread is faster than oversubscribed ones."""
    with threadpool_limits(limits=1):
        yield


def _activation_values(name, pre):
    return {"sign": np.sign, "erf": lambda u: erf(u / np.sqrt(2)),
            "relu": lambda u: np.maximum(u, 0), "linear": lambda u: u}[name](pre)


def _monte_carlo_risk(A, B, g, rng, n_samples, covariance=None):
    """Mean and standard error of ‖x − A g(Bx)‖²/d over Gaussian samples."""
    d = B.shape[1]
    x = rng.standard_normal((n_samples, d))
    if covariance is not None:
        x = x @ np.linalg.cholesky(covariance).T
    loss = np.sum((x - g(x @ B.T) @ A.T) ** 2, axis=1) / d
    return loss.mean(), loss.std() / np.sqrt(n_samples)


def _random_pair(rng, n, d):
    return rng.standard_normal((d, n)) / np.sqrt(n), rng.standard_normal((n, d)) / np.sqrt(d)


# --------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("n, d", [(4, 6), (9, 5)])
def test_sign_risk_matches_monte_carlo(n, d):
    rng = np.random.default_rng(n * d)
    A, B = _random_pair(rng, n, d)
    mean, se = _monte_carlo_risk(A, B, np.sign, rng, 200_000)
    assert abs(L.population_risk(A, B) - mean) < 4 * se
    # the optimal decoder's risk is the risk of the pair (A*, B)
    A_star = L.optimal_decoder(B)
    mean, se = _monte_carlo_risk(A_star, B, np.sign, rng, 200_000)
    assert abs(L.optimal_risk(B) - mean) < 4 * se


def test_sign_risk_with_a_covariance_matches_monte_carlo():
    rng = np.random.default_rng(7)
    n, d = 5, 6
    root = rng.standard_normal((d, d))
    covariance = root @ root.T / d + 0.2 * np.eye(d)
    A, B = _random_pair(rng, n, d)
    mean, se = _monte_carlo_risk(A, B, np.sign, rng, 200_000, covariance)
    assert abs(L.population_risk(A, B, covariance=covariance) - mean) < 4 * se
    # the kernels themselves, entry by entry
    x = rng.standard_normal((200_000, d)) @ np.linalg.cholesky(covariance).T
    codes = np.sign(x @ B.T)
    K, H = L.sign_kernel(B, covariance)
    np.testing.assert_allclose(K, codes.T @ codes / len(x), atol=0.01)
    np.testing.assert_allclose(H, x.T @ codes / len(x), atol=0.02)


@pytest.mark.parametrize("activation", ["erf", "relu", "linear"])
def test_named_activation_risks_match_monte_carlo(activation):
    rng = np.random.default_rng(len(activation))
    n, d = 4, 6
    A, B = _random_pair(rng, n, d)
    B *= 2.0                                  # pre-activation variances away from 1
    g = lambda u: _activation_values(activation, u)  # noqa: E731
    mean, se = _monte_carlo_risk(A, B, g, rng, 200_000)
    assert abs(L.population_risk(A, B, activation) - mean) < 4 * se


def test_user_activations_by_quadrature_match_monte_carlo():
    rng = np.random.default_rng(11)
    n, d = 3, 5
    A, B = _random_pair(rng, n, d)
    x = sympy.Symbol("x")
    for activation, g in [(np.tanh, np.tanh), (x**3 - x, lambda u: u**3 - u)]:
        mean, se = _monte_carlo_risk(A, B, g, rng, 200_000)
        assert abs(L.population_risk(A, B, activation) - mean) < 4 * se


def test_quadrature_reproduces_the_closed_forms():
    rng = np.random.default_rng(3)
    covariance = np.diag([2.0, 1.0, 0.5, 0.1])
    B = rng.standard_normal((5, 4))
    B *= np.sqrt(np.linspace(0.5, 2, 5) / np.sum(B**2 * np.diag(covariance), axis=1))[:, None]
    for name, g, tol in [("erf", lambda u: erf(u / np.sqrt(2)), 1e-8),
                         ("linear", lambda u: u, 1e-10),
                         ("relu", lambda u: np.maximum(u, 0), 6e-3)]:  # kink: ∝ 1/order
        K, H = L.activation_kernels(B, name, covariance)
        K_q, H_q = L.activation_kernels(B, g, covariance)
        np.testing.assert_allclose(K_q, K, atol=tol * np.abs(K).max())
        np.testing.assert_allclose(H_q, H, atol=tol * np.abs(H).max())


def test_optimal_decoder_beats_perturbed_decoders():
    rng = np.random.default_rng(5)
    n, d = 12, 8
    B = rng.standard_normal((n, d))
    for activation in ["sign", "erf", "relu"]:
        A_star = L.optimal_decoder(B, activation)
        best = L.population_risk(A_star, B, activation)
        assert best == pytest.approx(L.optimal_risk(B, activation), abs=1e-12)
        K, _ = L.activation_kernels(B, activation)
        for scale in [1e-3, 1e-1, 1.0]:
            E = scale * rng.standard_normal((d, n))
            # the risk is quadratic in A with its minimum at A*: the excess is exact
            excess = L.population_risk(A_star + E, B, activation) - best
            assert excess > 0
            assert excess == pytest.approx(np.sum((E @ K) * E) / d, rel=1e-6, abs=1e-15)


# --------------------------------------------------------------------------- the bound
def test_bound_values_from_the_spec():
    rates = [0.25, 0.5, 1.0, 2.0]
    np.testing.assert_allclose(L.sign_risk_lower_bound(rates),
                               [0.840845, 0.681690, 0.363380, 0.222031], atol=6e-7)
    assert L.sign_risk_lower_bound(1.0) == pytest.approx(C / (1 + C))   # branches meet
    assert L.sign_risk_lower_bound(1 + 1e-12) == pytest.approx(1 - 2 / np.pi)


def test_bound_lies_between_shannon_and_the_trivial_risk():
    rates = np.linspace(0.05, 6, 120)
    bound = L.sign_risk_lower_bound(rates)
    assert np.all(L.rate_distortion(rates) < bound) and np.all(bound < 1)
    assert np.all(np.diff(bound) < 0)


@pytest.mark.parametrize("r", [0.5, 2.0])
def test_explicit_minimiser_reaches_the_bound_at_d_1000(r):
    B = L.tight_frame_encoder(1000, r, np.random.default_rng(0))
    gap = L.optimal_risk(B) - L.sign_risk_lower_bound(r)
    assert -1e-9 < gap < 1e-2
    if r <= 1:
        assert abs(gap) < 1e-10                   # orthonormal rows: exact at every d


def test_tight_frame_gap_shrinks_like_one_over_d():
    gaps = [L.optimal_risk(L.tight_frame_encoder(d, 2.0, np.random.default_rng(d)))
            - L.sign_risk_lower_bound(2.0) for d in (50, 200)]
    assert 0 < gaps[1] < gaps[0]
    assert gaps[0] / gaps[1] == pytest.approx(4, rel=0.3)


def test_frame_structure_explains_the_minimiser():
    rng = np.random.default_rng(2)
    d, r = 100, 2.0
    bound = L.sign_risk_lower_bound(r)
    haar = L.tight_frame_encoder(d, r, rng)
    stacked = np.vstack([np.linalg.qr(rng.standard_normal((d, d)))[0]] * 2)
    gaussian = rng.standard_normal((2 * d, d))
    s_haar, s_stacked, s_gauss = map(L.frame_structure, (haar, stacked, gaussian))
    # the Haar frame is nearly tight and incoherent, close to the Welch bound
    assert s_haar.tightness_error < 0.5 and s_haar.coherence < 0.5
    assert s_haar.rms_overlap == pytest.approx(s_haar.welch_bound, rel=0.05)
    # stacked copies of a basis: exactly tight but fully coherent -> r = 1 risk
    assert s_stacked.tightness_error < 1e-10 and s_stacked.coherence == pytest.approx(1)
    assert L.optimal_risk(stacked) == pytest.approx(1 - 2 / np.pi, abs=1e-9)
    # Gaussian rows: incoherent-ish but far from tight (Marchenko–Pastur spectrum)
    assert s_gauss.tightness_error > 1
    risks = [L.optimal_risk(B) for B in (haar, stacked, gaussian)]
    assert bound < risks[0] < bound + 3e-3 < risks[2] < risks[1]
    # coherence of the Haar frame shrinks with d
    coherence = [L.frame_structure(L.tight_frame_encoder(k, r, rng)).coherence
                 for k in (50, 400)]
    assert coherence[1] < 0.6 * coherence[0]


def test_gaussian_rows_value_from_the_spec():
    B = np.random.default_rng(0).standard_normal((600, 300))
    assert L.optimal_risk(B) == pytest.approx(0.304, abs=0.005)


# --------------------------------------------------------------------------- gradient methods
def test_gradient_descent_reaches_the_bound_at_r_half_d_500():
    res = L.train_population_gd(500, 0.5, steps=30, lr=0.5, rng=np.random.default_rng(0))
    assert res.risk_history[0] - res.limit > 2e-2          # a random start is not there
    assert abs(res.optimal_decoder_risk - L.sign_risk_lower_bound(0.5)) < 2e-2
    assert abs(res.gap) < 1e-8
    assert np.all(np.diff(res.risk_history) <= 1e-12)
    np.testing.assert_allclose(res.encoder @ res.encoder.T, np.eye(250), atol=1e-6)


@pytest.mark.parametrize("decoder, lr", [("optimal", 0.5), ("joint", 0.1)])
def test_gradient_descent_above_rate_one(decoder, lr):
    res = L.train_population_gd(40, 2.0, steps=300, lr=lr, rng=np.random.default_rng(1),
                                decoder=decoder)
    assert res.risk_history[0] - res.limit > 0.05
    assert 0 < res.gap < 3e-3
    assert res.risk == pytest.approx(L.population_risk(res.decoder, res.encoder), abs=1e-12)
    assert L.frame_structure(res.encoder).tightness_error < 0.5


@pytest.mark.slow
def test_gradient_descent_gap_above_rate_one_converges_to_0_029_over_d():
    """docs/limits.md: at r = 2 the 300-step d·gap (0.036 at d = 50) is a snapshot; after
    10⁴ steps it has converged to 0.0291 (d = 50 and d = 100 agree; d = 50 tested)."""
    d = 50
    res = L.train_population_gd(d, 2.0, steps=10_000, lr=1.0, rng=np.random.default_rng(2023))
    gap_d = (res.risk_history - res.limit) * d
    assert gap_d[300] == pytest.approx(0.036, abs=0.002)
    assert gap_d[3000] == pytest.approx(0.0298, abs=0.0005)
    assert gap_d[-1] == pytest.approx(0.0291, abs=0.0005)
    assert gap_d[-1] - gap_d[-1001] > -1e-4 and abs(gap_d[-1] - gap_d[-1001]) < 2e-4


@pytest.mark.slow
def test_sign_encoders_trained_on_digits_beat_the_gaussian_prediction_only_on_images():
    """docs/limits.md: at r = 0.25 an encoder trained by SGD on the digits beats the
    water-filling (Gaussian) prediction on held-out images, not on Gaussian samples with
    the same covariance; the same training on Gaussian samples does not beat it on images."""
    from odesolve.spec.images import raw_images

    rng = np.random.default_rng(0)
    images = raw_images("digits")
    order = rng.permutation(len(images))
    n_test = round(0.3 * len(images))
    train, test = images[order[n_test:]], images[order[:n_test]]
    mean = train.mean(axis=0)
    cov = (train - mean).T @ (train - mean) / len(train)
    scale = np.sqrt(np.trace(cov) / cov.shape[0])
    train, test, cov = (train - mean) / scale, (test - mean) / scale, cov / scale**2
    eigenvalues, vectors = np.linalg.eigh(cov)
    eigenvalues = np.clip(eigenvalues, 0, None)
    root = (vectors * np.sqrt(eigenvalues)) @ vectors.T
    gauss_train, gauss_test = (rng.standard_normal((n, 64)) @ root for n in (len(train), 20000))
    d, n = 64, 16
    step = 0.5 / eigenvalues.max()

    def held_out(B, fit, check):
        decoder = np.linalg.lstsq(np.sign(fit @ B.T), fit, rcond=None)[0]
        return np.mean(np.sum((check - np.sign(check @ B.T) @ decoder) ** 2, axis=1)) / d

    prediction = L.waterfilling_risk(eigenvalues, n)
    assert prediction == pytest.approx(0.415, abs=0.002)
    on_images = L.train_sgd(d, n / d, 2000, step, rng, data=train).encoder
    on_gaussian = L.train_sgd(d, n / d, 2000, step, rng, covariance=cov).encoder
    assert held_out(on_images, train, test) < prediction - 0.05              # 0.340
    assert held_out(on_images, gauss_train, gauss_test) > prediction         # 0.426
    assert held_out(on_gaussian, train, test) > held_out(on_images, train, test) + 0.04
    assert L.optimal_risk(on_gaussian, "sign", cov) == pytest.approx(prediction, abs=0.005)


def test_joint_gradient_descent_with_a_large_step_diverges_clearly():
    from odesolve.errors import DivergenceError

    with pytest.raises(DivergenceError, match="learning rate"):
        L.train_population_gd(40, 2.0, steps=300, lr=2.0, rng=np.random.default_rng(1),
                              decoder="joint")


@pytest.mark.parametrize("method", ["kernel", "tanh", "straight_through"])
@pytest.mark.parametrize("d,lr", [(100, 0.5), (100, 1.0), (10, 10.0)])
def test_sgd_with_a_large_step_diverges_clearly(d, lr, method):
    """Beyond the decoder's stability limit SGD grows it geometrically: the run once
    returned a risk of 1.3e131 (d = 100, lr = 0.5), or blamed a zero-norm encoder row
    on the user (lr = 1).  Now a DivergenceError names the step and the runaway."""
    from odesolve.errors import DivergenceError

    with pytest.raises(DivergenceError, match=r"SGD step \d+.*the decoder ran away"):
        L.train_sgd(d, 0.5, 100, lr, np.random.default_rng(0), method=method)


def test_sgd_below_the_stability_limit_runs_to_the_end():
    """lr = 0.3 at d = 100 is stable: no false alarm, and the risk is below the zero
    decoder's (1 in these units)."""
    res = L.train_sgd(100, 0.5, 100, 0.3, np.random.default_rng(0))
    assert res.risk < 1.0 and np.isfinite(res.decoder).all()


def test_waterfilling_matches_gradient_descent_on_anisotropic_data():
    d = 60
    eigenvalues = np.r_[4.0 * np.ones(15), 0.25 * np.ones(45)]
    eigenvalues /= eigenvalues.mean()
    covariance = np.diag(eigenvalues)
    for r in (0.5, 2.0):
        n = int(r * d)
        mu = L.waterfilling_allocation(eigenvalues, n)
        assert mu.sum() == pytest.approx(n) and np.all(mu >= 0)
        res = L.train_population_gd(d, r, steps=400, lr=0.5 / eigenvalues.max(),
                                    rng=np.random.default_rng(2), covariance=covariance)
        assert res.limit == pytest.approx(L.waterfilling_risk(eigenvalues, n))
        assert -1e-3 < res.gap < 4e-3
    # orthogonal sign units on the top principal components are not optimal
    top = np.eye(d)[: d // 2]
    assert L.optimal_risk(top, covariance=covariance) > \
        L.waterfilling_risk(eigenvalues, d // 2) + 0.05


def test_waterfilling_reduces_to_the_bound_for_isotropic_data():
    for d, n in [(100, 25), (100, 50), (100, 100), (100, 200), (50, 150)]:
        assert L.waterfilling_risk(np.ones(d), n) == pytest.approx(
            L.sign_risk_lower_bound(n / d), abs=1e-12)


@pytest.mark.parametrize("method", L.SGD_METHODS)
def test_sgd_from_samples_approaches_the_bound(method):
    res = L.train_sgd(30, 0.5, steps=800, lr=0.02, rng=np.random.default_rng(4),
                      method=method, batch_size=128)
    assert res.risk_history[0] - res.limit > 0.03
    assert res.gap < {"kernel": 1e-4, "straight_through": 1e-3, "tanh": 3e-3}[method]
    assert res.risk - res.limit < 1e-2                     # with the decoder SGD learnt


def test_sgd_on_a_data_array():
    rng = np.random.default_rng(6)
    data = rng.standard_normal((2000, 10)) * np.sqrt(np.linspace(2, 0.5, 10))
    res = L.train_sgd(10, 1.0, steps=300, lr=0.05, rng=rng, data=data)
    covariance = data.T @ data / len(data)
    assert res.limit == pytest.approx(L.waterfilling_risk(np.linalg.eigvalsh(covariance), 10))
    assert res.gap < 0.02


# --------------------------------------------------------------------------- references
def test_pca_and_rate_distortion_references():
    np.testing.assert_allclose(L.pca_risk([0.25, 1.0, 3.0]), [0.75, 0.0, 0.0])
    np.testing.assert_allclose(L.rate_distortion([0.0001, 1.0, 2.0]),
                               [2 ** -0.0002, 0.25, 1 / 16])
    # reverse water-filling: the rate of the returned distortion is the requested rate
    eigenvalues = np.array([5.0, 2.0, 0.6, 0.3, 0.1, 0.0])
    for r in (0.1, 0.5, 1.5):
        D = L.rate_distortion(r, eigenvalues) * eigenvalues.size
        theta = _solve_water_level(eigenvalues, D)
        bits = np.sum(np.maximum(0, 0.5 * np.log2(eigenvalues[eigenvalues > 0] / theta)))
        assert bits == pytest.approx(r * eigenvalues.size, rel=1e-9)
    assert float(L.pca_risk(0.5, eigenvalues)) == pytest.approx(0.4 / 6)


def _solve_water_level(eigenvalues, total_distortion):
    """θ with Σ min(θ, λ_j) = total_distortion, by bisection."""
    low, high = 0.0, eigenvalues.max()
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if np.minimum(mid, eigenvalues).sum() < total_distortion \
            else (low, mid)
    return (low + high) / 2


def test_comparisons_return_consistent_curves():
    cmp = L.compare_isotropic(np.linspace(0.1, 3, 30), d=20, rng=np.random.default_rng(0),
                              trained_rates=[0.5, 2.0], steps=100)
    bound = cmp.curves["sign AE lower bound"]
    assert np.all(cmp.curves[next(k for k in cmp.curves if "Shannon" in k)] < bound)
    trained = next(iter(cmp.trained.values()))
    assert np.all(trained >= L.sign_risk_lower_bound(cmp.trained_rates) - 1e-12)
    assert np.all(trained < L.sign_risk_lower_bound(cmp.trained_rates) + 5e-3)

    images = L.compare_image_data([0.5, 1.0], np.random.default_rng(0), dataset="digits",
                                  trained_rates=[0.5], steps=100, sgd_steps=0)
    closed = images.trained["sign AE, GD on the Gaussian risk: closed form"]
    held_out = images.trained["sign AE, GD on the Gaussian risk: held-out images"]
    limit = images.curves[L.comparisons.WATERFILLING_LABEL]
    assert abs(held_out[0] - closed[0]) < 0.03              # universality of the risk
    assert limit[0] < closed[0] < limit[0] + 0.02


# --------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("call, message", [
    (lambda: L.sign_risk_lower_bound(0.0), "rate"),
    (lambda: L.sign_risk_lower_bound([0.5, -1.0]), "rate"),
    (lambda: L.tight_frame_encoder(10.5, 2.0, np.random.default_rng()), "positive integer"),
    (lambda: L.tight_frame_encoder(10, 0.33, np.random.default_rng()), "integer number"),
    (lambda: L.tight_frame_encoder(10, 2.0, 0), "Generator"),
    (lambda: L.train_population_gd(True, 1.0, 5, 0.1, np.random.default_rng()),
     "positive integer"),
    (lambda: L.sign_kernel(np.array([[1.0, 0.0], [0.0, 0.0]])), r"rows \[1\] have zero norm"),
    (lambda: L.sign_kernel(np.eye(2), np.diag([1.0, 0.0])), "zero variance"),
    (lambda: L.population_risk(np.zeros((3, 2)), np.eye(2)), r"shape \(2, 2\)"),
    (lambda: L.optimal_risk(np.ones(3)), "2-D"),
    (lambda: L.optimal_risk(np.eye(2), covariance=np.array([[1.0, 2.0], [2.0, 1.0]])),
     "positive semi-definite"),
    (lambda: L.optimal_risk(np.eye(2), covariance=np.array([[1.0, 0.5], [0.0, 1.0]])),
     "symmetric"),
    (lambda: L.optimal_risk(np.eye(2), covariance=np.eye(3)), r"shape \(2, 2\)"),
    (lambda: L.optimal_risk(np.eye(2), "softplux"), "unknown activation"),
    (lambda: L.train_sgd(10, 1.0, 5, 0.1, np.random.default_rng(), method="adam"),
     "unknown method"),
    (lambda: L.waterfilling_risk([1.0, -2.0], 1), "non-negative"),
])
def test_bad_inputs_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("activation", ["sign", "relu", "linear", "erf"])
def test_optimal_risk_at_any_representable_scale(activation):
    """At 1e±150 the kernels under- or overflowed: linear and ReLU gave 1.0 at B·1e-200
    (nothing explained), sign refused B·1e-200 as 'zero variance', and B·1e200 overflowed.
    The risk is s·risk(√s B, Σ/s); for the homogeneous activations it does not depend on
    the scale of B's rows; erf tends to linear for small rows and to sign for large ones."""
    import warnings
    rng = np.random.default_rng(3)
    B = rng.normal(size=(3, 6))
    M = rng.normal(size=(6, 6))
    cov = M @ M.T / 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        base = L.optimal_risk(B, activation, cov)
        for scale in (1e-200, 1e-150, 1e-90, 1e78, 5e99, 1e150, 1e200):
            same = base if activation != "erf" else L.optimal_risk(B * np.sqrt(scale), "erf", cov)
            assert L.optimal_risk(B, activation, cov * scale) / scale == pytest.approx(same, rel=1e-12)
            rows = L.optimal_risk(B * scale, activation, cov)
            if activation != "erf":
                assert rows == pytest.approx(base, rel=1e-12)
            else:
                limit = "linear" if scale < 1 else "sign"
                assert rows == pytest.approx(L.optimal_risk(B, limit, cov), rel=1e-12)
    if activation == "erf":
        # the approach to the sign limit is smooth (no cancellation near arcsin(1))
        gaps = [L.optimal_risk(B * a, "erf", cov) - L.optimal_risk(B, "sign", cov) for a in (1e3, 1e5)]
        assert gaps[0] < gaps[1] < 0 and gaps[1] / gaps[0] == pytest.approx(1e-2, rel=0.05)



def test_limits_at_mixed_scales_null_rows_and_the_edges_of_floating_point():
    """Faults found by attacking the scale handling: rows of scales 1e-5 and 1e5 (K too
    ill-conditioned for the pseudo-inverse: linear gave 0.5 for 0), a covariance of 1e308
    (NaN), a small but informative variance (sign: a false 'zero variance'), a ReLU row
    in Σ's null space (NaN), the optimal decoder's risk at 1e-200 (−1), empty encoders and
    integers beyond floating point (tracebacks from numpy)."""
    import warnings
    I2 = np.eye(2)
    rng = np.random.default_rng(1)
    B = rng.standard_normal((4, 6))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert L.optimal_risk(np.diag([1e-5, 1e5]), "linear") == pytest.approx(0.0, abs=1e-15)
        for activation in ("sign", "relu", "linear"):
            mixed = B * np.array([1e-30, 1.0, 1e30, 1e-200])[:, None]
            assert L.optimal_risk(mixed, activation) == pytest.approx(L.optimal_risk(B, activation),
                                                                       rel=1e-12)
            assert (L.optimal_risk(I2, activation, 1e308 * I2) / 1e308
                    == pytest.approx(L.optimal_risk(I2, activation), rel=1e-12))
            for scale in (1e-200, 1e200):
                decoder = L.optimal_decoder(scale * B, activation)
                assert (L.population_risk(decoder, scale * B, activation)
                        == pytest.approx(L.optimal_risk(B, activation), rel=1e-9))
        # one unit reading a coordinate of variance 1e-20: sign(x₂) is as informative as ever
        assert L.optimal_risk([[0.0, 1.0]], "sign", np.diag([1.0, 1e-20])) == pytest.approx(0.5)
        # ReLU: a row in the null space of a rank-3 Σ is a dead unit; the other explains
        # |Σb|²/(2v) = 9/6 of tr Σ = 6 (d = 5)
        U = np.linalg.qr(np.random.default_rng(0).standard_normal((5, 5)))[0]
        cov = U[:, :3] @ np.diag([3.0, 2.0, 1.0]) @ U[:, :3].T
        assert L.optimal_risk(np.vstack([U[:, 3], U[:, 0]]), "relu", cov) == pytest.approx(0.9)
        # erf: a null row at 1e200 is the zero feature, with a zero decoder column
        null = np.array([[0.0, 1e200], [1.0, 0.0]])
        decoder = L.optimal_decoder(null, "erf", np.diag([1.0, 0.0]))
        assert np.all(decoder[:, 0] == 0) and np.all(np.isfinite(decoder))
    with pytest.raises(ValueError, match="underflow"):
        L.activation_kernels(1e-200 * I2, "linear")
    for empty in (np.zeros((0, 2)), np.zeros((2, 0))):
        with pytest.raises(ValueError, match="at least one row and one column"):
            L.optimal_risk(empty)
    with pytest.raises(ValueError, match="beyond the range of floating point"):
        L.optimal_risk(np.array([[10**400, 0]], dtype=object))


@pytest.mark.parametrize("spec,named", [
    ("ReLU", "relu"), ("  Sign ", "sign"), ("Max(0, x)", "relu"), ("erf(x/sqrt(2))", "erf"),
    ("x", "linear"),
])
def test_limits_take_the_models_spellings_of_named_activations(spec, named):
    """Only the four lower-case names were taken: "ReLU" or "Max(0, x)" were refused although
    Autoencoder takes them.  They are the same function, so the same closed form."""
    B = np.random.default_rng(0).normal(size=(3, 5))
    assert L.optimal_risk(B, spec) == L.optimal_risk(B, named)


@pytest.mark.parametrize("spec,same", [
    ("tanh", np.tanh), ("x**2", lambda u: u**2), ("sigmoid(x)", lambda u: 1 / (1 + np.exp(-u))),
    ("Heaviside(x - 0.3)", sympy.Heaviside(sympy.Symbol("u") - 0.3)),
])
def test_limits_take_every_activation_the_model_takes(spec, same):
    """Every other activation of the model goes to the quadrature of user activations (a
    step as a sympy expression, whose jump the quadrature finds as it does the model's)."""
    from odesolve import Autoencoder
    B = np.random.default_rng(0).normal(size=(3, 5))
    expected = L.optimal_risk(B, same)
    assert L.optimal_risk(B, spec) == pytest.approx(expected, rel=1e-12)
    assert L.optimal_risk(B, Autoencoder(K=2, activation=spec).activation) == pytest.approx(
        expected, rel=1e-12)


def test_limits_refuse_what_the_model_refuses():
    with pytest.raises(ValueError, match="invalid activation 'sqrt.*not real-valued"):
        L.optimal_risk(np.eye(2), "sqrt(x + 2.5)")


@pytest.mark.parametrize("rate", [0.3, [0.25, 0.3], 0.1])
def test_pca_risk_refuses_fractional_unit_counts(rate):
    """pca_risk(0.3, 4 eigenvalues) used n = 1 for r·d = 1.2; tight_frame_encoder refuses
    such a rate, and so does pca_risk now."""
    with pytest.raises(ValueError, match=r"r·d must be a positive integer number of hidden "
                                         r"units, got r = 0.(3|1), d = 4"):
        L.pca_risk(rate, [3.0, 2.0, 1.0, 0.5])
    assert L.pca_risk([0.25, 0.5, 2.0], [3.0, 2.0, 1.0, 0.5]) == pytest.approx([0.875, 0.375, 0])


def _adaptive_kernel_entry(fn, kinks, C, i, j):
    """E[g(λ_i) g(λ_j)], λ ~ N(0, C), by scipy's adaptive quadrature split at the kinks
    (outer λ_i, inner λ_j given λ_i)."""
    from scipy import integrate
    si, sj = np.sqrt(C[i, i]), np.sqrt(C[j, j])
    rho = C[i, j] / (si * sj)
    s = np.sqrt(max(1.0 - rho * rho, 0.0))
    phi = lambda t: np.exp(-t * t / 2) / np.sqrt(2 * np.pi)  # noqa: E731

    def inner(t):
        points = [(k / sj - rho * t) / s for k in kinks] if s > 0 else None
        return integrate.quad(lambda u: fn(sj * (rho * t + s * u)) * phi(u), -12, 12,
                              points=points, limit=200, epsabs=1e-14, epsrel=1e-12)[0]

    return integrate.quad(lambda t: fn(si * t) * phi(t) * inner(t), -12, 12,
                          points=[k / si for k in kinks], limit=200, epsabs=1e-13,
                          epsrel=1e-11)[0]


@pytest.mark.parametrize("spec,fn,kinks", [
    ("Heaviside(x - 0.3)", lambda z: float(z > 0.3), [0.3]),
    ("Abs(x - 0.1)", lambda z: abs(z - 0.1), [0.1]),
    ("Max(x - 0.2, 0) + Heaviside(-x - 1)", lambda z: max(z - 0.2, 0.0) + float(z < -1), [-1.0, 0.2]),
])
@pytest.mark.parametrize("scale", [0.05, 1.0, 20.0])
@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")    # the reference's
def test_kernels_of_activations_with_kinks_and_jumps_are_exact(spec, fn, kinks, scale):
    """The quadrature of a user activation cuts its panels at the kinks and jumps: the
    kernel of a step was 0.08 off (27 %; Gauss–Hermite nodes straddling the jump) and of
    a kink 3e-3.  Now every entry agrees with adaptive quadrature to 1e-10, at
    pre-activation scales where the kinks lie far out in the tails, and near the centre."""
    B = scale * np.random.default_rng(0).standard_normal((4, 8)) / np.sqrt(8)
    K, H = L.activation_kernels(B, spec)
    C = B @ B.T
    for i, j in [(0, 0), (0, 1), (1, 2), (0, 3), (3, 3)]:
        assert K[i, j] == pytest.approx(_adaptive_kernel_entry(fn, kinks, C, i, j), rel=1e-10,
                                        abs=1e-13)
    # H = E[x g(Bx)ᵀ] = Bᵀ diag(E[λ g(λ)]/q) by Stein's lemma, each entry a 1-D average
    from scipy import integrate
    for i in range(4):
        sd = np.sqrt(C[i, i])
        moment = integrate.quad(lambda t: sd * t * fn(sd * t) * np.exp(-t * t / 2)
                                / np.sqrt(2 * np.pi), -12, 12, points=[k / sd for k in kinks],
                                limit=200, epsabs=1e-14, epsrel=1e-12)[0]
        np.testing.assert_allclose(H[:, i], B[i] * moment / C[i, i], rtol=1e-9, atol=1e-13)

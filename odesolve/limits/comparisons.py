"""Comparisons against the rate r = n/d, on isotropic Gaussian data and on real images."""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ..spec.images import raw_images
from .._threads import small_matrices
from ._common import _check_dimension, _check_rate, _check_rng
from .frames import waterfilling_risk
from .risks import optimal_risk, pca_risk, rate_distortion, sign_risk_lower_bound
from .training import train_population_gd, train_sgd

# --------------------------------------------------------------------------- comparisons
@dataclass(frozen=True)
class RateComparison:
    """MSE against rate for the sign autoencoder and its references.

    Attributes
    ----------
    rates : ndarray
        Rates ``n/d`` of the theory curves.
    curves : dict of str to ndarray
        Theory curves on ``rates``, keyed by a plot label.
    trained_rates : ndarray
        Rates at which autoencoders were trained.
    trained : dict of str to ndarray
        Measured risks at ``trained_rates``, keyed by a plot label.
    title : str
        What the data are.
    """

    rates: np.ndarray
    curves: dict
    trained_rates: np.ndarray
    trained: dict
    title: str

#: Labels of the reference curves shared by both comparisons.
_PCA_LABEL = "PCA / linear AE, n real-valued units (not the same bit budget)"
_SHANNON_LABEL = "Shannon D(R), R = r bits per coordinate"
#: Label of the water-filling curve of :func:`compare_image_data`: a prediction for a
#: Gaussian source, not a limit for the images.
WATERFILLING_LABEL = "sign AE, Gaussian prediction (water-filling, same covariance)"


def _unit_counts(d: int, rates) -> np.ndarray:
    """Distinct hidden-unit counts ``n = round(r·d) ≥ 1`` for the given rates."""
    rate = _check_rate(np.atleast_1d(rates))
    return np.unique(np.maximum(1, np.rint(rate * d).astype(int)))


@small_matrices
def compare_isotropic(rates, d, rng, trained_rates=(0.25, 0.5, 1.0, 1.5, 2.0, 3.0),
                      steps=300, lr=0.5) -> RateComparison:
    """Sign-autoencoder limit, trained sign autoencoders, PCA and Shannon for ``N(0, I_d)``.

    Parameters
    ----------
    rates : array_like
        Rates of the theory curves.
    d : int
        Input dimension of the trained autoencoders (``n = round(r·d)``).
    rng : numpy.random.Generator
    trained_rates : array_like
        Rates at which :func:`train_population_gd` (optimal decoder) is run.
    steps, lr
        Passed to :func:`train_population_gd`.

    Returns
    -------
    RateComparison

    Examples
    --------
    >>> cmp = compare_isotropic([0.5, 2.0], d=20, rng=np.random.default_rng(0),
    ...                         trained_rates=[0.5], steps=50)
    >>> list(cmp.curves)[0], cmp.curves["sign AE lower bound"].round(4)
    ('sign AE lower bound', array([0.6817, 0.222 ]))
    >>> bool(abs(cmp.trained["sign AE, population GD (d = 20)"][0] - 0.6817) < 1e-4)
    True
    """
    rate = _check_rate(np.atleast_1d(rates).astype(float))
    d = _check_dimension(d)
    counts = _unit_counts(d, trained_rates)
    risks = [train_population_gd(d, n / d, steps, lr, rng).optimal_decoder_risk
             for n in counts]
    return RateComparison(
        rates=rate,
        curves={"sign AE lower bound": sign_risk_lower_bound(rate),
                _PCA_LABEL: pca_risk(rate),
                _SHANNON_LABEL: rate_distortion(rate)},
        trained_rates=counts / d,
        trained={f"sign AE, population GD (d = {d})": np.array(risks)},
        title="isotropic Gaussian source N(0, I)")

@small_matrices
def compare_image_data(rates, rng, dataset="digits",
                       trained_rates=(0.25, 0.5, 1.0, 1.5, 2.0, 3.0), steps=600, lr=0.5,
                       sgd_steps=2000, test_fraction=0.3) -> RateComparison:
    """The comparison of :func:`compare_isotropic` on real images (universality check).

    The images are split at random into a training and a held-out set, centred with
    the training mean and scaled so that the training covariance ``Σ̂`` has
    ``tr Σ̂ / d = 1`` (not whitened).  Encoders are trained (i) by
    :func:`train_population_gd` on the Gaussian risk with covariance ``Σ̂`` and (ii) by
    :func:`train_sgd` (``method="kernel"``) on the training images themselves; for
    both, the decoder is then fitted by least squares on the training images and the
    MSE is *measured on the held-out images*.  Universality: for a given encoder the
    measured MSE is close to its Gaussian closed form (within 0.025).  The water-filling
    curve is the prediction for a *Gaussian* source with the images' covariance, not a
    bound for the images: an encoder trained on the images themselves beats it (0.34 vs
    0.415 at r = 0.25 on the digits) by exploiting their non-Gaussian structure, while
    the same training on Gaussian samples with that covariance does not (0.40 on the
    images); see docs/limits.md.

    Parameters
    ----------
    rates : array_like
        Rates of the theory curves (``n = round(r·d)``).
    rng : numpy.random.Generator
    dataset : {"digits", "camera"}
        scikit-learn's 8×8 handwritten digits, or 8×8 patches of scikit-image's
        ``camera`` photograph (a dominant mean-brightness direction: outside the
        validity of the water-filling prediction).
    trained_rates : array_like
    steps : int
        Gradient-descent steps.
    lr : float
        Step size in units of ``1/λ_max(Σ̂)`` (for both GD and SGD).
    sgd_steps : int
        SGD steps on the images (batch 256); 0 skips SGD.
    test_fraction : float
        Share of the images held out.

    Returns
    -------
    RateComparison
        Curves: Gaussian prediction of the sign AE (:func:`waterfilling_risk`), PCA and
        Gaussian Shannon ``D(R)`` for the spectrum of ``Σ̂``; trained: the Gaussian
        closed form of the GD encoder and the held-out MSEs.
    """
    rng = _check_rng(rng)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    if isinstance(sgd_steps, bool) or not isinstance(sgd_steps, numbers.Integral) \
            or sgd_steps < 0:
        raise ValueError(f"sgd_steps must be a non-negative integer, got {sgd_steps!r}")
    images = raw_images(dataset)
    order = rng.permutation(images.shape[0])
    n_test = int(round(test_fraction * images.shape[0]))
    train, test = images[order[n_test:]], images[order[:n_test]]
    mean = train.mean(axis=0)
    cov = (train - mean).T @ (train - mean) / train.shape[0]
    scale = np.sqrt(np.trace(cov) / cov.shape[0])
    train, test, cov = (train - mean) / scale, (test - mean) / scale, cov / scale**2
    spectrum = np.clip(np.linalg.eigvalsh(cov), 0, None)
    d = cov.shape[0]
    step_size = lr / spectrum.max()

    def held_out_mse(B: np.ndarray) -> float:
        decoder = np.linalg.lstsq(np.sign(train @ B.T), train, rcond=None)[0]
        residual = test - np.sign(test @ B.T) @ decoder
        return float(np.mean(np.sum(residual**2, axis=1)) / d)

    theory_rates = _unit_counts(d, rates) / d
    counts = _unit_counts(d, trained_rates)
    trained = {"sign AE, GD on the Gaussian risk: closed form": [],
               "sign AE, GD on the Gaussian risk: held-out images": []}
    if sgd_steps:
        trained["sign AE, SGD on the images: closed form"] = []
        trained["sign AE, SGD on the images: held-out images"] = []
    for n in counts:
        B = train_population_gd(d, n / d, steps, step_size, rng, covariance=cov).encoder
        trained["sign AE, GD on the Gaussian risk: closed form"].append(
            optimal_risk(B, "sign", cov))
        trained["sign AE, GD on the Gaussian risk: held-out images"].append(held_out_mse(B))
        if sgd_steps:
            result = train_sgd(d, n / d, sgd_steps, step_size, rng, data=train)
            trained["sign AE, SGD on the images: closed form"].append(
                result.optimal_decoder_risk)
            trained["sign AE, SGD on the images: held-out images"].append(
                held_out_mse(result.encoder))
    name = {"digits": "scikit-learn digits (8×8 images)",
            "camera": "8×8 patches of the 'camera' photograph"}[dataset]
    return RateComparison(
        rates=theory_rates,
        curves={WATERFILLING_LABEL:
                    np.array([waterfilling_risk(spectrum, int(round(q * d)))
                              for q in theory_rates]),
                _PCA_LABEL: pca_risk(theory_rates, spectrum),
                _SHANNON_LABEL + " (Gaussian, same covariance)":
                    rate_distortion(theory_rates, spectrum)},
        trained_rates=counts / d,
        trained={label: np.array(values) for label, values in trained.items()},
        title=f"{name}, centred, d = {d}")

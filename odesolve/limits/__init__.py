"""Fundamental limits of two-layer autoencoders in the proportional regime.

A two-layer autoencoder reconstructs ``x ∈ R^d`` as ``x̂ = A σ(B x)`` with an encoder
``B ∈ R^{n×d}`` and a decoder ``A ∈ R^{d×n}``; the rate is ``r = n/d``.  For Gaussian
inputs ``x ~ N(0, Σ)`` the population risk per input coordinate

    R(A, B) = E‖x − A σ(Bx)‖² / d = (tr Σ − 2 tr(A Hᵀ) + tr(A K Aᵀ)) / d,

with ``K = E[σ(Bx) σ(Bx)ᵀ]`` and ``H = E[x σ(Bx)ᵀ]``, is a closed-form function of
``(A, B)``: the pre-activations ``λ = Bx`` are Gaussian with covariance ``C = B Σ Bᵀ``
and Stein's lemma gives ``H = Σ Bᵀ diag(E[λ_i σ(λ_i)] / C_ii)``.  For ``σ = sign``

    K = (2/π) arcsin(B̃ Σ B̃ᵀ),   H = √(2/π) Σ B̃ᵀ,

where ``B̃`` has rows scaled to unit variance ``b̃_iᵀ Σ b̃_i = 1`` (entrywise arcsine).
The best decoder is ``A* = H K⁺`` and the sign autoencoder can never beat

    R ≥ 1 − 2r/π  (r ≤ 1),      R ≥ (π/2 − 1) / (r + π/2 − 1)  (r > 1)

for isotropic data (:func:`sign_risk_lower_bound`), reached by orthonormal rows
(``r ≤ 1``) and, as ``d → ∞``, by incoherent unit-norm tight frames (``r > 1``,
:func:`tight_frame_encoder`).  See ``docs/limits.md`` for the derivations and the
measured numbers.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> B = tight_frame_encoder(d=200, r=0.5, rng=rng)
>>> round(optimal_risk(B), 6), round(float(sign_risk_lower_bound(0.5)), 6)
(0.68169, 0.68169)

The package is split by concept: :mod:`.kernels`, :mod:`.risks` (risks, decoders and the
curves they are compared with), :mod:`.frames` (minimisers), :mod:`.training` (gradient
methods) and :mod:`.comparisons` (curves against the rate).

References
----------
.. [1] A. Shevchenko, K. Kögler, H. Hassani and M. Mondelli, "Fundamental limits of
   two-layer autoencoders, and achieving them with gradient methods", ICML 2023,
   arXiv:2212.13468.
"""

from .kernels import activation_kernels, sign_kernel
from .risks import (population_risk, optimal_decoder, optimal_risk, sign_risk_lower_bound, pca_risk,
                    rate_distortion)
from .frames import (tight_frame_encoder, FrameStructure, frame_structure, waterfilling_allocation,
                     waterfilling_risk)
from .training import TrainingResult, train_population_gd, train_sgd
from .comparisons import RateComparison, compare_isotropic, compare_image_data
from ..spec.images import RAW_IMAGE_SETS as IMAGE_DATASETS
from ._common import ARCSINE_EXCESS, NAMED_ACTIVATIONS, SGD_METHODS

__all__ = [
    "ARCSINE_EXCESS",
    "NAMED_ACTIVATIONS",
    "activation_kernels",
    "sign_kernel",
    "population_risk",
    "optimal_decoder",
    "optimal_risk",
    "sign_risk_lower_bound",
    "pca_risk",
    "rate_distortion",
    "tight_frame_encoder",
    "FrameStructure",
    "frame_structure",
    "waterfilling_allocation",
    "waterfilling_risk",
    "TrainingResult",
    "train_population_gd",
    "SGD_METHODS",
    "train_sgd",
    "RateComparison",
    "compare_isotropic",
    "IMAGE_DATASETS",
    "compare_image_data",
]

"""Argument checks and initial weights shared by the online and the finite-data simulators."""
from __future__ import annotations

import numpy as np

from odesolve._checks import as_real_array, check_integer, check_positive, check_seed
from odesolve.integrator import time_grid
from odesolve.spec.images import Dataset
from odesolve.state import initial_weights

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
    # as real numbers: complex weights would lose their imaginary part with only a warning
    W = as_real_array("W", W).copy()
    if W.shape != (K, D):
        raise ValueError(f"W must have shape ({K}, {D}), got {W.shape}")
    if rule.tie:
        if V is not None and not np.allclose(as_real_array("V", V), rule.tie * W, rtol=1e-10, atol=1e-12):
            raise ValueError(f"tied weights need V = {rule.tie:g}·W (or V = None)")
        V = np.zeros_like(W)
    elif V is None:
        raise ValueError("untied models need a decoder V")
    V = as_real_array("V", V).copy()
    if V.shape != (K, D):
        raise ValueError(f"V must have shape ({K}, {D}), got {V.shape}")
    m = np.zeros(K) if m is None else as_real_array("m", m).reshape(-1).copy()
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
    return check_positive("learning rate", lr)


def _check_seed(seed) -> int:
    return check_seed("seed", seed)


def _check_count(n, name, minimum=1) -> int:
    return check_integer(name, n, minimum=minimum)


def _check_run(lr, t_max, times, n_times, D):
    """``(lr, total steps, recording steps)`` of a run, checked."""
    lr = _check_lr(lr)
    t_max = check_positive("t_max", t_max)
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

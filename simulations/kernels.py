"""Compiled inner loops of the simulator (numba), written once for every activation.

As shipped, this module is the kernel of the *linear* activation.  For any other
activation :func:`simulations.step.kernel` has the package's one emitter
(:mod:`odesolve.codegen.emit`, which also writes the theory's modules) copy this file to
the cache folder with the two functions between the ``GENERATED`` markers replaced by
the activation's ``g`` and its almost-everywhere derivative ``g'`` (printed from its
sympy expression by the theory's printer), under a header stating g(x), the package
version and the fingerprint; numba inlines them and caches the machine code on disk
(``cache=True`` cannot cache kernels that take functions as arguments).

Conventions shared by every function below (all arrays float64, C-contiguous):

* ``W`` (K, D) encoder; ``V`` (K, D) decoder, left alone for tied weights, whose
  decoder is ``v_k = tie · w_k`` (``tie`` = √D or 1); ``tie = 0`` means untied;
* ``m`` (K,) encoder biases, ``lam``, ``gl`` (K,) and ``e`` (D,) scratch space, so that
  no step allocates;
* ``a`` is the step ``η/D`` (at the step's time, divided by the batch size when a step
  averages a mini-batch) and ``rates = [c_w, c_v, c_m, κ_w, κ_v]`` the protocol's rate
  multiples and decays (:class:`odesolve.protocols.Protocol`; ``[1, 1, 1, 0, 0]``: plain
  SGD).

No ``fastmath``: the additions happen in a fixed order, so a seed gives bit-identical
trajectories on a given machine.
"""
import math

import numpy as np
from numba import njit


# ---- GENERATED: g and g' of the model's activation (odesolve.codegen.emit) ----
@njit(cache=True)
def g(x):
    return x


@njit(cache=True)
def g_prime(x):
    return 1.0
# ---- END OF GENERATED ----


@njit(cache=True)
def dot(a, b):
    """``a · b`` with four interleaved partial sums.

    Without fastmath numba may not reorder a single running sum, which then runs at one
    addition per floating-point latency; four independent sums in a fixed order let the
    loop vectorise and stay reproducible.
    """
    n = a.shape[0]
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    i = 0
    while i + 4 <= n:
        s0 += a[i] * b[i]
        s1 += a[i + 1] * b[i + 1]
        s2 += a[i + 2] * b[i + 2]
        s3 += a[i + 3] * b[i + 3]
        i += 4
    while i < n:
        s0 += a[i] * b[i]
        i += 1
    return (s0 + s1) + (s2 + s3)


@njit(cache=True)
def sample_update(x, W, V, m, a, rates, tie, truncated, encoder, train_bias, outW, outV, outm,
                  lam, gl, e):
    """Add the update of one sample ``x`` to ``outW, outV, outm``; return its loss.

    Every quantity is computed from the weights before the step.  ``out*`` may be the
    weights themselves (online SGD, in place): unit k's own rows are read before they are
    written, and no other unit reads them afterwards.

    Vanilla SGD with ``e = x − x̂``, ``a_w = c_w a``, ``a_v = c_v a``, for unit k::

        c_k  = (e·v_k / D) g'(λ_k)
        w_k += a_w (c_k x/√D − κ_w w_k)   (encoder; no c_k term for Sanger's rule)
        v_k += a_v (g(λ_k) e − κ_v v_k)    (decoder, untied: −c_v η (∇_v ℓ + κ_v v/D))
        w_k += a_w (tie/D) g(λ_k) e        (decoder term of tied weights v_k = tie·w_k)
        m_k += c_m a c_k                   (trained bias)

    Truncated SGD and Sanger's rule use ``e_k = x − Σ_{l≤k} v_l g(λ_l)`` instead of e.
    The returned loss ``‖x − x̂‖²/(2D)`` is that of the whole reconstruction.
    """
    D = x.shape[0]
    K = W.shape[0]
    inv_sqrt_d = 1.0 / math.sqrt(D)
    a_w = a * rates[0]
    shrink_w = a_w * rates[3]
    shrink_v = a * rates[1] * rates[4]
    for k in range(K):
        lam[k] = dot(W[k], x) * inv_sqrt_d + m[k]
        gl[k] = g(lam[k])
    if tie != 0.0:
        dec, vs, dec_rate = W, tie, a_w * tie / D
    else:
        dec, vs, dec_rate = V, 1.0, a * rates[1]
    e[:] = x
    if not truncated:
        for k in range(K):
            coef = vs * gl[k]
            for i in range(D):
                e[i] -= coef * dec[k, i]
    for k in range(K):
        if truncated:  # e becomes x − Σ_{l≤k} v_l g(λ_l): unit k sees units 1..k only
            coef = vs * gl[k]
            for i in range(D):
                e[i] -= coef * dec[k, i]
        c = 0.0
        if encoder or train_bias:
            c = vs * dot(e, dec[k]) / D * g_prime(lam[k])
        alpha = a_w * c * inv_sqrt_d if encoder else 0.0
        beta = dec_rate * gl[k]
        # decay of unit k's own rows, read before they are written (so also in place);
        # separate passes keep the plain-SGD loops below as fast as without decay
        if shrink_w != 0.0:
            for i in range(D):
                outW[k, i] -= shrink_w * W[k, i]
        if shrink_v != 0.0 and tie == 0.0:
            for i in range(D):
                outV[k, i] -= shrink_v * V[k, i]
        if tie != 0.0:
            for i in range(D):
                outW[k, i] += alpha * x[i] + beta * e[i]
        else:
            for i in range(D):
                outW[k, i] += alpha * x[i]
                outV[k, i] += beta * e[i]
        if train_bias:
            outm[k] += a * rates[2] * c
    return dot(e, e) / (2.0 * D)


@njit(cache=True)
def batch_step(X, order, start, stop, W, V, m, a, rates, tie, truncated, encoder, train_bias,
               dW, dV, dm, lam, gl, e):
    """One step on the mean of the updates of the rows ``X[order[start:stop]]``, all
    computed from the weights before the step (``dW, dV, dm`` are scratch space).
    Returns the mean loss of the batch before the step."""
    dW[:] = 0.0
    dV[:] = 0.0
    dm[:] = 0.0
    loss = 0.0
    n = stop - start
    for j in range(start, stop):
        loss += sample_update(X[order[j]], W, V, m, a / n, rates, tie, truncated, encoder,
                              train_bias, dW, dV, dm, lam, gl, e)
    W += dW
    V += dV
    m += dm
    return loss / n


@njit(cache=True, nogil=True)  # nogil: the next inputs are drawn meanwhile
def online(X, start, stop, W, V, m, a, rates, batch, tie, truncated, encoder, train_bias,
           loss_limit, dW, dV, dm, lam, gl, e):
    """Online SGD in place on the rows ``start..stop-1`` of ``X``: one step per row, or,
    with ``batch`` > 1, one step per ``batch`` consecutive rows (``stop − start`` a
    multiple of it).  ``a[j]`` is the step ``η(t)/D`` of the step that row j belongs to.

    Returns -1, or the first row (of its batch) whose loss (before its step) is not finite
    or exceeds ``loss_limit``; the run is then to be abandoned.
    """
    if batch == 1:
        for j in range(start, stop):
            loss = sample_update(X[j], W, V, m, a[j], rates, tie, truncated, encoder,
                                 train_bias, W, V, m, lam, gl, e)
            if not loss <= loss_limit:  # also catches NaN
                return j
        return -1
    order = np.arange(X.shape[0])
    for j in range(start, stop, batch):
        loss = batch_step(X, order, j, j + batch, W, V, m, a[j], rates, tie, truncated,
                          encoder, train_bias, dW, dV, dm, lam, gl, e)
        if not loss <= loss_limit:
            return j
    return -1


@njit(cache=True)
def minibatch_epoch(X, order, batch_size, W, V, m, a, rates, tie, truncated, encoder,
                    train_bias, loss_limit, dW, dV, dm, lam, gl, e):
    """One pass over the rows ``X[order]`` in mini-batches, in place.

    Each batch of ``batch_size`` consecutive rows of ``order`` (the last one may be
    smaller) makes one step on the mean of its samples' updates (:func:`batch_step`).
    Returns -1, or the index of the first batch whose mean loss (before its step) is not
    finite or exceeds ``loss_limit``.
    """
    n = order.shape[0]
    for b, start in enumerate(range(0, n, batch_size)):
        stop = min(start + batch_size, n)
        loss = batch_step(X, order, start, stop, W, V, m, a, rates, tie, truncated, encoder,
                          train_bias, dW, dV, dm, lam, gl, e)
        if not loss <= loss_limit:
            return b
    return -1

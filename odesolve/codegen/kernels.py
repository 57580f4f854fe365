"""The flow kernels: everything of the right-hand side that is the same for every family.

State vector y = [Y (P × n, row-major), G (P × P), m (K)], P = nb·K (nb = 2 untied, 1
tied): the overlaps of the P weight rows with the n tracked modes, their Gram matrix
over the bulk modes, and the encoder biases (docs/theory.md §3).  The kernels compute
the order parameters of y, call the family's generated ``coefficients`` (S, N and the
bias drift, :mod:`odesolve.codegen.compile`) and form the linear flow
``dy_τ/dt = η (s_τ S + N) y_τ``, ``dG/dt = η (M G + G Mᵀ)``; ``error_of_state`` calls
the family's ``error_excess``.  A family's two functions are passed as *handles*
(:mod:`odesolve.codegen.addresses`), so the kernels are compiled once per installation
and kept in numba's cache, for every family, K and spectrum.

The functions below are plain Python (``jit=False`` runs them as they are).  The
:data:`ENTRY_POINTS`, called from Python, are compiled from their source with their
callees inlined (:mod:`odesolve.codegen.inline`): numba would otherwise type, optimise
and emit every callee once on its own and again in each caller (:func:`compiled`).

Explicit loops, no np.dot and no whole-array assignments: numba compiles those into
seconds of LLVM work, and the products here are small or block-sparse (zero blocks are
skipped).
"""
from __future__ import annotations

import ast
import hashlib
import math
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from numba import njit

from .._jit import rebuild_damaged
from . import addresses, inline
from .addresses import call_coefficients, call_error
from .writer import write_generated

__all__ = ["ENTRY_POINTS", "PLAIN", "compiled", "is_cached", "work_size", "work_views"]

#: The kernels called from Python (compiled with their callees inlined).
ENTRY_POINTS = ("rhs_guarded", "error_of_state", "euler")


def order_parameters(y, s, s_bulk, K, nb, Q, R, T0, cross):
    """Fill Q, R, T0 (K × K) from the flat state y; without ``cross``, R on its diagonal
    only (zeros elsewhere), all that the error needs: error_of_state then takes 9.5 µs
    instead of 10.9 at K = 24 (24 modes), 114 instead of 141 at K = 64 (64 modes), and
    the solvers' events call it at every step.  Callers pass ``cross`` as a constant
    (inlined, it is folded away; passed at run time it slowed the loops by half)."""
    n = s.shape[0]
    P = nb * K
    off = P * n
    b0 = (nb - 1) * K          # first row of the decoder block (0 when tied: b = a)
    # the sums over modes as outer products, one mode at a time, with the unit innermost
    # and contiguous (a transposed copy of Y): LLVM vectorises these loops, not the sums
    # over τ of Y's rows (K = 24, 24 modes: 29 µs before).  The sums go into flat local
    # arrays through 1-D row views, then into Q, R, T0: numba's 2-D indexing kept LLVM
    # from vectorising as well (K = 24, 25 modes: 6.4 → 4.4 µs; K = 64: 93 → 59 µs, in a
    # scratch kernel).  Each entry adds the same products in the same order, so the
    # values are unchanged to the last bit.
    Yt = np.empty(n * P)
    for i in range(P):
        for tau in range(n):
            Yt[tau * P + i] = y[i * n + tau]
    sQ = np.zeros(K * K)       # row k of each sum at k·K (lower triangles for Q and T0)
    sR = np.zeros(K * K)
    sT = np.zeros(K * K)
    for tau in range(n):
        st = s[tau]
        row = Yt[tau * P:(tau + 1) * P]
        dec = row[b0:]
        for k in range(K):
            a = st * row[k]
            q = sQ[k * K:(k + 1) * K]
            for l in range(k + 1):
                q[l] += a * row[l]
        for k in range(K):
            b = st * dec[k]
            r = sR[k * K:(k + 1) * K]
            for l in range(0 if cross else k, K if cross else k + 1):
                r[l] += b * row[l]
        for k in range(K):
            c = dec[k]
            t = sT[k * K:(k + 1) * K]
            for l in range(k + 1):
                t[l] += c * dec[l]
    for k in range(K):
        for l in range(k + 1):
            Q[k, l] = sQ[k * K + l] + s_bulk * y[off + k * P + l]
            Q[l, k] = Q[k, l]
            T0[k, l] = sT[k * K + l] + y[off + (b0 + k) * P + b0 + l]
            T0[l, k] = T0[k, l]
        for l in range(K):
            if cross or l == k:
                R[k, l] = sR[k * K + l] + s_bulk * y[off + (b0 + k) * P + l]
            else:
                R[k, l] = 0.0


def error_of_state(y, error, s, s_bulk, K, nb):
    """ε − tr Ω/(2D) of the flat state vector y (``error``: the handle of the family's
    ``error_excess``)."""
    Q = np.empty((K, K))
    R = np.empty((K, K))
    T0 = np.empty((K, K))
    order_parameters(y, s, s_bulk, K, nb, Q, R, T0, False)
    n = s.shape[0]
    P = nb * K
    return call_error(error, Q, R, T0, y[P * n + P * P:])


def flow_matrices(y, coefficients, s, s_bulk, rates, decay, K, nb, S, N, drift, hebbian):
    """Fill S, N (P × P, zeros on entry), the bias drift (K) and E[g gᵀ] = −N_bb before
    the protocol's scaling (hebbian, K × K) at the flat state y, the first three by the
    family's ``coefficients`` (a handle, :mod:`odesolve.codegen.addresses`); then scale
    row i of S and N and bias drift k by rates[i] and rates[P + k], and subtract decay[i]
    from N[i, i] (training protocol, odesolve.protocols)."""
    n = s.shape[0]
    P = nb * K
    off = P * n
    Q = np.empty((K, K))
    R = np.empty((K, K))
    T0 = np.empty((K, K))
    order_parameters(y, s, s_bulk, K, nb, Q, R, T0, True)
    call_coefficients(coefficients, Q, R, T0, y[off + P * P:], S, N, drift)
    b0 = P - K
    for k in range(K):
        for l in range(K):
            hebbian[k, l] = -N[b0 + k, b0 + l]
    for i in range(P):
        for j in range(P):
            S[i, j] *= rates[i]
            N[i, j] *= rates[i]
        N[i, i] -= decay[i]
    for k in range(K):
        drift[k] *= rates[P + k]


def rhs(y, coefficients, n, K, nb, s_bulk, s_bulk_dyn, lr, noise, work, dy, matrices_only):
    """dy/dt: every mode follows dy_τ/dt = lr (s_τ S + N) y_τ; the bulk Gram matrix G
    follows dG/dt = lr (M G + G Mᵀ) with M = s_bulk_dyn S + N; dm/dt = lr·drift, with S,
    N and the drift of flow_matrices, computed into the work arrays S, N (P × P), drift
    (K) and hebbian (K × K) of the work vector (:func:`work_views`, which also holds the
    modes' eigenvalues s and the protocol's rates and decay).  Finite-D noise floor
    (untied vanilla SGD): dT0^B/dt += noise · E[g gᵀ] (docs/theory.md §9).  With
    matrices_only, only the work arrays are filled: wide networks take the products with
    BLAS (odesolve.integrator.rhs_function) through this same compiled entry point."""
    s, rates, decay, S, N, drift, hebbian = work_views(work, n, K, nb)
    P = nb * K
    off = P * n
    for i in range(P):
        for j in range(P):
            S[i, j] = 0.0
            N[i, j] = 0.0
    for k in range(K):
        drift[k] = 0.0
    flow_matrices(y, coefficients, s, s_bulk, rates, decay, K, nb, S, N, drift, hebbian)
    if not matrices_only:
        _products(y, s, s_bulk_dyn, lr, noise, K, nb, dy, S, N, drift, hebbian)


def _products(y, s, s_bulk_dyn, lr, noise, K, nb, dy, S, N, drift, hebbian):
    """The products of rhs, from the flow matrices S, N, the drift and E[g gᵀ]."""
    n = s.shape[0]
    P = nb * K
    off = P * n
    b0 = P - K
    # each row's sums go into a local accumulator, then into dy, which LLVM vectorises
    # better (K = 24, 24 modes: 6.4 µs against 7.4 µs summing into dy, in a scratch
    # kernel); the same sums in the same order
    row = np.empty(n)
    for i in range(P):
        for tau in range(n):
            row[tau] = 0.0
        for j in range(P):
            a = S[i, j]
            b = N[i, j]
            if a == 0.0 and b == 0.0:
                continue
            for tau in range(n):
                row[tau] += (a * s[tau] + b) * y[j * n + tau]
        for tau in range(n):
            dy[i * n + tau] = lr * row[tau]
    # G and dG as slices: indexed from 0, the loop over c vectorises (K = 24: 12 µs
    # indexing y at off + j·P + c, 5.4 µs so; with the accumulator above, the whole
    # function 18.5 → 11.9 µs)
    G = y[off:off + P * P]
    dG = dy[off:off + P * P]
    MG = np.zeros((P, P))
    for i in range(P):
        for j in range(P):
            a = s_bulk_dyn * S[i, j] + N[i, j]
            if a == 0.0:
                continue
            for c in range(P):
                MG[i, c] += a * G[j * P + c]
    for i in range(P):
        for c in range(P):
            dG[i * P + c] = lr * (MG[i, c] + MG[c, i])
    if noise != 0.0:
        for k in range(K):
            for l in range(K):
                dG[(b0 + k) * P + b0 + l] += noise * hebbian[k, l]
    for k in range(K):
        dy[off + P * P + k] = lr * drift[k]


def rhs_guarded(y, coefficients, n, K, nb, s_bulk, s_bulk_dyn, lr, noise, work, norm_limit, dy,
                matrices_only, jac):
    """``rhs`` behind the checks of every solver call, in one compiled call: returns 1
    (dy not computed) if an entry of y is NaN or larger than norm_limit in size, 2 if dy
    (or jac) is not finite, else 0 (the solvers' callback, odesolve.integrator).  With
    norm_limit = inf it checks nothing and returns 0: the entry point of every other
    caller, the wide networks' flow matrices included (one compiled function for all, see
    :data:`ENTRY_POINTS`).

    jac of shape (0, 0) is not touched; of shape (n, n), n = y.size, it also receives
    the forward-difference Jacobian, jac[j, i] = ∂(dy_i)/∂y_j (row j: the derivative
    along y_j, the layout of odeint's col_deriv=True), from n more calls of rhs at steps
    h_j = √ε·max(|y_j|, r.m.s. of y): a solver's Jacobian in one compiled call instead
    of n calls from Python.  y is then changed during the call, one entry at a time, and
    left as it was, bit for bit."""
    checked = norm_limit < math.inf
    if checked:
        for j in range(y.shape[0]):
            if not abs(y[j]) <= norm_limit:
                return 1
    columns = jac.shape[0]
    base = np.empty(dy.shape[0] if columns > 0 else 0)
    # the steps' floor, for entries near 0, is the root mean square of y: columns along a
    # zero bias were 3 % off with a floor of 10⁻⁶ max|y|
    floor = 0.0
    for j in range(columns):
        floor += y[j] * y[j]
    floor = math.sqrt(floor / columns) if floor > 0.0 else 1.0
    # one call site of rhs, in a loop whose pass -1 is dy itself: rhs is compiled once.
    # Each column moves one entry of y and puts it back exactly (no copy of y per call)
    held = 0.0
    poison = 0.0        # 0, or NaN once an entry of jac is not finite (x·0 is NaN for ±inf)
    for column in range(-1, columns):
        h = 0.0
        if column >= 0:
            held = y[column]
            y[column] = held + 1.4901161193847656e-08 * max(abs(held), floor)
            h = y[column] - held
        rhs(y, coefficients, n, K, nb, s_bulk, s_bulk_dyn, lr, noise, work, dy, matrices_only)
        if column >= 0:
            y[column] = held
            for i in range(base.shape[0]):
                jac[column, i] = (dy[i] - base[i]) / h
                poison += jac[column, i] * 0.0
        elif columns > 0:
            for i in range(base.shape[0]):
                base[i] = dy[i]
    for i in range(base.shape[0]):
        dy[i] = base[i]
    if checked:
        for j in range(dy.shape[0]):
            if not math.isfinite(dy[j]):
                return 2
        if not poison == 0.0:
            return 2
    return 0


def euler(y0, coefficients, n, K, nb, s_bulk, s_bulk_dyn, lr, noise, work, dt, record_steps,
          norm_limit, out):
    """Fixed-step Euler; out[i] = y after record_steps[i] steps. Returns the number of
    records written (fewer than requested if the state became non-finite or exceeded
    norm_limit, which the caller reports as a blow-up)."""
    y = y0.copy()
    dy = np.empty_like(y)
    step = 0
    for i in range(record_steps.shape[0]):
        while step < record_steps[i]:
            rhs(y, coefficients, n, K, nb, s_bulk, s_bulk_dyn, lr, noise, work, dy, False)
            for j in range(y.shape[0]):
                y[j] += dt * dy[j]
            step += 1
        for j in range(y.shape[0]):
            if not abs(y[j]) <= norm_limit:     # also NaN
                return i
            out[i, j] = y[j]
    return record_steps.shape[0]


def work_size(n, K, nb):
    """Length of the kernels' work vector for n tracked modes and K units (nb blocks)."""
    P = nb * K
    return n + 3 * P + 2 * K + 2 * P * P + K * K


@njit(cache=True)
def work_views(work, n, K, nb):
    """``(s, rates, decay, S, N, drift, hebbian)``: the parts of the kernels' work vector
    (length :func:`work_size`), in this order: the modes' eigenvalues s (n), the
    protocol's rates (P + K) and decay (P), set by the caller; then the work arrays S, N
    (P × P), drift (K) and hebbian (K × K), filled by ``rhs``.  One array instead of
    seven: every array argument of a compiled call from Python is unboxed at every call
    (an empty function of rhs_guarded's former 10 arrays and 9 scalars took 0.35 µs per
    call, of 3 arrays and 2 scalars 0.14 µs); rhs_guarded itself, which makes these views
    in each call, gained less than the noise of 0.05 µs at K = 2 (2026-12-02)."""
    P = nb * K
    o = n + 2 * P + K
    S = work[o:o + P * P].reshape((P, P))
    N = work[o + P * P:o + 2 * P * P].reshape((P, P))
    o += 2 * P * P
    return (work[:n], work[n:n + P + K], work[n + P + K:n + 2 * P + K], S, N, work[o:o + K],
            work[o + K:o + K + K * K].reshape((K, K)))


rebuild_damaged(work_views)

#: The entry points as plain Python (``jit=False``).
PLAIN = SimpleNamespace(rhs_guarded=rhs_guarded, error_of_state=error_of_state, euler=euler)


@lru_cache(maxsize=1)
def compiled() -> SimpleNamespace:
    """The :data:`ENTRY_POINTS` as numba dispatchers (``cache=True``), compiled from this
    file's source with their callees inlined (:func:`odesolve.codegen.inline.flatten`).

    The flattened source is kept in the cache folder (``odesolve_kernels_<digest>.py``,
    written by :func:`~odesolve.codegen.writer.write_generated`): flattening took 0.1 s
    of every process's start.  The digest is of this file, of the flattening and of the
    calls of a family (:mod:`~odesolve.codegen.addresses`), and the names compiled carry
    it: numba's cache is stamped with this file's time and size only, and a change to the
    others must not be served machine code compiled before it (which would call a family
    with the old convention).  In a scratch copy (fresh process, erf, 2 cores,
    2026-12-02), ``rhs_guarded`` flattened took 2.8 s to compile and as a chain of calls
    4.4 s, and the chain's K = 2 call took 1.87 µs against 1.48 µs for the flattened
    module of the time.
    """
    path = Path(__file__)
    source = path.read_text()
    digest = hashlib.sha256(b"".join(Path(m.__file__).read_bytes()
                                     for m in (inline, addresses))
                            + source.encode()).hexdigest()[:12]
    flat = write_generated(f"odesolve_kernels_{digest}",
                           lambda: inline.flatten(source, ENTRY_POINTS)).read_text()
    entries = [node for node in ast.parse(flat).body
               if isinstance(node, ast.FunctionDef) and node.name in ENTRY_POINTS]
    namespace = dict(globals())
    # compiled as this file's code: numba keeps the machine code beside it, for every
    # cache folder of odesolve's
    exec(compile(ast.Module(entries, type_ignores=[]), str(path), "exec"), namespace)
    functions = {}
    for name in ENTRY_POINTS:
        function = namespace[name]
        function.__qualname__ = f"{name}_{digest}"
        functions[name] = njit(cache=True)(function)
    rebuild_damaged(*functions.values())
    return SimpleNamespace(**functions)


def is_cached() -> bool:
    """Whether numba's cache holds the compiled kernels (of some argument types) for this
    file as it is: if not, the first call compiles them (seconds).  Read with numba's own
    index reader, which finds an index written for an earlier version of the file empty;
    False where that cannot be read."""
    index = getattr(getattr(compiled().rhs_guarded, "_cache", None), "_cache_file", None)
    try:
        return bool(index._load_index())
    except Exception:          # numba's private reader moved or failed: say "not cached"
        return False

"""CVODE's state vector: the bulk Gram matrix G stored once.

G is symmetric, and so is its flow (dG/dt = η (M G + G Mᵀ) adds the same two products to
G_ij and G_ji, in either order), so the P(P − 1)/2 entries above its diagonal repeat those
below it.  CVODE's vector work (its BDF history and GMRES's Gram–Schmidt) costs about
6 ns per variable per right-hand side, so it integrates ``[Y, G's lower triangle by rows,
m]``: K = 24 untied with 24 modes, 2,352 variables instead of 3,480, and a warm curve to
t = 10³ 7 % faster, K = 64 10 % (in-process interleaved runs, README § Performance;
docs/theory.md § 10).  The right-hand side and the error are computed on the full vector,
unpacked into a work array of the caller's (which is also the writable copy of CVODE's
read-only view they need).

Compiled once per installation (numba's cache), not per family: these loops do not depend
on the activation.
"""
from __future__ import annotations

import numba

from .._jit import rebuild_damaged


def packed_size(size: int, P: int) -> int:
    """Variables of the packed form of a full state of ``size`` variables and P rows."""
    return size - P * (P - 1) // 2


@numba.njit(cache=True)
def unpack(packed, full, off, P):
    """Write the full state ``[Y, G, m]`` of ``packed`` into ``full``; G starts at ``off``
    (= Y.size) in both."""
    for i in range(off):
        full[i] = packed[i]
    j = off
    for r in range(P):
        for c in range(r + 1):
            full[off + r * P + c] = packed[j]
            full[off + c * P + r] = packed[j]
            j += 1
    end = off + P * P
    for i in range(packed.shape[0] - j):
        full[end + i] = packed[j + i]


@numba.njit(cache=True)
def pack(full, packed, off, P):
    """Write the packed form of the full state ``full`` into ``packed``: G's lower
    triangle, row by row, the entries the order parameters read (the kernels'
    ``order_parameters``); those above G's diagonal are not read."""
    for i in range(off):
        packed[i] = full[i]
    j = off
    for r in range(P):
        for c in range(r + 1):
            packed[j] = full[off + r * P + c]
            j += 1
    end = off + P * P
    for i in range(packed.shape[0] - j):
        packed[j + i] = full[end + i]


rebuild_damaged(unpack, pack)

"""A readable pure-Python (numpy) right-hand side, the reference for the generated code.

It evaluates the derived sympy matrices with :func:`sympy.lambdify` and applies the
linear flow of :mod:`odesolve.derive` with plain numpy, one line per equation.  It is
slow and meant for tests and for reading.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import sympy as sp

from ..analysis import _placeholder_functions
from ..derive.equations import derive_equations
from ..spec.model import Autoencoder
from ..state import State

__all__ = ["reference_rhs"]


@lru_cache(maxsize=32)
def _coefficient_functions(model: Autoencoder):
    eq = derive_equations(model)
    args = [list(eq.symbols[name]) for name in ("Q", "R", "T0", "m")]   # flattened, row-major
    modules = [_placeholder_functions(sp.Tuple(eq.S, eq.N, eq.bias_drift)), "math", "numpy"]
    return sp.lambdify(args, [eq.S, eq.N, eq.bias_drift], modules=modules)


def reference_rhs(state: State, lr: float, bulk: str = "limit") -> np.ndarray:
    """d(state vector)/dt, computed without generated code."""
    spec = state.spectrum
    ops = state.order_parameters()
    S, N, drift = (np.array(x, dtype=float) for x in
                   _coefficient_functions(state.model)(ops.Q.ravel(), ops.R.ravel(),
                                                       ops.T0.ravel(), ops.m))
    s_bulk_dynamics = spec.bulk / spec.D if bulk == "finite" else 0.0
    # every tracked mode τ: dy_τ/dt = η (s_τ S + N) y_τ
    dY = lr * (S @ state.Y * spec.s + N @ state.Y)
    # the bulk modes share one flow matrix M, so their Gram matrix obeys dG = η(MG + GMᵀ)
    M = s_bulk_dynamics * S + N
    dG = lr * (M @ state.G + state.G @ M.T)
    dm = lr * drift.ravel()
    return np.concatenate([dY.ravel(), dG.ravel(), dm])

"""A readable pure-Python (numpy) right-hand side, the reference for the generated code.

It evaluates the derived sympy matrices with :func:`sympy.lambdify` and applies the
linear flow of :mod:`odesolve.derive` with plain numpy, one line per equation.  It is
slow and meant for tests and for reading.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import sympy as sp

from .analysis import _placeholder_functions
from .derive import derive_equations
from .model import Autoencoder
from .state import State

__all__ = ["reference_rhs"]


@lru_cache(maxsize=32)
def _coefficient_functions(model: Autoencoder):
    eq = derive_equations(model)
    args = [eq.symbols["Q"], eq.symbols["R"], eq.symbols["T0"], eq.symbols["m"]]
    modules = [_placeholder_functions(sp.Tuple(eq.S, eq.N, eq.bias_drift)), "math", "numpy"]
    return sp.lambdify(args, [eq.S, eq.N, eq.bias_drift], modules=modules)


def reference_rhs(state: State, lr: float, bulk: str = "limit") -> np.ndarray:
    """d(state vector)/dt, computed without generated code."""
    spec, K = state.spectrum, state.model.K
    ops = state.order_parameters()
    S, N, drift = (np.array(x, dtype=float) for x in
                   _coefficient_functions(state.model)(ops.Q, ops.R, ops.T0, ops.m.reshape(K, 1)))
    s_bulk_dynamics = spec.bulk / spec.D if bulk == "finite" else 0.0
    # every tracked mode τ: dy_τ/dt = η (s_τ S + N) y_τ
    dY = lr * (S @ state.Y * spec.s + N @ state.Y)
    # the bulk modes share one flow matrix M, so their Gram matrix obeys dG = η(MG + GMᵀ)
    M = s_bulk_dynamics * S + N
    dG = lr * (M @ state.G + state.G @ M.T)
    dm = lr * drift.ravel()
    return np.concatenate([dY.ravel(), dG.ravel(), dm])

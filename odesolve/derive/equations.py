"""Stage 2 of the pipeline: the order-parameter equations of one model, as sympy matrices.

The flow is derived once per (tied, rule, bias) family with the activation abstract
(:mod:`odesolve.derive.structure`: per-sample increments taken almost everywhere, Stein's
lemma, the closure over units); here the loop bodies are expanded at the model's K and
every Gaussian average is replaced by its value for the model's activation
(:func:`odesolve.derive.averages.family_average`: a closed form, or a placeholder of a
compiled quadrature).  The result is linear in the overlaps: for every mode τ, with
``y_τ = [a_τ; b_τ]`` (``a_τ`` if tied),

    dy_τ/dt = η (s_τ S + N) y_τ,    dm/dt = η E[P]  (trained bias),

with 2K×2K (K×K if tied) matrices ``S`` (Stein, "signal") and ``N`` that depend on the
state only through ``Q, R, T0, m``.  The error is ``ε = tr Ω/(2D) + E[L]``.  The compiled
code (:mod:`odesolve.codegen`) does not go through these matrices: it loops over units
with K a runtime size; these matrices serve analysis, printing and the pure-Python
reference right-hand side (:mod:`odesolve.testing.reference_rhs`).

>>> import sympy as sp
>>> from odesolve.spec.model import Autoencoder
>>> eqs = derive_equations(Autoencoder(K=1, activation="linear"))
>>> eqs.S
Matrix([
[-T0_0_0, 1],
[      1, 0]])
>>> eqs.N
Matrix([
[0,        0],
[0, -Q_0_0]])
>>> named = {str(s): s for s in eqs.error_excess.free_symbols}
>>> Q, R, T0 = named["Q_0_0"], named["R_0_0"], named["T0_0_0"]
>>> sp.expand(eqs.error_excess - (Q * T0 / 2 - R))   # E[L] = ½QT0 − R (term order varies)
0
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from ..spec.model import Autoencoder
from . import averages
from .structure import expand, lower

__all__ = ["Equations", "derive_equations", "order_parameter_symbols"]


@dataclass(frozen=True)
class Equations:
    """The derived equations of one model, as sympy expressions.

    Attributes
    ----------
    model : Autoencoder
    S, N : sympy.Matrix
        Coefficient matrices of ``dy_τ/dt = η (s_τ S + N) y_τ``; rows/columns are
        ``[a_1..a_K, b_1..b_K]`` (untied) or ``[a_1..a_K]`` (tied).
    bias_drift : sympy.Matrix
        ``E[P_k]`` (K×1): ``dm/dt = η·bias_drift`` for a trained bias, else zeros.
    error_excess : sympy.Expr
        ``ε − tr Ω/(2D)``.
    symbols : dict
        Matrices of the symbols ``Q``, ``R``, ``T0`` and the vector ``m`` they use.
    """

    model: Autoencoder
    S: sp.Matrix
    N: sp.Matrix
    bias_drift: sp.Matrix
    error_excess: sp.Expr
    symbols: dict

    @property
    def blocks(self) -> int:
        """Number of K-blocks of the state of one mode (2 untied, 1 tied)."""
        return 1 if self.model.tied else 2

    def __str__(self) -> str:
        lines = [f"Equations for {self.model.key}", "dy_τ/dt = η (s_τ S + N) y_τ"]
        for name, mat in (("S", self.S), ("N", self.N)):
            for (i, j), e in _nonzero(mat):
                lines.append(f"  {name}[{i},{j}] = {e}")
        for (k, _), e in _nonzero(self.bias_drift):
            lines.append(f"  dm_{k}/dt = η·({e})")
        lines.append(f"  ε − trΩ/(2D) = {self.error_excess}")
        return "\n".join(lines)


def order_parameter_symbols(K: int) -> dict:
    """Symbols ``Q_k_l`` (symmetric), ``R_k_l``, ``T0_k_l`` (symmetric), ``m_k``."""
    def sym(name, k, l):
        return sp.Symbol(f"{name}_{k}_{l}", real=True)
    Q = sp.Matrix(K, K, lambda k, l: sym("Q", min(k, l), max(k, l)))
    T0 = sp.Matrix(K, K, lambda k, l: sym("T0", min(k, l), max(k, l)))
    R = sp.Matrix(K, K, lambda k, l: sym("R", k, l))
    m = sp.Matrix([sp.Symbol(f"m_{k}", real=True) for k in range(K)])
    return {"Q": Q, "R": R, "T0": T0, "m": m}


def derive_equations(model: Autoencoder) -> Equations:
    """Derive ``S``, ``N``, the bias drift and the error of ``model`` (see module doc).

    The family's structure (:func:`odesolve.derive.structure.lower`, derived once with
    the activation abstract) expanded at ``model.K`` units, with the activation's
    Gaussian averages substituted (closed forms, or quadrature placeholders).

    Parameters
    ----------
    model : Autoencoder

    Returns
    -------
    Equations
        ``S`` and ``N`` of shape (P, P), P = 2K untied or K tied; ``bias_drift`` (K, 1);
        ``error_excess``; all in the symbols ``Q``, ``R``, ``T0`` (K × K) and ``m`` (K).

    Raises
    ------
    ValueError
        When a Gaussian average the model needs does not exist for its activation, or
        for Sanger's rule with a trained bias (the rule has no loss).

    References
    ----------
    Derived here, see docs/theory.md §1–§3; the untied erf case is the flow of Refinetti &
    Goldt, ICML 2022 (arXiv 2201.02115) in the spec's scalings.

    Examples
    --------
    >>> from odesolve import Autoencoder
    >>> eq = derive_equations(Autoencoder(K=2, activation="linear"))
    >>> eq.S.shape, eq.N.shape, eq.bias_drift.shape
    ((4, 4), (4, 4), (2, 1))
    """
    return _derive_cached(model)


@lru_cache(maxsize=64)
def _derive_cached(model: Autoencoder) -> Equations:
    K = model.K
    low = lower(model.tied, model.rule, model.bias)
    syms = order_parameter_symbols(K)
    Q, m = syms["Q"], syms["m"]
    values = {a: averages.family_average(model.activation, a, model.has_bias)
              for a in low.averages()}

    def value(coeff, average, fields):
        k = fields[0]
        if average.other is None:
            sub = {averages.Q: Q[k, k], averages.M: m[k]}
        else:
            l = fields[1]
            sub = {averages.Q1: Q[k, k], averages.Q2: Q[l, l], averages.C: Q[k, l],
                   averages.M1: m[k], averages.M2: m[l]}
        return coeff * values[average].xreplace(sub)

    S_terms, N_terms, drift_terms, error_terms = expand(low, K)
    nb = low.blocks
    S, N = sp.zeros(nb * K, nb * K), sp.zeros(nb * K, nb * K)
    for table, out in ((S_terms, S), (N_terms, N)):
        for (rb, cb, k, j), terms in table.items():
            out[rb * K + k, cb * K + j] = sp.Add(*[value(*t) for t in terms])
    drift = sp.Matrix([sp.Add(*[value(*t) for t in drift_terms[k]]) for k in range(K)])
    error = sp.Add(*[value(*t) for t in error_terms])
    return Equations(model, S, N, drift, error, syms)


def _nonzero(mat: sp.Matrix):
    return [((i, j), mat[i, j]) for i in range(mat.rows) for j in range(mat.cols) if mat[i, j] != 0]

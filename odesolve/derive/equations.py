"""Stage 2 of the pipeline: symbolic derivation of the order-parameter equations.

Everything here is derived by sympy from the model definition; nothing is typed in.

**Per-sample increments.**  With ``λ_k = w_k·x/√D + m_k`` and ``u_k = v_k·x/D``, the
loss of one sample is ``ℓ = |x|²/(2D) + L(λ, u, T0)`` with the *field-space loss*

    L = −Σ_k u_k g(λ_k) + ½ Σ_kl T0_kl g(λ_k) g(λ_l).

One SGD step, projected on an eigenvector ``e_τ`` (``x·e_τ/√D = √s_τ z_τ``), moves the
overlaps ``a_kτ = w_k·e_τ`` and ``b_kτ = v_k·e_τ/√D`` by ``η/D`` times

    encoder   √s_τ z_τ P_k,                 P_k = −∂L/∂λ_k,
    decoder   √s_τ z_τ U_k − Σ_l G_kl b_lτ,  U_k = −∂L/∂u_k,  G_kl = ∂L/∂T0_kl + ∂L/∂T0_lk,
    bias      P_k.

Truncated SGD uses, for unit k, the loss of units 1..k only; tied weights (v = √D w,
so b = a) add the encoder and decoder increments; Sanger's rule keeps the truncated
decoder increment only.  Each increment is replaced by its almost-everywhere value
(terms with a Dirac delta vanish for a sample: that is why a sign encoder never moves).

**Averages.**  Over ``t = steps/D`` the increments average out (the fluctuations are
O(1/D)).  Stein's lemma turns ``E[z_τ F(λ, u)]`` into
``√s_τ Σ_j (E[∂F/∂λ_j] a_jτ + E[∂F/∂u_j] b_jτ)`` and ``E[u_k F(λ)]`` into
``Σ_j R_kj E[∂F/∂λ_j]``, so every coefficient is a Gaussian average of at most two
pre-activations, evaluated by :mod:`odesolve.derive.averages`.  The result is linear in the
overlaps: for every mode τ, with ``y_τ = [a_τ; b_τ]`` (``a_τ`` if tied),

    dy_τ/dt = η (s_τ S + N) y_τ,    dm/dt = η E[P]  (trained bias),

with 2K×2K (K×K if tied) matrices ``S`` (Stein, "signal") and ``N`` that depend on
the state only through ``Q, R, T0, m``.  The error is ``ε = tr Ω/(2D) + E[L]``.

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

from ..spec.activations import X
from ..spec.model import Autoencoder
from .averages import expect_1, expect_2

__all__ = ["Equations", "derive_equations", "order_parameter_symbols"]

# generic arguments of the averages, substituted per pair of units
_q1, _q2, _c = sp.symbols("q1 q2 c", real=True)
_m1, _m2 = sp.symbols("m1 m2", real=True)


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
    """Derive ``S``, ``N``, the bias drift and the error of ``model`` (see module doc)."""
    return _derive_cached(model)


@lru_cache(maxsize=64)
def _derive_cached(model: Autoencoder) -> Equations:
    K = model.K
    if model.rule == "sanger" and model.bias == "trained":
        raise ValueError("Sanger's rule has no loss, so it does not define a bias update")
    lam = [sp.Symbol(f"lambda_{k}", real=True) for k in range(K)]
    u = [sp.Symbol(f"u_{k}", real=True) for k in range(K)]
    # ordered T0 symbols: T0_kl and T0_lk are distinct while differentiating
    t0 = [[sp.Symbol(f"T0o_{k}_{l}", real=True) for l in range(K)] for k in range(K)]
    g = [model.activation.expr.subs(X, lam[k]) for k in range(K)]
    syms = order_parameter_symbols(K)
    average = _Averager(lam, u, syms, with_means=model.has_bias)

    def field_loss(units):
        return (-sum(u[k] * g[k] for k in units)
                + sp.Rational(1, 2) * sum(t0[k][l] * g[k] * g[l] for k in units for l in units))

    nb = 1 if model.tied else 2
    S = sp.zeros(nb * K, nb * K)
    N = sp.zeros(nb * K, nb * K)
    drift = sp.zeros(K, 1)
    for k in range(K):
        L = field_loss(range(K) if model.rule == "sgd" else range(k + 1))
        P = _almost_everywhere(-sp.diff(L, lam[k]))
        U = _almost_everywhere(-sp.diff(L, u[k]))
        Gk = [_almost_everywhere(sp.diff(L, t0[k][l]) + sp.diff(L, t0[l][k])) for l in range(K)]
        if model.tied:
            F = U if model.rule == "sanger" else P + U
            for j in range(K):
                S[k, j] = average(sp.diff(F, lam[j]) + sp.diff(F, u[j]))
                N[k, j] = -average(Gk[j])
        else:
            for j in range(K):
                S[k, j] = average(sp.diff(P, lam[j]))
                S[k, K + j] = average(sp.diff(P, u[j]))
                S[K + k, j] = average(sp.diff(U, lam[j]))
                S[K + k, K + j] = average(sp.diff(U, u[j]))
                N[K + k, K + j] = -average(Gk[j])
        if model.bias == "trained":
            drift[k] = average(P)
    error = average(field_loss(range(K)))
    symmetric = {t0[k][l]: syms["T0"][k, l] for k in range(K) for l in range(K)}
    return Equations(model, S.xreplace(symmetric), N.xreplace(symmetric),
                     drift.xreplace(symmetric), error.xreplace(symmetric), syms)


def _almost_everywhere(expr: sp.Expr) -> sp.Expr:
    """The value of a per-sample increment for almost every sample: drop Dirac deltas."""
    terms = sp.Add.make_args(sp.expand(expr))
    return sp.Add(*[t for t in terms if not t.has(sp.DiracDelta)])


def _nonzero(mat: sp.Matrix):
    return [((i, j), mat[i, j]) for i in range(mat.rows) for j in range(mat.cols) if mat[i, j] != 0]


class _Averager:
    """Gaussian average of a polynomial in u and T0 times functions of the λ's."""

    def __init__(self, lam, u, syms, with_means):
        self.lam, self.u = lam, u
        self.index = {s: k for k, s in enumerate(lam)}
        self.u_index = {s: k for k, s in enumerate(u)}
        self.Q, self.R = syms["Q"], syms["R"]
        self.with_means = with_means
        self.m = syms["m"] if with_means else sp.zeros(len(lam), 1)

    def __call__(self, expr: sp.Expr) -> sp.Expr:
        return sp.Add(*[self._term(t) for t in sp.Add.make_args(sp.expand(expr))])

    def _term(self, term: sp.Expr) -> sp.Expr:
        u_factors = [f for f in sp.Mul.make_args(term) if f.free_symbols & set(self.u)]
        if not u_factors:
            return self._fields_only(term)
        if len(u_factors) > 1 or not u_factors[0].is_Symbol:
            raise ValueError(f"term is not linear in the decoder fields: {term}")
        k = self.u_index[u_factors[0]]
        rest = term / u_factors[0]
        # Stein's lemma on u: E[u_k F(λ)] = Σ_j Cov(u_k, λ_j) E[∂F/∂λ_j]
        return sp.Add(*[self.R[k, j] * self(sp.diff(rest, self.lam[j]))
                        for j in sorted(self.index[s] for s in rest.free_symbols & set(self.lam))])

    def _fields_only(self, term: sp.Expr) -> sp.Expr:
        coeff, per_field = sp.S.One, {}
        for f in sp.Mul.make_args(term):
            fields = f.free_symbols & set(self.lam)
            if not fields:
                coeff *= f
            elif len(fields) == 1:
                j = self.index[fields.pop()]
                per_field[j] = per_field.get(j, sp.S.One) * f
            else:
                raise ValueError(f"factor couples two fields: {f}")
        fs = {j: _simplify_factor(f.subs(self.lam[j], X)) for j, f in per_field.items()}
        if not fs:
            return coeff
        if len(fs) == 1:
            (j, f), = fs.items()
            return coeff * _average_1(f, self.with_means).xreplace({_q1: self.Q[j, j], _m1: self.m[j]})
        if len(fs) == 2:
            (i, f), (j, h) = sorted(fs.items())
            return coeff * _average_2(f, h, self.with_means).xreplace(
                {_q1: self.Q[i, i], _q2: self.Q[j, j], _c: self.Q[i, j],
                 _m1: self.m[i], _m2: self.m[j]})
        raise ValueError(f"average over more than two fields: {term}")


def _simplify_factor(f: sp.Expr) -> sp.Expr:
    """Heaviside(x)**n = Heaviside(x): keeps products of indicator functions simple."""
    return f.replace(lambda e: e.is_Pow and isinstance(e.base, sp.Heaviside) and e.exp.is_positive,
                     lambda e: e.base)


# zero means are passed as 0, not as a symbol set to 0 later: some averages have closed
# forms only at zero mean (e.g. ReLU pairs), so the choice must be made before averaging
@lru_cache(maxsize=None)
def _average_1(f: sp.Expr, with_means: bool) -> sp.Expr:
    return expect_1(f, _q1, _m1 if with_means else sp.S.Zero)


@lru_cache(maxsize=None)
def _average_2(f: sp.Expr, h: sp.Expr, with_means: bool) -> sp.Expr:
    zero = sp.S.Zero
    return expect_2(f, h, _q1, _q2, _c, _m1 if with_means else zero, _m2 if with_means else zero)

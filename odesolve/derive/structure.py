"""The structural derivation: increments, Stein's lemma and closure with g abstract.

The activation is an undefined sympy function ``g``; ``ga`` is its *almost-everywhere*
derivative, the value the per-sample increments take for almost every sample (Dirac
deltas of the increment are dropped before any average: that is why a sign encoder never
moves).  Stein's lemma differentiates them again, giving ``Derivative(g, n)``
(distributional derivatives of g) and ``Derivative(ga, n)``.

**Increments.**  With the field-space loss of unit k (units 1..k for truncated SGD)

    L_k = −Σ_l u_l g(λ_l) + ½ Σ_lc T0_lc g(λ_l) g(λ_c),

one SGD step moves the overlaps of mode τ by η/D times: encoder ``√s_τ z_τ P_k``
(``P_k = −∂L_k/∂λ_k``, taken a.e.), decoder ``√s_τ z_τ U_k − Σ_l G_kl b_lτ``
(``U_k = −∂L_k/∂u_k``, ``G_kl = ∂L_k/∂T0_kl + ∂L_k/∂T0_lk``), bias ``P_k``.  Tied weights
(v = √D w, so b = a) add the encoder and decoder increments; Sanger's rule keeps the
(truncated) decoder increment only.

**Averages.**  Stein's lemma turns ``E[z_τ F]`` into ``√s_τ Σ_j (E[∂F/∂λ_j] a_jτ +
E[∂F/∂u_j] b_jτ)`` and ``E[u_k F(λ)]`` into ``Σ_j R_kj E[∂F/∂λ_j]``: every coefficient of
the flow ``dy_τ/dt = η (s_τ S + N) y_τ`` becomes a sum of order parameters times a
Gaussian average of one or two pre-activations (an :class:`Average`).

**Closure over units.**  The derivation runs on ``K_REP = 3`` representative units with
the middle one as the row unit k.  An off-diagonal entry (k, j) only involves k and j; a
diagonal entry (and the bias drift) also involves summation units l, and the rules only
see whether l is below or above k.  So the coefficients of unit 1 at K_REP = 3 are the
loop bodies for every K (:func:`lower`); :func:`expand` rebuilds the entries at any K,
and the tests compare that with a direct derivation at K = 1, 2, 4.

>>> low = lower(tied=False, rule="sgd", bias="none")
>>> [a.name for a in low.averages()]           # all the activation enters through
['avg1_a0', 'avg1_a2', 'avg1_g0_a1', 'avg1_g0_g0', 'avg1_g1', 'avg1_g1_a0', 'avg2_a0__g1', 'avg2_a1__g0', 'avg2_g0__g0']
>>> print(low.averages()[-1].formula)
E[g(λ_k) g(λ_l)]
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import sympy as sp

__all__ = ["Average", "Body", "Lowered", "Term", "derive_structure", "expand", "lower", "K_REP"]

K_REP = 3
MID = 1
g = sp.Function("g", real=True)
ga = sp.Function("ga", real=True)   # a.e. derivative of g


def _sym(name, k, l=None, symmetric=False):
    if l is None:
        return sp.Symbol(f"{name}_{k}", real=True)
    if symmetric:
        k, l = min(k, l), max(k, l)
    return sp.Symbol(f"{name}_{k}_{l}", real=True)


def _factor_key(f, lam_index):
    """('g', n) or ('ga', n) and the unit of a factor g(λ_i), Derivative(...)."""
    if isinstance(f, sp.Derivative):
        base = f.expr
        n = sum(c for _, c in f.variable_count)
    else:
        base, n = f, 0
    name = "g" if base.func == g else "ga"
    return (name, n), lam_index[base.args[0]]


@dataclass(frozen=True)
class Term:
    """coeff(order parameters) × average: a single-field or a two-field average."""
    coeff: sp.Expr
    factors: tuple          # ((unit, ((name, n), ...)), ...) sorted by unit, 1 or 2 entries

    @property
    def units(self):
        return {u for u, _ in self.factors} | {int(p) for s in self.coeff.free_symbols
                                              for p in s.name.split("_")[1:]}


@dataclass
class Structure:
    """Derived coefficients at K_REP units, as lists of Terms per entry."""
    tied: bool
    rule: str
    bias: str
    S: dict = field(default_factory=dict)      # (row_block, col_block, k, j) -> [Term]
    N: dict = field(default_factory=dict)
    drift: dict = field(default_factory=dict)  # k -> [Term]
    error: list = field(default_factory=list)  # [Term]


class _Averager:
    """Gaussian average of a polynomial in u and T0 times abstract functions of the λ's:
    Stein's lemma removes u, the rest is grouped into one- and two-field averages."""

    def __init__(self, lam, u):
        self.lam, self.u = lam, u
        self.lam_index = {s: i for i, s in enumerate(lam)}
        self.u_index = {s: i for i, s in enumerate(u)}

    def __call__(self, expr):
        out = []
        for term in sp.Add.make_args(sp.expand(expr)):
            if term != 0:
                out.extend(self._term(term))
        return out

    def _term(self, term):
        us = [f for f in sp.Mul.make_args(term) if f in self.u_index]
        if us:
            if len(us) > 1:
                raise ValueError(f"term not linear in the decoder fields: {term}")
            k = self.u_index[us[0]]
            rest = term / us[0]
            out = []
            # Stein's lemma on u: E[u_k F(λ)] = Σ_j Cov(u_k, λ_j) E[∂F/∂λ_j]
            for j in sorted(self.lam_index[s] for s in rest.free_symbols & set(self.lam)):
                out.extend(self(_sym("R", k, j) * sp.diff(rest, self.lam[j])))
            return out
        coeff, per_unit = sp.S.One, {}
        for f in sp.Mul.make_args(term):
            base, exp = f.as_base_exp()
            if not (base.free_symbols & set(self.lam)):
                coeff *= f
                continue
            key, unit = _factor_key(base, self.lam_index)
            per_unit.setdefault(unit, []).extend([key] * int(exp))
        factors = tuple(sorted((unit, tuple(sorted(keys))) for unit, keys in per_unit.items()))
        if len(factors) > 2:
            raise ValueError(f"average over more than two fields: {term}")
        return [Term(coeff, factors)]


@lru_cache(maxsize=None)
def derive_structure(tied: bool, rule: str, bias: str, K: int = K_REP) -> Structure:
    """Derive the coefficients of the linear flow with g abstract, at K units."""
    if rule == "sanger" and bias == "trained":
        raise ValueError("Sanger's rule has no loss, so it does not define a bias update")
    lam = [sp.Symbol(f"lambda_{k}", real=True) for k in range(K)]
    u = [sp.Symbol(f"u_{k}", real=True) for k in range(K)]
    t0 = [[sp.Symbol(f"T0o_{k}_{l}", real=True) for l in range(K)] for k in range(K)]
    G = [g(x) for x in lam]
    avg = _Averager(lam, u)
    symmetric = {t0[k][l]: _sym("T0", k, l, symmetric=True) for k in range(K) for l in range(K)}

    def loss(units):
        return (-sum(u[k] * G[k] for k in units)
                + sp.Rational(1, 2) * sum(t0[k][l] * G[k] * G[l] for k in units for l in units))

    def ae(expr):
        # the increment for almost every sample: g' is its a.e. value ga (deltas dropped)
        return expr.replace(lambda e: isinstance(e, sp.Derivative) and e.expr.func == g,
                            lambda e: ga(e.expr.args[0]) if e.derivative_count == 1 else
                            sp.Derivative(ga(e.expr.args[0]), (e.expr.args[0], e.derivative_count - 1)))

    def clean(terms):
        return [Term(t.coeff.xreplace(symmetric), t.factors) for t in terms]

    st = Structure(tied, rule, bias)
    for k in range(K):
        L = loss(range(K) if rule == "sgd" else range(k + 1))
        P = ae(-sp.diff(L, lam[k]))
        U = -sp.diff(L, u[k])
        Gk = [sp.diff(L, t0[k][l]) + sp.diff(L, t0[l][k]) for l in range(K)]
        for j in range(K):
            if tied:
                F = U if rule == "sanger" else P + U
                st.S[(0, 0, k, j)] = clean(avg(sp.diff(F, lam[j]) + sp.diff(F, u[j])))
                st.N[(0, 0, k, j)] = clean(avg(-Gk[j]))
            else:
                st.S[(0, 0, k, j)] = clean(avg(sp.diff(P, lam[j])))
                st.S[(0, 1, k, j)] = clean(avg(sp.diff(P, u[j])))
                st.S[(1, 0, k, j)] = clean(avg(sp.diff(U, lam[j])))
                st.S[(1, 1, k, j)] = clean(avg(sp.diff(U, u[j])))
                st.N[(1, 1, k, j)] = clean(avg(-Gk[j]))
        st.drift[k] = clean(avg(P)) if bias == "trained" else []
    st.error = clean(avg(loss(range(K))))
    return st


@dataclass(frozen=True)
class Average:
    """``E[f(λ_k)]`` (``other`` None) or ``E[f(λ_k) h(λ_l)]``.

    ``own`` and ``other`` are tuples of factor keys ``(name, n)``: ``("g", n)`` is the
    n-th distributional derivative of g, ``("ga", n)`` the n-th derivative of its
    almost-everywhere derivative; f is their product.
    """
    own: tuple
    other: tuple | None = None

    @property
    def name(self) -> str:
        """Identifier of the generated function (``avg1_g1_a0``, ``avg2_a1__g0``...)."""
        def part(keys):
            return "_".join(("g" if n == "g" else "a") + str(d) for n, d in keys)
        return (f"avg1_{part(self.own)}" if self.other is None
                else f"avg2_{part(self.own)}__{part(self.other)}")

    @property
    def formula(self) -> str:
        """The average in words, e.g. ``E[g'(λ_k) ga(λ_k)]`` (ga: a.e. derivative)."""
        def part(keys, field):
            return " ".join(("g" if n == "g" else "ga") + "'" * d + f"(λ_{field})"
                            for n, d in keys)
        if self.other is None:
            return f"E[{part(self.own, 'k')}]"
        return f"E[{part(self.own, 'k')} {part(self.other, 'l')}]"


@dataclass(frozen=True)
class LTerm:
    """A lowered term: coeff is in symbols Q_x_y, R_x_y, T0_x_y, m_x with x, y in the
    role names 'k', 'j', 'l'; ``average`` is evaluated at the roles ``fields``."""
    coeff: sp.Expr
    average: Average
    fields: tuple          # ('k',) or ('k', 'j') / ('k', 'l') / ('l', 'k') ...


@dataclass
class Body:
    self_terms: list = field(default_factory=list)
    below: list = field(default_factory=list)    # summed over l < k
    above: list = field(default_factory=list)    # summed over l > k


@dataclass
class Lowered:
    tied: bool
    rule: str
    bias: str
    S: dict = field(default_factory=dict)        # (rb, cb) -> (diag Body, off_below, off_above)
    N: dict = field(default_factory=dict)
    drift: Body | None = None
    error_single: list = field(default_factory=list)
    error_pair: list = field(default_factory=list)   # summed over l < k

    @property
    def blocks(self):
        return 1 if self.tied else 2

    def averages(self):
        """Every distinct average the family needs."""
        out = set()
        for terms in self._all_terms():
            out.update(t.average for t in terms)
        return sorted(out, key=lambda a: a.name)

    def _all_terms(self):
        for table in (self.S, self.N):
            for diag, below, above in table.values():
                yield from (diag.self_terms, diag.below, diag.above, below, above)
        if self.drift is not None:
            yield from (self.drift.self_terms, self.drift.below, self.drift.above)
        yield self.error_single
        yield self.error_pair


def _combine(terms):
    """Sum the coefficients of equal averages (T0_kl/2 + T0_lk/2 -> T0_kl)."""
    acc = {}
    for t in terms:
        acc[t.factors] = acc.get(t.factors, 0) + t.coeff
    return [Term(sp.expand(c), f) for f, c in acc.items() if sp.expand(c) != 0]


def _rename(term: Term, roles: dict) -> LTerm:
    """Rename units to roles; the average's first field is the row unit when present."""
    sub = {}
    for s in term.coeff.free_symbols:
        name, *idx = s.name.split("_")
        sub[s] = sp.Symbol("_".join([name] + [roles[int(i)] for i in idx]), real=True)
    coeff = term.coeff.xreplace(sub)
    (a, fa), *rest = term.factors
    if not rest:
        return LTerm(coeff, Average(fa), (roles[a],))
    (b, fb), = rest
    if roles[b] == "k":      # the row unit first
        (a, fa), (b, fb) = (b, fb), (a, fa)
    return LTerm(coeff, Average(fa, fb), (roles[a], roles[b]))


def _diag_body(terms) -> Body:
    body = Body()
    for t in _combine(terms):
        units = t.units - {MID}
        if not units:
            body.self_terms.append(_rename(t, {MID: "k"}))
        elif units == {0}:
            body.below.append(_rename(t, {MID: "k", 0: "l"}))
        elif units == {2}:
            body.above.append(_rename(t, {MID: "k", 2: "l"}))
        else:
            raise AssertionError(f"diagonal term couples several other units: {t}")
    return body


def _off_body(terms, j):
    out = []
    for t in _combine(terms):
        if not t.units <= {MID, j}:
            raise AssertionError(f"off-diagonal term involves a third unit: {t}")
        out.append(_rename(t, {MID: "k", j: "j"}))
    return out


def lower(tied: bool, rule: str, bias: str) -> Lowered:
    st = derive_structure(tied, rule, bias, K_REP)
    low = Lowered(tied, rule, bias)
    blocks = {(rb, cb) for (rb, cb, _, _) in st.S}
    for table, out in ((st.S, low.S), (st.N, low.N)):
        for rb, cb in sorted(blocks):
            if (rb, cb, MID, MID) not in table:
                continue
            entry = (_diag_body(table[(rb, cb, MID, MID)]),
                     _off_body(table[(rb, cb, MID, 0)], 0), _off_body(table[(rb, cb, MID, 2)], 2))
            if any([entry[0].self_terms, entry[0].below, entry[0].above, entry[1], entry[2]]):
                out[(rb, cb)] = entry
    if bias == "trained":
        low.drift = _diag_body(st.drift[MID])
    # the error is symmetric in the units: unit 0 stands for every k, the pair (0, 1)
    # for every pair l < k
    for t in _combine(st.error):
        if t.units == {0}:
            low.error_single.append(_rename(t, {0: "k"}))
        elif t.units == {0, 1}:
            low.error_pair.append(_rename(t, {1: "k", 0: "l"}))
    return low


def expand(low: Lowered, K: int):
    """Entries at K units from the lowered bodies, in the format of derive_structure:
    {(rb, cb, k, j): [(coeff, Average, fields as unit numbers)]} for S and N, drift, error.
    Used to check the lowering against a direct derivation."""
    def inst(t: LTerm, roles):
        sub = {}
        for s in t.coeff.free_symbols:
            name, *idx = s.name.split("_")
            vals = [roles[i] for i in idx]
            if name in ("Q", "T0") and len(vals) == 2:
                vals = sorted(vals)
            sub[s] = sp.Symbol("_".join([name] + [str(v) for v in vals]), real=True)
        return (t.coeff.xreplace(sub), t.average, tuple(roles[f] for f in t.fields))

    def body(b: Body, k):
        out = [inst(t, {"k": k}) for t in b.self_terms]
        out += [inst(t, {"k": k, "l": l}) for l in range(k) for t in b.below]
        out += [inst(t, {"k": k, "l": l}) for l in range(k + 1, K) for t in b.above]
        return out

    S, N = {}, {}
    for table, out in ((low.S, S), (low.N, N)):
        for (rb, cb), (diag, below, above) in table.items():
            for k in range(K):
                out[(rb, cb, k, k)] = body(diag, k)
                for j in range(K):
                    if j != k:
                        out[(rb, cb, k, j)] = [inst(t, {"k": k, "j": j})
                                               for t in (below if j < k else above)]
    drift = {k: body(low.drift, k) if low.drift else [] for k in range(K)}
    error = [inst(t, {"k": k}) for k in range(K) for t in low.error_single]
    error += [inst(t, {"k": k, "l": l}) for k in range(K) for l in range(k) for t in low.error_pair]
    return S, N, drift, error

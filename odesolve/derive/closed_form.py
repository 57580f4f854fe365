"""Closed forms of Gaussian averages of activation functions (stage 2 of the pipeline).

Every term ``x^k exp(αx² + βx) Π erf(ax + b) 1[x > r]`` of a 1-D average is reduced by
completing the square to truncated normal moments (sin, cos, sinh and cosh of ``ax + b``
enter as exponentials, complex for sin and cos, and the real part is kept), and erf factors are removed by
Stein's lemma ``E[t F(t)] = E[F'(t)]`` down to ``E[erf(at + b)]`` and
``E[erf(a1 t) erf(a2 t)]`` (an arcsine); ``DiracDelta(x - r, n)`` terms give
``(-1)^n p^(n)(r)``, p the density.  In 2-D a delta factor is integrated exactly (its
field is fixed at the root and the other is conditionally Gaussian); otherwise one field
is averaged in closed form given the other, then the outer average is taken; failing that
(ReLU-type pairs) Price's theorem ``∂_c E[f h] = E[f' h']`` is integrated in c from
``E[f] E[h]`` at c = 0.  Nothing calls sympy's open-ended ``integrate`` (which can hang).
Whatever needs Owen's T or the bivariate normal CDF has no closed form: ``None``, and
:mod:`odesolve.derive.quadrature` takes over.  The contract with the derivation is in
:mod:`odesolve.derive.averages`.
"""
from __future__ import annotations

import functools
from math import comb

import sympy
from sympy.integrals.manualintegrate import manualintegrate

from ..spec.activations import X, as_expression, normalize

# Internal symbols of the derivations; results are re-expressed in the caller's.
_q1, _q2 = sympy.symbols("q1 q2", positive=True)
_c = sympy.Symbol("c", real=True)
_m1, _m2 = sympy.symbols("m1 m2", real=True)
_det = sympy.Dummy("det", positive=True)  # q1*q2 - c**2, positive keeps square roots apart
_xo = sympy.Dummy("xo", real=True)  # the conditioning variable
_u = sympy.Dummy("u", real=True)  # integration variable of 1-D delta terms
_SQRT2 = sympy.sqrt(2)
_MAX_PRICE_DEPTH = 3  # ReLU pairs need 2: (g, g) -> (H, H) -> (δ, δ)
_MAX_OPS = 3000  # larger raw closed forms are left to quadrature


def _is_zero(e):
    return e == 0 or sympy.cancel(sympy.expand(e)) == 0


def _density(x, mean, var):
    return sympy.exp(-(x - mean) ** 2 / (2 * var)) / sympy.sqrt(2 * sympy.pi * var)


# --------------------------------------------------------------------------- #
# 1-D closed forms
# --------------------------------------------------------------------------- #
def _parse_term(term):
    """``(coeff, k, alpha, beta, erfs, lo)`` for ``coeff x^k exp(alpha x^2 + beta x)
    prod erf(a x + b) 1[x > lo]``, or None when a factor is outside that family."""
    coeff, k, exponent, erfs, lo = sympy.Integer(1), 0, sympy.Integer(0), [], -sympy.oo
    for fac in sympy.Mul.make_args(term):
        if not fac.has(X):
            coeff *= fac
            continue
        if isinstance(fac, sympy.exp):
            if not fac.args[0].is_polynomial(X) or sympy.degree(fac.args[0], X) > 2:
                return None
            exponent += fac.args[0]
            continue
        base, power = fac.as_base_exp()
        if not (power.is_Integer and power > 0):
            return None
        if base == X:
            k += int(power)
        elif isinstance(base, sympy.erf) and base.args[0].is_polynomial(X) and sympy.degree(base.args[0], X) == 1:
            a, b = sympy.Poly(base.args[0], X).all_coeffs()
            erfs += [(a, b)] * int(power)
        elif isinstance(base, sympy.Heaviside):  # normalize() leaves Heaviside(x - r) only
            r = -base.args[0].subs(X, 0)
            if not r.is_number:
                return None
            lo = r if lo == -sympy.oo else sympy.Max(lo, r)
        else:
            return None
    poly = sympy.Poly(exponent, X)
    alpha, beta, gamma = (poly.coeff_monomial(X ** i) for i in (2, 1, 0))
    return coeff * sympy.exp(gamma), k, alpha, beta, tuple(erfs), lo


def _tail_moments(k, lo):
    """``E[t^j 1[t > lo]]`` for j = 0..k, t standard normal."""
    if lo == -sympy.oo:
        J = [sympy.Integer(1), sympy.Integer(0)]
        for j in range(2, k + 1):
            J.append((j - 1) * J[j - 2])
        return J[: k + 1]
    phi = sympy.exp(-lo ** 2 / 2) / sympy.sqrt(2 * sympy.pi)
    J = [sympy.erfc(lo / _SQRT2) / 2, phi]
    for j in range(2, k + 1):
        J.append((j - 1) * J[j - 2] + lo ** (j - 1) * phi)
    return J[: k + 1]


def _erf_base(erfs):
    """``E[prod erf(a t + b)]`` for t standard normal (None when not elementary)."""
    if not erfs:
        return sympy.Integer(1)
    if len(erfs) == 1:
        a, b = erfs[0]
        return sympy.erf(b / sympy.sqrt(1 + 2 * a ** 2))
    if len(erfs) == 2 and _is_zero(erfs[0][1]) and _is_zero(erfs[1][1]):
        (a1, _), (a2, _) = erfs
        return 2 / sympy.pi * sympy.asin(2 * a1 * a2 / sympy.sqrt((1 + 2 * a1 ** 2) * (1 + 2 * a2 ** 2)))
    return None


def _stein(j, erfs):
    """``E[t^j prod erf(a t + b)]``, t standard normal, by Stein's lemma
    E[t F(t)] = E[F'(t)]: each step trades a power of t for an erf derivative."""
    if j == 0:
        return _erf_base(erfs)
    lower = _stein(j - 2, erfs) if j >= 2 else sympy.Integer(0)
    if lower is None:            # two erfs with offsets (a trained bias): not elementary
        return None
    out = (j - 1) * lower
    for i, (a, b) in enumerate(erfs):
        others = erfs[:i] + erfs[i + 1:]
        part = _term_average(2 * a / sympy.sqrt(sympy.pi) * sympy.exp(-b ** 2), j - 1, -a ** 2, -2 * a * b,
                             others, -sympy.oo, sympy.Integer(0), sympy.Integer(1))
        if part is None:
            return None
        out += part
    return out


def _term_average(coeff, k, alpha, beta, erfs, lo, mean, var):
    """E of one parsed term over x ~ N(mean, var)."""
    if alpha == 0 and beta == 0:
        mu, sd, pref = mean, sympy.sqrt(var), coeff
    else:  # absorb the exponential into the Gaussian weight: N(mu, sd^2) times pref
        A = 1 / (2 * var) - alpha
        B = beta + mean / var
        mu, sd = B / (2 * A), 1 / sympy.sqrt(2 * A)
        pref = coeff * sympy.exp(B ** 2 / (4 * A) - mean ** 2 / (2 * var)) / sympy.sqrt(2 * A * var)
    t_lo = lo if lo == -sympy.oo else (lo - mu) / sd
    if not erfs:
        J = _tail_moments(k, t_lo)
    elif t_lo == -sympy.oo:
        t_erfs = tuple((a * sd, a * mu + b) for a, b in erfs)
        J = [_stein(j, t_erfs) for j in range(k + 1)]
        if any(v is None for v in J):
            return None
    else:  # erf on a half line: Owen's T function, not elementary
        return None
    return pref * sympy.Add(*[comb(k, j) * mu ** (k - j) * sd ** j * J[j] for j in range(k + 1)])


def _delta_at(delta_term, weight, var):
    """Integral of ``a delta^(n)(x - r)`` (normalized: constant a) against a smooth
    weight written in the symbol ``var``: (-1)^n a weight^(n)(r)."""
    delta = next(f for f in sympy.Mul.make_args(delta_term) if isinstance(f, sympy.DiracDelta))
    n = int(delta.args[1]) if len(delta.args) > 1 else 0
    r = -delta.args[0].subs(X, 0)
    return delta_term / delta * (-1) ** n * sympy.diff(weight, var, n).subs(var, r)


_TRIG = (sympy.sin, sympy.cos, sympy.sinh, sympy.cosh)


def _is_linear_in_x(u):
    return u.has(X) and u.is_polynomial(X) and sympy.degree(u, X) == 1


def _trig_as_exponentials(expr):
    """sin, cos, sinh and cosh of ``a x + b`` as exponentials (complex for sin and cos),
    products and integer powers distributed (sin² is E[g²] of sin), so each term is
    ``x^k exp(αx² + βx + γ) …`` with complex β, γ.  Exponentials are not split
    (``power_exp=False``): exp(a − b) as exp(a)·exp(−b) can overflow."""
    trig = lambda u: isinstance(u, _TRIG) and _is_linear_in_x(u.args[0])  # noqa: E731
    if not expr.has(*_TRIG) or not any(trig(u) for u in sympy.preorder_traversal(expr)):
        return expr
    return sympy.expand(expr.replace(trig, lambda u: u.rewrite(sympy.exp)),
                        power_exp=False, power_base=False, log=False)


def _real_part(part):
    """Re of one term's average.  The integrand is real, so E of the sum is the sum of
    the real parts; a term whose real part sympy cannot write without I (erfc of a
    complex argument: trig times a Heaviside) has no closed form here: None."""
    if not part.has(sympy.I):
        return part
    # one exponential with an expanded exponent, so sympy splits it into modulus and phase
    part = sympy.powsimp(part, combine="exp").replace(
        lambda u: isinstance(u, sympy.exp), lambda u: sympy.exp(sympy.expand(u.args[0])))
    part = sympy.re(part)
    return None if part.has(sympy.I, sympy.re, sympy.im) else part


@functools.lru_cache(maxsize=None)
def _avg1(expr, mean, var):
    """Closed form of E[expr(x)], x ~ N(mean, var), or None.

    Trigonometric factors of a linear argument are complex exponentials, whose averages
    complete the square like real ones (both sides are entire in β): E[e^{iax}] =
    e^{iam − a²q/2}, exact at every variance where quadrature of the oscillation fails."""
    expr = normalize(expr.replace(sympy.erfc, lambda u: 1 - sympy.erf(u)))
    total = sympy.Integer(0)
    for term in sympy.Add.make_args(_trig_as_exponentials(expr)):
        if term.has(sympy.DiracDelta):
            # integration variable distinct from _xo, on which mean may depend
            total += _delta_at(term, _density(_u, mean, var), _u)
            continue
        parsed = _parse_term(term)
        part = None if parsed is None else _term_average(*parsed, mean, var)
        part = None if part is None else _real_part(part)
        if part is None:
            return None
        total += part
    return total


# --------------------------------------------------------------------------- #
# 2-D closed forms
# --------------------------------------------------------------------------- #
def _split_delta(expr):
    terms = sympy.Add.make_args(expr)
    return ([t for t in terms if t.has(sympy.DiracDelta)],
            sympy.Add(*[t for t in terms if not t.has(sympy.DiracDelta)]))


def _conditional(which, m1, m2):
    """(mean, var) of the other field given field ``which`` equals _xo."""
    if which == 1:
        return m2 + _c / _q1 * (_xo - m1), _det / _q1
    return m1 + _c / _q2 * (_xo - m2), _det / _q2


def _delta_pair(delta_term, other, which, m1, m2):
    """E[a delta^(n)(x_which - r) other(x_other)]: integrate the delta exactly."""
    mean, var = _conditional(which, m1, m2)
    inner = _avg1(other, mean, var)
    if inner is None:
        return None
    own_mean, own_var = (m1, _q1) if which == 1 else (m2, _q2)
    return _delta_at(delta_term, inner * _density(_xo, own_mean, own_var), _xo)


def _conditioned(f, h, which, m1, m2):
    """Condition on field ``which``: average the other field in closed form given
    it (a Gaussian with mean linear in it), then average over field ``which``."""
    inner_fn, outer_fn = (h, f) if which == 1 else (f, h)
    mean, var = _conditional(which, m1, m2)
    inner = _avg1(inner_fn, mean, var)
    if inner is None:
        return None
    return _avg1(outer_fn * inner.subs(_xo, X), *((m1, _q1) if which == 1 else (m2, _q2)))


def _c_dependent_ok(expr):
    """True when ``expr`` depends on c only algebraically or through inverse trig
    functions: integrands sympy integrates in closed form quickly and reliably."""
    for sub in sympy.preorder_traversal(expr):
        if sub.has(_c):
            if sub.is_Function and not isinstance(sub, (sympy.asin, sympy.acos, sympy.atan)):
                return False
            if sub.is_Pow and sub.exp.has(_c):
                return False
    return True


def _price(f, h, m1, m2, depth):
    """Price's theorem: E[f h](c) = E[f] E[h] + int_0^c E[f' h'](c') dc'."""
    if depth >= _MAX_PRICE_DEPTH:
        return None
    ef, eh = _avg1(f, m1, _q1), _avg1(h, m2, _q2)
    if ef is None or eh is None:
        return None
    d = _pair(normalize(sympy.diff(f, X)), normalize(sympy.diff(h, X)), m1, m2, depth + 1)
    if d is None:
        return None
    d = d.subs(_det, _q1 * _q2 - _c ** 2)
    if not _c_dependent_ok(d):
        return None
    F = manualintegrate(d, _c)
    if F.has(sympy.Integral, sympy.Piecewise) or not _is_antiderivative(F, d):
        return None
    return ef * eh + sympy.expand_mul(F - F.subs(_c, 0))


def _is_antiderivative(F, d):
    """Spot check dF/dc = d at an admissible point (guards against branch slips)."""
    point = {_q1: 0.7, _q2: 1.3, _c: -0.4, _m1: 0.3, _m2: -0.2}
    lhs, rhs = complex(sympy.diff(F, _c).evalf(subs=point)), complex(d.evalf(subs=point))
    return abs(lhs - rhs) <= 1e-10 * (1 + abs(rhs))


@functools.lru_cache(maxsize=None)
def _pair(f, h, m1, m2, depth=0):
    """Closed form of E[f(x1) h(x2)] (f, h normalized), in _q1, _q2, _c, _det, or None."""
    if f == 0 or h == 0:
        return sympy.Integer(0)
    if not f.has(X) or not h.has(X):
        ef, eh = _avg1(f, m1, _q1), _avg1(h, m2, _q2)
        return None if ef is None or eh is None else ef * eh
    f_deltas, f_reg = _split_delta(f)
    h_deltas, h_reg = _split_delta(h)
    total = sympy.Integer(0)
    for t in f_deltas:
        part = _delta_pair(t, h, 1, m1, m2)
        if part is None:
            return None
        total += part
    for t in h_deltas:
        part = _delta_pair(t, f_reg, 2, m1, m2)
        if part is None:
            return None
        total += part
    if f_reg == 0 or h_reg == 0:
        return total
    part = _regular_pair(f_reg, h_reg, m1, m2, depth)
    return None if part is None else total + part


def _regular_pair(f, h, m1, m2, depth):
    if not f.has(X) or not h.has(X):
        return _pair(f, h, m1, m2, depth)
    # conditioning on either field can succeed; the two results differ in size
    # (the inner average should be the harder function), keep the smaller
    found = [r for r in (_conditioned(f, h, 1, m1, m2), _conditioned(f, h, 2, m1, m2)) if r is not None]
    if found:
        return min(found, key=sympy.count_ops)
    f_terms, h_terms = sympy.Add.make_args(f), sympy.Add.make_args(h)
    if len(f_terms) > 1 or len(h_terms) > 1:
        total = sympy.Integer(0)
        for a in f_terms:
            for b in h_terms:
                part = _regular_pair(a, b, m1, m2, depth)
                if part is None:
                    return None
                total += part
        return total
    return _price(f, h, m1, m2, depth)


# --------------------------------------------------------------------------- #
# Presentation of closed forms
# --------------------------------------------------------------------------- #
def _reduce_c(e):
    """Even powers of c in terms of det = q1 q2 - c^2, whose positivity sympy knows."""
    return e.replace(lambda p: p.is_Pow and p.base == _c and p.exp.is_Integer and abs(p.exp) >= 2,
                     lambda p: _c ** (p.exp % 2) * (_q1 * _q2 - _det) ** (p.exp // 2))


def _tidy(e):
    """Cheap simplification: factor radicands and function arguments.

    Written in det (positive) instead of c^2, radicands are recognisably positive,
    so sympy merges and splits square roots without ``force`` (which would be
    wrong for the sign of c).
    """
    e = _reduce_c(e)
    for _ in range(2):
        e = sympy.powsimp(e)
        e = e.replace(lambda p: p.is_Pow and not p.exp.is_Integer,
                      lambda p: sympy.Pow(sympy.factor(sympy.cancel(p.base)), p.exp))
        e = e.replace(lambda p: isinstance(p, (sympy.exp, sympy.erf, sympy.erfc, sympy.asin)),
                      lambda p: p.func(sympy.factor(sympy.cancel(sympy.powsimp(p.args[0])))))
        e = _reduce_c(e)
    return e.subs(_det, _q1 * _q2 - _c ** 2)


def _presentable(out):
    # a huge closed form is slow to tidy and to evaluate: quadrature serves better
    if out is None or sympy.count_ops(out) > _MAX_OPS:
        return None
    return _tidy(out)


@functools.lru_cache(maxsize=None)
def _closed_1(f, zero_mean):
    return _presentable(_avg1(f, sympy.Integer(0) if zero_mean else _m1, _q1))


@functools.lru_cache(maxsize=None)
def _closed_2(f, h, zero_mean_1, zero_mean_2):
    zero = sympy.Integer(0)
    return _presentable(_pair(f, h, zero if zero_mean_1 else _m1, zero if zero_mean_2 else _m2))


def _is_zero_mean(m):
    return as_expression(m) == 0


def gaussian_average_1(f, q, m=0):
    """Closed form of E[f(λ)], λ ~ N(m, q), or None.

    Parameters
    ----------
    f : sympy.Expr
        Function of :data:`~odesolve.spec.activations.X` (may contain Heaviside and
        DiracDelta, derivatives included).
    q, m : sympy.Expr or number
        Variance and mean.  ``m = 0`` (exactly) selects zero-mean formulas.

    Examples
    --------
    >>> import sympy
    >>> from odesolve.spec.activations import X
    >>> q = sympy.Symbol("q", positive=True)
    >>> gaussian_average_1(sympy.sqrt(2 / sympy.pi) * sympy.exp(-X**2 / 2), q)
    sqrt(2)/(sqrt(pi)*sqrt(q + 1))
    >>> gaussian_average_1(sympy.DiracDelta(X, 1), q, 1)  # -p'(0), p the N(1, q) density
    -sqrt(2)*exp(-1/(2*q))/(2*sqrt(pi)*q**(3/2))
    """
    out = _closed_1(normalize(as_expression(f)), _is_zero_mean(m))
    return None if out is None else out.xreplace({_q1: as_expression(q), _m1: as_expression(m)})


def gaussian_average_2(f, h, q1, q2, c, m1=0, m2=0):
    """Closed form of E[f(λ1) h(λ2)] or None.

    (λ1, λ2) is Gaussian with means (m1, m2), variances (q1, q2), covariance c.
    Zero means (passed as 0) give more closed forms (ReLU pairs); with means,
    averages that need the bivariate normal CDF return None.

    Examples
    --------
    >>> import sympy
    >>> from odesolve.spec.activations import X
    >>> q1, q2, c = sympy.symbols("q1 q2 c", real=True)
    >>> gaussian_average_2(sympy.Heaviside(X), sympy.Heaviside(X), q1, q2, c)
    asin(c/(sqrt(q1)*sqrt(q2)))/(2*pi) + 1/4
    >>> print(gaussian_average_2(X * sympy.Heaviside(X), X * sympy.Heaviside(X), q1, q2, c, 0.5, 0))
    None
    """
    f, h = normalize(as_expression(f)), normalize(as_expression(h))
    out = _closed_2(f, h, _is_zero_mean(m1), _is_zero_mean(m2))
    if out is None:
        return None
    values = (q1, q2, c, m1, m2)
    return out.xreplace({s: as_expression(v) for s, v in zip((_q1, _q2, _c, _m1, _m2), values)})


def closed_form_available(f, h=None, with_means=False):
    """Whether E[f] (or E[f(λ1) h(λ2)]) has a closed form, at zero or general means.

    >>> from odesolve.spec.activations import X
    >>> import sympy
    >>> relu = X * sympy.Heaviside(X)
    >>> closed_form_available(relu, relu), closed_form_available(relu, relu, with_means=True)
    (True, False)
    """
    m = _m1 if with_means else 0
    if h is None:
        return gaussian_average_1(f, _q1, m) is not None
    return gaussian_average_2(f, h, _q1, _q2, _c, m, _m2 if with_means else 0) is not None

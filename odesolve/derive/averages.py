"""Gaussian averages of activation functions: closed forms and numeric quadrature.

The derivation (:mod:`odesolve.derive.equations`) reduces the order-parameter equations to
averages over at most two jointly Gaussian pre-activations,

    E[f(λ)],            λ ~ N(m, q),
    E[f(λ1) h(λ2)],     (λ1, λ2) ~ N((m1, m2), [[q1, c], [c, q2]]),

where f and h are sympy expressions in :data:`odesolve.spec.activations.X` (products of
derivatives of the activation, with Heaviside steps and DiracDelta distributions
for non-smooth activations).  This module turns them into numbers.

**Closed forms** (:func:`gaussian_average_1`, :func:`gaussian_average_2`) are
derived exactly, never by open-ended ``integrate`` calls (which can hang):

* 1-D: every term ``x^k exp(αx² + βx) Π erf(ax + b) 1[x > r]`` is reduced by
  completing the square to truncated normal moments, and erf factors are removed
  by Stein's lemma ``E[t F(t)] = E[F'(t)]`` down to ``E[erf(at + b)]`` and
  ``E[erf(a1 t) erf(a2 t)]`` (an arcsine).  ``DiracDelta(x - r, n)`` terms give
  ``(-1)^n p^(n)(r)``, p the density.
* 2-D: a delta factor is integrated exactly (its field is fixed at the root and the
  other is conditionally Gaussian); otherwise one field is averaged in closed form
  given the other, then the outer average is taken; failing that (ReLU-type
  pairs) Price's theorem ``∂_c E[f h] = E[f' h']`` is integrated in c from
  ``E[f] E[h]`` at c = 0, when the integrand is algebraic or inverse-trigonometric
  in c (zero means).  Whatever needs Owen's T or the bivariate normal CDF (ReLU or
  erf pairs with means) has no closed form: None.

**Numeric averages** (:func:`numeric_average_source`) are numba functions: delta
terms exact, closed-form pieces printed, the rest composite Gauss-Legendre
quadrature of the standardised field(s) on [-10, 10], panels cut at kinks and at
the activation's unit scale; in 2-D the inner (conditional) average is a closed
form whenever the 1-D engine finds one.

**Contract with the derivation and the code generator.**  :func:`expect_1` and
:func:`expect_2` return a sympy expression: the closed form, or (when there is
none, or always when ``mode="numeric"`` or ``$ODESOLVE_AVERAGES=numeric``) a
placeholder call

    gauss_avg1_<hash>(q, m)                 gauss_avg2_<hash>(q1, q2, c, m1, m2)

of an undefined sympy function, one name per integrand (the hash is of the
normalized f, h, so equal integrands share a function; zero means are passed as
0).  :func:`numeric_sources` finds the placeholders in any expression tree and
returns ``{name: source}``; each source defines one ``@njit`` function of that
name using only ``math``, ``njit``, ``QuadratureRangeError`` and ``exp_erfc``
(:mod:`odesolve.spec.special`) from the host module, so the generator pastes it after
the template's imports and prints placeholders as plain calls.  Placeholders also evaluate through ``evalf`` and ``lambdify``
(scalars).  The registry lives in the process that created the placeholders.

>>> import math, sympy
>>> from odesolve.spec.activations import resolve_activation
>>> q1, q2, c = sympy.symbols("q1 q2 c", real=True)
>>> erf = resolve_activation("erf").expr
>>> expect_2(erf, erf, q1, q2, c)
2*asin(c/(sqrt(q1 + 1)*sqrt(q2 + 1)))/pi
>>> tanh = resolve_activation("tanh").expr
>>> e = expect_2(tanh, tanh, q1, q2, c)
>>> e
gauss_avg2_...(q1, q2, c, 0, 0)
>>> sources = numeric_sources(2 * e + 1)
>>> list(sources) == [e.func.__name__]
True
>>> namespace = {"math": math, "njit": lambda fn: fn}  # numba.njit in generated code
>>> exec(sources[e.func.__name__], namespace)
>>> round(namespace[e.func.__name__](1.0, 1.0, 0.5, 0.0, 0.0), 10)
0.1863244132
"""
from __future__ import annotations

import functools
import hashlib
import math
import os

import mpmath
import sympy
from sympy.core.function import AppliedUndef
from sympy.utilities.lambdify import implemented_function

from ..spec.activations import X, as_expression, normalize
from ..spec.special import stable_exp_erfc
from .closed_form import closed_form_available, gaussian_average_1, gaussian_average_2
from .quadrature import (fused_average_source, log_abs, numeric_average, numeric_average_1,
                         numeric_average_source, singular_order)

__all__ = ["expect_1", "expect_2", "numeric_sources", "fused_pair_sources", "family_average", "activation_factor",
           "check_sgd_averages", "closed_form_available", "gaussian_average_1",
           "gaussian_average_2", "numeric_average", "numeric_average_1", "numeric_average_source"]

# --------------------------------------------------------------------------- #
# Entry points of the derivation: closed form or placeholder
# --------------------------------------------------------------------------- #
_PREFIX = "gauss_avg"
_PLACEHOLDERS = {}  # name -> (kind, f, h, sympy function class)


def _placeholder(f, h):
    kind = 1 if h is None else 2
    digest = hashlib.sha256(f"{sympy.srepr(f)}|{sympy.srepr(h)}".encode()).hexdigest()[:12]
    name = f"{_PREFIX}{kind}_{digest}"
    if name not in _PLACEHOLDERS:
        # _imp_ lets lambdify and evalf evaluate the placeholder (scalars only)
        if kind == 1:
            def value(q, m):
                return numeric_average_1(f, q, m)
        else:
            def value(q1, q2, c, m1, m2):
                return numeric_average(f, h, q1, q2, c, m1, m2)
        _PLACEHOLDERS[name] = (kind, f, h, implemented_function(sympy.Function(name), value))
    return _PLACEHOLDERS[name][3]


def _mode(mode):
    mode = mode or os.environ.get("ODESOLVE_AVERAGES", "auto")
    if mode not in ("auto", "numeric"):
        raise ValueError(f"unknown averages mode {mode!r}: expected 'auto' or 'numeric'")
    return mode


def expect_1(f, q, m=0, mode=None):
    """E[f(λ)], λ ~ N(m, q), as a sympy expression.

    The closed form when there is one (``mode="auto"``), otherwise, or always with
    ``mode="numeric"`` (default: ``$ODESOLVE_AVERAGES``, else ``"auto"``), the
    placeholder call ``gauss_avg1_<hash>(q, m)``; see the module docstring.
    """
    f = normalize(as_expression(f))
    if not f.has(X):
        return f
    if _mode(mode) == "auto":
        out = gaussian_average_1(f, q, m)
        if out is not None:
            return out
    return _placeholder(f, None)(as_expression(q), as_expression(m))


def expect_2(f, h, q1, q2, c, m1=0, m2=0, mode=None):
    """E[f(λ1) h(λ2)] as a sympy expression: closed form or ``gauss_avg2_<hash>(q1, q2, c, m1, m2)``.

    Products on one field belong in :func:`expect_1`; a constant f or h reduces
    to it here.
    """
    f, h = normalize(as_expression(f)), normalize(as_expression(h))
    if not f.has(X):
        return f * expect_1(h, q2, m2, mode)
    if not h.has(X):
        return h * expect_1(f, q1, m1, mode)
    if _mode(mode) == "auto":
        out = gaussian_average_2(f, h, q1, q2, c, m1, m2)
        if out is not None:
            return out
    return _placeholder(f, h)(*map(as_expression, (q1, q2, c, m1, m2)))


def numeric_sources(expr):
    """``{name: source}`` of the numba functions behind the placeholders in ``expr``.

    Raises KeyError for a placeholder this process did not create (for example
    one read back from disk): its integrand is only known to the process that
    called :func:`expect_1` / :func:`expect_2`.
    """
    out = {}
    for app in sorted(as_expression(expr).atoms(AppliedUndef), key=str):
        name = app.func.__name__
        if not name.startswith(_PREFIX) or name in out:
            continue
        if name not in _PLACEHOLDERS:
            raise KeyError(f"unknown average placeholder {name}: re-derive the expression in this process")
        kind, f, h, _ = _PLACEHOLDERS[name]
        out[name] = numeric_average_source(kind, f, h, name)
    return out


def fused_pair_sources(expr, name_stem):
    """Quadratures of the pair placeholders of ``expr`` fused into one routine per
    combination of means.

    Every call ``gauss_avg2_<hash>(q1, q2, c, m1', m2')`` or, the fields swapped,
    ``(q2, q1, c, m2', m1')`` of ``expr`` is an average E[f(λ1) h(λ2)] (swapped:
    E[h(λ1) f(λ2)]) at the arguments ``(q1, q2, c)`` of one pair of units; those with the
    same means are computed together by one routine of
    :func:`~odesolve.derive.quadrature.fused_average_source`, in one pass.

    Parameters
    ----------
    expr : sympy.Basic
        Expressions in the symbols ``q1, q2, c, m1, m2`` (:data:`Q1` ...).
    name_stem : str
        Prefix of the routines' names (a hash of their integrands is appended).

    Returns
    -------
    calls : dict
        ``{placeholder call: (routine name, means, index)}``: the call's value is entry
        ``index`` of the tuple ``routine(q1, q2, c, *means)``.
    sources : dict
        ``{routine name: source}``.

    Raises
    ------
    ValueError
        For a pair placeholder called with other arguments (not a pair of units).
    KeyError
        For a placeholder this process did not create (as :func:`numeric_sources`).
    """
    groups = {}             # means -> {(f, h): index}
    where = {}
    for app in sorted(as_expression(expr).atoms(AppliedUndef), key=str):
        name = app.func.__name__
        if not name.startswith(f"{_PREFIX}2_"):
            continue
        if name not in _PLACEHOLDERS:
            raise KeyError(f"unknown average placeholder {name}: re-derive the expression in this process")
        _, f, h, _ = _PLACEHOLDERS[name]
        q1, q2, c, m1, m2 = app.args
        if (q1, q2, c) == (Q1, Q2, C):
            key, means = (f, h), (m1, m2)
        elif (q1, q2, c) == (Q2, Q1, C):
            key, means = (h, f), (m2, m1)
        else:
            raise ValueError(f"{app} is not an average over one pair of units")
        integrands = groups.setdefault(means, {})
        where[app] = (means, integrands.setdefault(key, len(integrands)))
    names, sources = {}, {}
    for means, integrands in groups.items():
        digest = hashlib.sha256(repr([sympy.srepr(means), *map(sympy.srepr, integrands)])
                                .encode()).hexdigest()[:12]
        names[means] = f"{name_stem}_{digest}"
        sources[names[means]] = fused_average_source(list(integrands), names[means])
    return {app: (names[means], means, index) for app, (means, index) in where.items()}, sources


# --------------------------------------------------------------------------- #
# The averages of a model family (see odesolve.derive.structure)
# --------------------------------------------------------------------------- #
#: Symbols of the generated average functions: E[f(λ)] of (q, m) and E[f(λ1) h(λ2)] of
#: (q1, q2, c, m1, m2).
Q, M = sympy.symbols("q m", real=True)
Q1, Q2, C, M1, M2 = sympy.symbols("q1 q2 c m1 m2", real=True)
#: x where the growth of an integrand is measured: E over N(m, q) exists for every q only
#: if log|f(x)| = o(x²).  The curvature a of log|f| in x (its second divided difference
#: over these equally spaced points) is the coefficient of x² in log|f(x)| = a x² + b x + c:
#: exp(c·x) and polynomials give a ≈ 0 for any c, exp(x²/1000) gives 1e-3.  A curvature
#: above _GROWTH_SLOPE is measured again 10⁸ times further out (_FAR_GROWTH_POINTS):
#: exp(a x²) keeps it, while growth like exp(|x|^(2−ε)), whose averages exist for every
#: q, has a curvature that decays like x^(−ε) (exp(|x|^1.5): 0.0027, then 2.7e-7).
_GROWTH_POINTS = (1e4, 2e4, 3e4)
_FAR_GROWTH_POINTS = (1e12, 2e12, 3e12)
_GROWTH_SLOPE = 1e-4
#: singular points of a periodic piece (tan) are checked in this window of x
_SINGULAR_WINDOW = 50


def activation_factor(activation, name: str, n: int):
    """``g^(n)`` (``name="g"``, distributional) or ``ga^(n)`` (``name="ga"``), where
    ``ga`` is the almost-everywhere derivative of g (its Dirac deltas dropped)."""
    if name == "g":
        return activation.derivative(n)
    d1 = activation.derivative(1)
    f = normalize(d1.xreplace({d: sympy.Integer(0) for d in d1.atoms(sympy.DiracDelta)}))
    for _ in range(n):
        f = normalize(sympy.diff(f, X))
    return f


def check_sgd_averages(activation) -> None:
    """Refuse an activation whose SGD has no Gaussian theory: E[g(λ)²] (the loss) or
    E[ga(λ)²] (the gradient; ga = g' almost everywhere) does not exist for some
    λ ~ N(m, q).  The simulator runs this check, so that it refuses what the theory
    refuses (e.g. 1/x, exp(x²), tan(x)) before any work.

    Raises
    ------
    ValueError
        Naming the activation, the average and the reason (as :func:`family_average`).
    """
    for keys, formula in (((("g", 0), ("g", 0)), "E[g(λ)²]"), ((("ga", 0), ("ga", 0)), "E[ga(λ)²]")):
        try:
            f = _integrand(activation, keys)
        except ValueError as err:
            raise ValueError(f"the Gaussian average {formula} of activation "
                             f"{activation.name!r} does not exist: {err}") from None
        _check_exists(activation, f, formula)


def _integrand(activation, keys):
    f = sympy.Integer(1)
    for name, n in keys:
        f = f * (X**n if name == "x" else activation_factor(activation, name, n))
    return normalize(f)


def family_average(activation, average, with_means: bool, mode=None):
    """The Gaussian average ``average`` (a :class:`~odesolve.derive.structure.Average`)
    of ``activation``: a closed form or a quadrature placeholder, in the symbols
    ``(Q, M)`` or ``(Q1, Q2, C, M1, M2)`` (zero means when ``with_means`` is False).

    A product with a derivative that is not a function (|x|^0.75: ga' has the
    ill-defined term |x|^(−1/4) δ(x)) is integrated by parts until every factor is one
    (:func:`_by_parts`).

    Raises
    ------
    ValueError
        Naming the activation and the reason when the average does not exist (a factor
        grows too fast for the Gaussian, or is not locally integrable).
    """
    zero = sympy.Integer(0)
    fields = ((Q, M if with_means else zero),) if average.other is None else (
        (Q1, M1 if with_means else zero), (Q2, M2 if with_means else zero))
    value = _average_of(activation, average, (average.own, average.other or ()), fields, C,
                        mode, _BY_PARTS_DEPTH)
    return stable_exp_erfc(value)


#: Integrations by parts one average may take (|x|^0.75 needs one, |x|^1.5 two).
_BY_PARTS_DEPTH = 3


def _average_of(activation, average, factors, fields, c, mode, depth):
    """E[Π factors[0](λ_1) · Π factors[1](λ_2)] (factor keys ``(name, n)``, name ``g``,
    ``ga`` or ``x`` for xⁿ) for the Gaussian ``fields`` ((q, m) of each) of covariance
    ``c``, by parts where a product is not a function."""
    functions = []
    for keys in factors:
        try:
            functions.append(_integrand(activation, keys))
        except ValueError as err:
            parts = _by_parts(activation, average, factors, fields, c, mode, depth) if depth else None
            if parts is None:
                raise ValueError(f"the Gaussian average {average.formula} of activation "
                                 f"{activation.name!r} does not exist: {err}") from None
            return parts
    for f in functions:
        _check_exists(activation, f, average.formula)
    if len(fields) == 1:
        return expect_1(functions[0], *fields[0], mode)
    (q1, m1), (q2, m2) = fields
    return expect_2(functions[0], functions[1], q1, q2, c, m1, m2, mode)


def _by_parts(activation, average, factors, fields, c, mode, depth):
    """One integration by parts on the highest derivative A⁽ⁿ⁾ of a field's factors.

    With F the other factors of that field (λ, of mean m and variance q) and h those of
    the other field (covariance c), Stein's lemma for F A⁽ⁿ⁻¹⁾ h in λ, with the other
    field's dependence on λ through its conditional mean, gives

        E[F A⁽ⁿ⁾ h] = E[F A⁽ⁿ⁻¹⁾ h (λ − m)]/q − E[F' A⁽ⁿ⁻¹⁾ h] − (c/q) E[F A⁽ⁿ⁻¹⁾ h'],

    which *defines* the product F A⁽ⁿ⁾ where it is not a function: it is the
    distributional (F A⁽ⁿ⁻¹⁾)' − F' A⁽ⁿ⁻¹⁾ that Stein's lemma produced in the
    derivation.  Returns None when no factor has a derivative to move (derived here, see
    docs/theory.md §3).
    """
    for side in range(len(factors)):
        keys = factors[side]
        movable = [i for i, (name, n) in enumerate(keys) if name != "x" and n > 0]
        if not movable:
            continue
        pick = max(movable, key=lambda i: keys[i][1])
        name, n = keys[pick]
        lowered = keys[:pick] + ((name, n - 1),) + keys[pick + 1:]
        q, m = fields[side]

        def term(own, other=None):
            new = list(factors)
            new[side] = own
            if other is not None:
                new[1 - side] = other
            return _average_of(activation, average, tuple(new), fields, c, mode, depth - 1)

        out = term(lowered + (("x", 1),)) / q - m / q * term(lowered)
        for i, key in enumerate(lowered):
            if i != pick:
                coefficient, raised = _raised(key)
                if coefficient:
                    out -= coefficient * term(lowered[:i] + (raised,) + lowered[i + 1:])
        if len(factors) == 2:
            other = factors[1 - side]
            for i, key in enumerate(other):
                coefficient, raised = _raised(key)
                if coefficient:
                    out -= c / q * coefficient * term(lowered, other[:i] + (raised,) + other[i + 1:])
        return out
    return None


def _raised(key):
    """``(coefficient, key')`` of the derivative of one factor: gⁿ → gⁿ⁺¹, xᵖ → p xᵖ⁻¹."""
    name, n = key
    if name == "x":
        return n, ("x", n - 1)
    return 1, (name, n + 1)


@functools.lru_cache(maxsize=None)
def _check_exists(activation, f, formula):
    """Raise ValueError when the Gaussian average of ``f`` does not exist for every q."""
    regular = sympy.Add(*[t for t in sympy.Add.make_args(f) if not t.has(sympy.DiracDelta)])
    if not regular.has(X):
        return
    where = f"the Gaussian average {formula} of activation {activation.name!r} does not exist"
    for side in (1, -1):
        curvature = _curvature(regular, side, _GROWTH_POINTS, where)
        if curvature > _GROWTH_SLOPE:
            far = _curvature(regular, side, _FAR_GROWTH_POINTS, where)
            if far > curvature / 2:
                raise ValueError(f"{where}: {sympy.sstr(regular)} grows like exp({far:.3g}·x²), "
                                 "too fast for a Gaussian of every variance")
    points, periodic = _singular_points(regular)
    for r in points:
        order = singular_order(regular, r)     # |f| ~ |x − r|^(−order)
        if order > 1 - 1e-3:
            like = (f"behaves like |x - {r:g}|^(-{order:.3g})" if math.isfinite(order)
                    else "diverges")       # 1/(x² − 1.0x + 0.25): Floats give 1/0
            raise ValueError(f"{where}: {sympy.sstr(regular)} {like} near x = {r:g}, "
                             "which is not integrable")
    if periodic is not None:
        raise ValueError(f"{where}: {sympy.sstr(regular)} is singular at infinitely many "
                         f"points ({sympy.sstr(periodic)}), which the quadrature cannot split at")


def _curvature(f, side, points, where):
    """The curvature of log|f| at ``side`` · ``points`` (equally spaced): its second
    divided difference over 2; −inf where f cannot be evaluated or vanishes out there
    (e.g. the dead side of a ReLU).

    Raises
    ------
    ValueError
        When |f| is beyond every float there (exp(exp(x)) at x = 10⁴).
    """
    try:
        logs = [log_abs(f, side * x) for x in points]
    except (TypeError, ValueError, OverflowError):
        return -math.inf
    if math.inf in logs:
        raise ValueError(f"{where}: {sympy.sstr(f)} grows faster than any exp(a·x²), too "
                         "fast for a Gaussian")
    if -math.inf in logs or any(math.isnan(v) for v in logs):
        return -math.inf
    step = points[1] - points[0]
    return (logs[2] - 2 * logs[1] + logs[0]) / (2 * step**2)


def _singular_points(f):
    """``(points, infinite)``: the kinks of f and the real points where a piece of f is
    singular (those within ±_SINGULAR_WINDOW when there are infinitely many), and the
    infinite set of singular points (None if there are finitely many).  Sets sympy cannot
    resolve (ConditionSet) are not checked."""
    points = {float(-a.args[0].subs(X, 0)) for a in f.atoms(sympy.Heaviside)}
    smooth = f.replace(lambda e: isinstance(e, sympy.Heaviside), lambda e: sympy.Integer(1))
    infinite = None
    try:
        from sympy.calculus.singularities import singularities
        found = singularities(smooth, X, sympy.S.Reals)
        if any(isinstance(part, sympy.ImageSet) for part in sympy.preorder_traversal(found)):
            infinite = found                                     # periodic poles (tan)
            found = found.intersect(sympy.Interval(-_SINGULAR_WINDOW, _SINGULAR_WINDOW))
        if isinstance(found, sympy.FiniteSet):
            points |= {float(p) for p in found if p.is_real}
    except (NotImplementedError, TypeError, ValueError, ArithmeticError,
            mpmath.libmp.NoConvergence):
        # no singular points found symbolically: only the kinks are checked (sympy's
        # numeric root finder gave up on log(1 + |x − 0.5|), whose pieces are regular)
        pass
    return sorted(points, key=abs), infinite     # the first reported is nearest to 0

"""Numeric Gaussian averages: numba source for composite Gauss-Legendre quadrature.

Delta terms are exact, closed-form pieces printed, the rest is quadrature of the
standardised field(s) on [-10, 10], panels cut at kinks and at the activation's unit
scale (an integrand not negligible at the edge is an error, not a truncated number); in 2-D the inner (conditional) average is a closed form whenever
:mod:`odesolve.derive.closed_form` finds one.
"""
from __future__ import annotations

import functools
import itertools
import math
from math import comb

import mpmath
import numba
import numpy as np
import sympy

from ..errors import QuadratureRangeError
from ..spec.activations import X, as_expression, normalize, print_code, step_regions
from ..spec.special import exp_erfc, stable_exp_erfc
from .closed_form import _avg1, _c, _density, _m1, _m2, _q1, _q2, _split_delta

# --------------------------------------------------------------------------- #
# Numeric quadrature: numba source
# --------------------------------------------------------------------------- #
_L = 10.0  # standardised range [-L, L]; the normal tail beyond carries < 1e-22
# ... for an integrand that grows slower than the Gaussian decays.  For one that does not
# (exp(2x) tanh x at q = 8, exp(|x|^1.5) at q = 2), the quadrature nodes in the edge band
# |t| > _EDGE carry about what is cut off: more than _TAIL of the total (and more than
# _TAIL_FLOOR, so that an average that is itself ~1e-22 is no alarm) raises
# QuadratureRangeError instead of returning a truncated number.
_EDGE = 9.9
_TAIL = 1e-10
_TAIL_FLOOR = 1e-12
_PANELS = 4  # uniform panels of [-L, L], cut further at the points below
_NODES = 16  # Gauss-Legendre nodes per panel
# Pre-activation values where activations of unit scale change shape: panels end
# there (and at kinks), so g(m + sqrt(q) t) is resolved for small and large q alike.
_FEATURES = (-8.0, -4.0, -1.0, -0.25, 0.0, 0.25, 1.0, 4.0, 8.0)
# sin and cos of a x + b (without a closed form: sin(x)·tanh(x)) oscillate with the period
# 2π/(|a| sd) in the standardised variable: no panel is longer than one period, since 16
# nodes over many periods alias (sin(3x) + tanh(x) was 30% off at q = 100), and beyond
# _MAX_PERIODS periods over [-L, L] the average raises QuadratureRangeError instead; of a
# polynomial p(x), the shortest period in the range, 2π/max|p′| (see _rate)
_MAX_PERIODS = 128
_VAR_FLOOR = 1e-14  # conditional variances >= this times the variance (|corr| -> 1)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GX, _GW = np.polynomial.legendre.leggauss(_NODES)
_MU = sympy.Symbol("mu", real=True)
_V = sympy.Symbol("v", positive=True)


class _Source:
    """Lines of one generated function, with fresh local names."""

    def __init__(self):
        self.lines, self.count = [], 0

    def name(self, stem):
        self.count += 1
        return f"{stem}_{self.count}"

    def emit(self, indent, text):
        self.lines.append("    " * indent + text)


def _code(expr, names):
    """Source of ``expr`` with symbols renamed to local variable names."""
    return print_code(stable_exp_erfc(as_expression(expr).xreplace({s: sympy.Symbol(n) for s, n in names.items()})))


def _shared_code(src, ind, exprs, names):
    """Sources of ``exprs`` (symbols renamed as in :func:`_code`) after emitting their
    common subexpressions as locals: the averages fused into one pass share the
    activation's values at a node (tanh, 1 − tanh², ... evaluate tanh once).  With
    steps, each region between them is a branch of its own (see
    :func:`~odesolve.spec.activations.by_regions`), whose locals are computed there only
    (√(−λ) of |λ|^2.5 is not evaluated at λ > 0)."""
    renamed = [stable_exp_erfc(as_expression(e).xreplace({s: sympy.Symbol(n) for s, n in names.items()}))
               for e in exprs]
    if len(renamed) == 1:
        return [print_code(renamed[0])]
    variables = [sympy.Symbol(n) for n in names.values()]
    regions = step_regions(renamed)
    if regions is None:
        return _common_subexpressions(src, ind, renamed, variables)
    outs = [src.name("value") for _ in renamed]
    for i, (condition, pieces) in enumerate(regions):
        src.emit(ind, "else:" if condition is None else f"{'if' if i == 0 else 'elif'} {print_code(condition)}:")
        for out, code in zip(outs, _common_subexpressions(src, ind + 1, pieces, variables)):
            src.emit(ind + 1, f"{out} = {code}")
    return outs


def _common_subexpressions(src, ind, exprs, variables):
    """Sources of ``exprs`` after emitting their common subexpressions as locals."""
    exprs = _integer_exponentials(src, ind, exprs, variables)
    replacements, reduced = sympy.cse(exprs, symbols=sympy.numbered_symbols(src.name("cse") + "_"),
                                      optimizations="basic")
    for symbol, value in replacements:
        src.emit(ind, f"{symbol} = {print_code(value)}")
    return [print_code(e) for e in reduced]


def _integer_exponentials(src, ind, exprs, variables):
    """``exprs`` with every exp(n·v), n a nonzero integer and v a variable, written as the
    n-th power of exp(v) or exp(−v), and those two emitted as locals: the derivatives of
    a logistic sigmoid, expanded, hold exp(±x), exp(±2x), exp(3x)..., one call each, where
    two calls serve them all.  Both signs are computed (not 1/exp(v)), so a value beyond
    floating point stays inf or 0 as before, never 1/0."""
    powers = {}

    def power(e):
        for v in variables:
            n = e.args[0] / v
            if n.is_Integer and n != 0:
                if (v, n > 0) not in powers:
                    powers[v, n > 0] = sympy.Symbol(src.name("exp"))
                return powers[v, n > 0] ** abs(n)
        return e

    out = [e.replace(lambda a: isinstance(a, sympy.exp), power) for e in exprs]
    for (v, positive), base in powers.items():
        src.emit(ind, f"{base} = math.exp({'' if positive else '-'}{v})")
    return out


def _kinks(expr):
    return sorted({float(-a.args[0].subs(X, 0)) for a in expr.atoms(sympy.Heaviside)})


def _points(expr):
    """Panel ends in pre-activation space: the features and the kinks of expr."""
    return sorted(set(_FEATURES) | set(_kinks(expr)))


def log_abs(f, x, digits=30):
    """log|f(x)| in mpmath arithmetic of ``digits`` digits (sympy's adaptive evalf can
    hang on the cancellations of far tails, e.g. 1 + erf(-10⁴)); inf where f is infinite
    or beyond every float there.  x enters as the exact rational of the float, so that
    sympy does not evaluate sin(x) etc. at 15 digits."""
    value = f.subs(X, sympy.Rational(x))
    if value.has(sympy.zoo, sympy.oo, -sympy.oo, sympy.nan):
        return math.inf
    with mpmath.workdps(digits):
        try:
            value = sympy.lambdify((), value, modules="mpmath")()
        except OverflowError:
            return math.inf
        except ValueError as err:
            # exp(exp(x)) at 10⁴: an exponent of more than 4,300 digits, beyond any float
            if "digits" in str(err):
                return math.inf
            raise
        return -math.inf if value == 0 else float(mpmath.log(abs(value)))


def singular_order(f, r):
    """a where |f(x)| grows like |x − r|^(−a) as x → r (the larger of the two sides, at
    least 0; inf where f is infinite near r), measured between |x − r| = 10⁻⁶ and 10⁻¹⁰.
    A side where f is not finite at both distances (NaN) is not counted."""
    order = 0.0
    for side in (1, -1):
        # 80 digits: a removable singularity cancels terms of size |x − r|^(−4) here
        # (the square of sinc', cos²x/x² − 2 sin x cos x/x³ + sin²x/x⁴, is ~x²/9)
        near, nearer = (log_abs(f, r + side * d, digits=80) for d in (1e-6, 1e-10))
        slope = (nearer - near) / math.log(1e4)
        if not math.isnan(slope):
            order = max(order, slope)
    return order


#: Gauss-Legendre nodes on a panel ending at a fractional power |t − r|^b of a kink
#: (b > −1: an integrable singularity for b < 0) are graded towards r, t − r ∝ u^p, with
#: p·min(1 + b, 1) ≥ _GRADING: the integrand in u is then u^(p(1+b)−1) times a smooth
#: function (a polynomial of degree 5 for b = −1/2), which the rule integrates to
#: rounding.  Without it E[|λ|^(−1/2)] came out 1.5 % low, E[|λ|^1.5] 1e-8.  A
#: logarithm at the kink (b = 0; its measured order, ~0.05, gives p = 7: u^6·log u)
#: without it: E[log|λ|] was off by 7e-4 and E[(1 + log|λ|)²] (g = x log|x|) by 7e-3.
#:
#: Around such a point r the panels end at r ± _LADDER (standard deviations): a graded
#: panel must be short on the Gaussian's scale (graded over [0, 1.46], E|λ|^(−1/2) at
#: q = 30 was 6e-8 off, and 3e-6 at q = 0.01), and each plain panel beyond starts at
#: least a quarter of its length away from r.  Panel ends that only serve resolution
#: (the uniform grid and the features) are not placed within _CLEARANCE of r: a plain
#: panel ending a distance d ≪ its length from the singularity converges slowly (the
#: grid point t = 0 lies 1e-5 from the kink of log|λ| when the mean is 1e-5: 2e-4 off).
_GRADING = 6.0
_LADDER = (0.25, 0.5)
_CLEARANCE = 1.0


def _grading(expr):
    """``(kinks, p)``: the kinks where expr (or any expression of a sympy Tuple) is not
    smooth on either side (a Pow of non-integer exponent or a logarithm whose argument
    vanishes there, e.g. |x|^0.75 or log|x| in Heaviside form) and the power p of the
    graded nodes there (``([], 1)`` when there are none)."""
    vanishing = [e.base for e in expr.atoms(sympy.Pow) if not e.exp.is_integer]
    vanishing += [e.args[0] for e in expr.atoms(sympy.log)]
    parts = expr.args if isinstance(expr, sympy.Tuple) else (expr,)
    # where they vanish: kinks (|x|^b and log|x| in Heaviside form), and the real roots of
    # polynomial ones, which no Heaviside marks (log(x²): 3.6 % off when not graded)
    roots = {float(r) for b in vanishing if b.has(X) and b.is_polynomial(X)
             for r in sympy.Poly(b, X).real_roots()}
    fractional = [r for r in sorted(set(_kinks(expr)) | roots)
                  if any(_vanishes(b, r) for b in vanishing)]
    if not fractional:
        return [], 1
    order = max(singular_order(part, r) for part in parts for r in fractional)  # a = −b
    return fractional, math.ceil(_GRADING / min(1.0 - order, 1.0))


def _vanishes(f, r) -> bool:
    """Whether f(r) = 0 (to 1e-12: r is a float root; a float 0 is not sympy's 0)."""
    try:
        return abs(complex(f.subs(X, r))) <= 1e-12
    except TypeError:          # not a number there (e.g. a zoo)
        return False


def _emit_panels(src, ind, point_tuples, body, graded=None, soft=(), step=None):
    """Gauss-Legendre loop over [-L, L] against the standard normal weight.

    Panels end at the uniform grid and at every point of the named tuples (in
    any order: each step looks for the nearest point ahead).  ``body(ind, t, w)``
    emits the accumulation at node ``t`` with weight ``w`` (Gaussian included).
    ``graded`` = (name of a tuple of standardised points, p, names of the mean and the
    standard deviation, name of the tuple of the same points in pre-activation space,
    their number): on a panel that starts (else ends) at one of those points, the nodes
    are graded towards it (see _GRADING).  ``soft``: names of tuples of points that, like
    the uniform grid, only serve resolution; with ``graded`` they and the grid are not
    used within _CLEARANCE of a graded point.  ``step``: name of the longest panel allowed
    (see :func:`_emit_period`).
    """
    lo, hi, k, g, p, hw, mid, i, t, w = (src.name(s) for s in ("lo", "hi", "k", "g", "p", "hw", "mid", "i", "t", "w"))
    src.emit(ind, f"{lo} = {-_L!r}")
    src.emit(ind, f"while {lo} < {_L!r}:")
    src.emit(ind + 1, f"{hi} = {_L!r}")
    clear = None
    if graded is not None:
        ok, j = src.name("ok"), src.name("j")

        def clear(i, x):     # whether the resolution point x is clear of the graded points
            src.emit(i, f"{ok} = True")
            src.emit(i, f"for {j} in range({graded[-1]}):")
            src.emit(i + 1, f"if abs({x} - {graded[0]}[{j}]) < {_CLEARANCE!r}:")
            src.emit(i + 2, f"{ok} = False")
    src.emit(ind + 1, f"for {k} in range(1, {_PANELS + 1}):")
    src.emit(ind + 2, f"{g} = {-_L!r} + {k} * {2 * _L / _PANELS!r}")
    src.emit(ind + 2, f"if {g} > {lo}:")
    if clear is None:
        src.emit(ind + 3, f"{hi} = {g}")
        src.emit(ind + 3, "break")
    else:
        clear(ind + 3, g)
        src.emit(ind + 3, f"if {ok}:")
        src.emit(ind + 4, f"{hi} = {g}")
        src.emit(ind + 4, "break")
    for tup in point_tuples:
        src.emit(ind + 1, f"for {p} in {tup}:")
        src.emit(ind + 2, f"if {lo} < {p} < {hi}:")
        if clear is None or tup not in soft:
            src.emit(ind + 3, f"{hi} = {p}")
        else:
            clear(ind + 3, p)
            src.emit(ind + 3, f"if {ok}:")
            src.emit(ind + 4, f"{hi} = {p}")
    if step is not None:
        src.emit(ind + 1, f"{hi} = min({hi}, {lo} + {step})")
    src.emit(ind + 1, f"{hw} = 0.5 * ({hi} - {lo})")
    src.emit(ind + 1, f"{mid} = 0.5 * ({hi} + {lo})")
    if graded is not None:
        points, power, mean, sd, raw, count = graded
        u, side, r = src.name("u"), src.name("side"), src.name("r")
        # side: +1 grades towards lo, -1 towards hi, 0 a plain panel; r: the point
        src.emit(ind + 1, f"{side} = 0.0")
        src.emit(ind + 1, f"{r} = 0.0")
        src.emit(ind + 1, f"for {j} in range({count}):")
        src.emit(ind + 2, f"if {points}[{j}] == {lo}:")
        src.emit(ind + 3, f"{side} = 1.0")
        src.emit(ind + 3, f"{r} = {raw}[{j}]")
        src.emit(ind + 2, f"elif {points}[{j}] == {hi} and {side} == 0.0:")
        src.emit(ind + 3, f"{side} = -1.0")
        src.emit(ind + 3, f"{r} = {raw}[{j}]")
    src.emit(ind + 1, f"for {i} in range({_NODES}):")
    if graded is None:
        src.emit(ind + 2, f"{t} = {mid} + {hw} * gx[{i}]")
        src.emit(ind + 2, f"{w} = {hw} * gw[{i}] * math.exp(-0.5 * {t} * {t})")
    else:
        src.emit(ind + 2, f"if {side} == 0.0:")
        src.emit(ind + 3, f"{t} = {mid} + {hw} * gx[{i}]")
        src.emit(ind + 3, f"{w} = {hw} * gw[{i}]")
        src.emit(ind + 2, "else:")
        src.emit(ind + 3, f"{u} = 0.5 * (1.0 + gx[{i}])")
        src.emit(ind + 3, f"{t} = ({lo} if {side} > 0.0 else {hi}) + {side} * 2.0 * {hw} * {u}**{power}")
        src.emit(ind + 3, f"{w} = {hw} * gw[{i}] * {power} * {u}**{power - 1}")
        # a node within rounding of the point lands on it (|λ − r|^(−a) = inf): it is
        # skipped, its weight times the value at its true distance being ~1e-11 of the
        # average
        src.emit(ind + 3, f"if {mean} + {sd} * {t} == {r}:")
        src.emit(ind + 4, "continue")
        src.emit(ind + 2, f"{w} *= math.exp(-0.5 * {t} * {t})")
    body(ind + 2, t, w)
    src.emit(ind + 1, f"{lo} = {hi}")


def _frequency(expr):
    """Bound of the angular frequency of the factors sin(p(x)), cos(p(x)) of ``expr``, p a
    polynomial with numeric coefficients: ``(d_0, d_1, ...)`` with |p′(x)| ≤ Σ_j d_j |x|^j
    for every such p (``(|a|,)`` for sin(a x + b); ``()`` without any); None when an
    argument is not such a polynomial (its period is not bounded; not checked)."""
    bound = []
    for u in sympy.preorder_traversal(expr):
        if isinstance(u, (sympy.sin, sympy.cos)) and u.args[0].has(X):
            arg = u.args[0]
            if not arg.is_polynomial(X):
                return None
            slope = sympy.Poly(sympy.diff(arg, X), X)
            if not all(c.is_number for c in slope.all_coeffs()):
                return None
            d = [abs(float(c)) for c in reversed(slope.all_coeffs())]
            bound = [max(a, b) for a, b in itertools.zip_longest(d, bound, fillvalue=0.0)]
    return tuple(bound)


def _rate(bound, scale, reach):
    """Code of the angular frequency per standard deviation of an oscillation whose
    frequency per unit x is at most Σ_j bound[j] |x|^j, over |x| ≤ ``reach``, for a
    standard deviation ``scale`` (code expressions): the panels follow the fastest
    oscillation in the range (sin(x²) at q = 3 had been 5e-4 off with panels of the
    spread alone)."""
    terms = [f"{d!r}" if j == 0 else f"{d!r} * ({reach}) ** {j}"
             for j, d in enumerate(bound) if d]
    return f"{scale} * ({' + '.join(terms) or '0.0'})"


def _shown(what):
    """The average named in an error message, at most 120 characters (an expanded
    integrand can be thousands), so that the message's reason stays whole."""
    return what if len(what) <= 120 else what[:117] + "..."


def _emit_period(src, ind, rate, what):
    """Emit the panel length cap of an oscillation of ``rate`` radians per standard
    deviation (a code expression; see _MAX_PERIODS); returns its name."""
    step = src.name("step")
    message = (f"the quadrature of the Gaussian average {_shown(what)} is not accurate here: its "
               f"integrand oscillates through more than {_MAX_PERIODS} periods within "
               f"{_L:g} standard deviations (a variance too large for this activation)")
    src.emit(ind, f"{step} = {2 * math.pi!r} / max({rate}, 1e-300)")
    src.emit(ind, f"if {step} * {_MAX_PERIODS} < {2 * _L!r}:")
    src.emit(ind + 1, f"raise QuadratureRangeError({message!r})")
    return step


def _panel_points(src, ind, f, mean, sd, name):
    """Emit the panel ends of a quadrature of f(mean + sd·t) over t: ``(names, graded)``,
    the names of the tuples of points and the ``graded`` argument of
    :func:`_emit_panels` (None where f has no singular kink).  With singular kinks the
    tuples are the kinks, the ladder around the singular ones (see _LADDER) and the
    features (resolution only)."""
    def emit(tup, points):
        src.emit(ind, f"{tup} = ({', '.join(f'({p!r} - {mean}) / {sd}' for p in points)},)")

    singular, power = _grading(f)
    if not singular:
        emit(name, _points(f))
        return [name], None
    features, sg, sgr, ladder = (src.name(s) for s in ("ft", "sg", "sgr", "ladder"))
    emit(name, sorted(set(_kinks(f)) | set(singular)))
    emit(features, _FEATURES)
    emit(sg, singular)
    src.emit(ind, f"{sgr} = ({', '.join(map(repr, singular))},)")
    src.emit(ind, f"{ladder} = ({', '.join(f'{sg}[{i}] {sign} {h!r}' for i in range(len(singular)) for h in _LADDER for sign in '-+')},)")
    return [name, ladder, features], (sg, power, mean, sd, sgr, len(singular))


def _emit_avg1(src, ind, exprs, mean, var, outs):
    """Emit ``out = E[expr(λ)]``, λ ~ N(mean, var) (mean, var: local names), for each
    ``expr`` of ``exprs`` and ``out`` of ``outs``.

    Terms with a closed form (DiracDelta terms always have one) are printed; the rest of
    every expression is integrated by one quadrature in the standardised variable, whose
    panels end at the points of all of them (extra panel ends only add accuracy).
    """
    numeric = []
    for expr, out in zip(exprs, outs):
        closed, rest = sympy.Integer(0), []
        for term in sympy.Add.make_args(normalize(expr)):
            part = _avg1(term, _MU, _V)
            if part is None:
                rest.append(term)
            else:
                closed += part
        src.emit(ind, f"{out} = {_code(closed, {_MU: mean, _V: var})}")
        if rest:
            numeric.append((sympy.Add(*rest), out))
    if not numeric:
        return
    integrands = sympy.Tuple(*(f for f, _ in numeric))
    sd, bp, lam = (src.name(s) for s in ("sd", "bp", "lam"))
    src.emit(ind, f"{sd} = math.sqrt({var})")
    tuples, graded = _panel_points(src, ind, integrands, mean, sd, bp)
    accs = [src.name("acc") for _ in numeric]
    tails = []
    for (f, _), acc in zip(numeric, accs):
        src.emit(ind, f"{acc} = 0.0")
        tails.append(_Tail(src, ind, f"E[f(λ)], f(x) = {sympy.sstr(f)}"))

    def body(i, t, w):
        src.emit(i, f"{lam} = {mean} + {sd} * {t}")
        for code, tail, acc in zip(_shared_code(src, i, integrands, {X: lam}), tails, accs):
            tail.add(i, t, f"{w} * ({code})", acc)

    frequency, step = _frequency(integrands), None
    if frequency:
        step = _emit_period(src, ind, _rate(frequency, sd, f"abs({mean}) + {_L!r} * {sd}"),
                            f"E[f(λ)], f(x) = {sympy.sstr(integrands[0])}")
    _emit_panels(src, ind, tuples, body, graded, soft=tuples[2:], step=step)
    for (_, out), tail, acc in zip(numeric, tails, accs):
        tail.check(ind, acc)
        src.emit(ind, f"{out} += {acc} * {_INV_SQRT_2PI!r}")


class _Tail:
    """The check that a quadrature's edge band is negligible (see _EDGE): emits the
    accumulation of each node's term into ``acc`` with its size and edge sums, and the
    final test raising QuadratureRangeError about ``what``."""

    def __init__(self, src, ind, what):
        self.src, self.what = src, what
        self.term, self.size, self.edge = src.name("term"), src.name("size"), src.name("edge")
        src.emit(ind, f"{self.size} = 0.0")
        src.emit(ind, f"{self.edge} = 0.0")

    def add(self, ind, t, term, acc):
        emit = self.src.emit
        emit(ind, f"{self.term} = {term}")
        emit(ind, f"{acc} += {self.term}")
        emit(ind, f"{self.size} += abs({self.term})")
        emit(ind, f"if abs({t}) > {_EDGE!r}:")
        emit(ind + 1, f"{self.edge} += abs({self.term})")

    def check(self, ind, acc):
        what = _shown(self.what)
        message = (f"the quadrature of the Gaussian average {what} is not accurate here: its "
                   f"integrand is not negligible at {_L:g} standard deviations (the "
                   "activation grows too fast for this variance)")
        self.src.emit(ind, f"if {self.edge} > {_TAIL!r} * {self.size} and {self.edge} > {_TAIL_FLOOR!r}:")
        self.src.emit(ind + 1, f"raise QuadratureRangeError({message!r})")
        # inf/inf or inf − inf where a term of the integrand overflows (the expanded
        # derivatives of a logistic sigmoid beyond |λ| ≈ 709): a number, not a NaN, or an error
        message = (f"the quadrature of the Gaussian average {what} is not a number here: its "
                   "integrand is NaN at some nodes: inf/inf where the activation's "
                   "derivatives overflow (a variance or a mean too large for them in floating "
                   "point), or order parameters that are not numbers")
        self.src.emit(ind, f"if {acc} != {acc}:")
        self.src.emit(ind + 1, f"raise QuadratureRangeError({message!r})")


def _emit_delta_pair(src, term, other, which, target):
    """target += E[a δ^(n)(λw − r) other(λo)] = a (−1)^n Σ_j C(n,j) p_w^(n−j)(r) (c/qw)^j
    E[other^(j) | λw = r]: the delta's field is integrated exactly; ``other`` given it is
    N(mean, v)."""
    delta = next(f for f in sympy.Mul.make_args(term) if isinstance(f, sympy.DiracDelta))
    n = int(delta.args[1]) if len(delta.args) > 1 else 0
    r = -delta.args[0].subs(X, 0)
    a = term / delta
    (qw, mw), mo = ((_q1, _m1), _m2) if which == 1 else ((_q2, _m2), _m1)
    mean = src.name("mean")
    src.emit(1, f"{mean} = {_code(mo + _c / qw * (r - mw), {})}")
    for j in range(n + 1):
        coeff = a * (-1) ** n * comb(n, j) * sympy.diff(_density(X, mw, qw), X, n - j).subs(X, r) * (_c / qw) ** j
        out = src.name("e")
        _emit_avg1(src, 1, [sympy.diff(other, X, j)], mean, "v1" if which == 1 else "v2", [out])
        src.emit(1, f"{target} += ({_code(coeff, {})}) * {out}")


def _emit_regular_pairs(src, pairs, targets):
    """targets[i] += E[f(λ1) h(λ2)] for the (f, h) of ``pairs``, free of deltas: one
    quadrature over λ1 for all of them, with the inner (conditional) averages of every
    distinct h in one inner quadrature per outer node."""
    fused = []
    for (f, h), target in zip(pairs, targets):
        if f.has(X) and h.has(X):
            fused.append((f, h, target))
            continue
        e1, e2 = src.name("e"), src.name("e")
        _emit_avg1(src, 1, [f], "m1", "q1", [e1])
        _emit_avg1(src, 1, [h], "m2", "q2", [e2])
        src.emit(1, f"{target} += {e1} * {e2}")
    if not fused:
        return
    fs = sympy.Tuple(*dict.fromkeys(f for f, _, _ in fused))
    hs = list(dict.fromkeys(h for _, h, _ in fused))
    src.emit(1, "s1 = math.sqrt(q1)")
    src.emit(1, "cs = c / s1")
    tuples, graded = _panel_points(src, 1, fs, "m1", "s1", "bp_f")
    # when λ2 | λ1 is narrow, h(λ2) is nearly a function of λ1: cut panels where the
    # conditional mean crosses h's features, and around h's kinks at the scale of the
    # conditional spread, where the inner average steps (scale 0 folds them onto t = 0)
    src.emit(1, "sc = s1 / c if (c != 0.0 and v1 < 0.25 * q2) else 0.0")
    src.emit(1, "sv = math.sqrt(v1)")
    all_h = sympy.Tuple(*hs)
    near_kinks = [f"{r!r} + {k!r} * sv" for r in _kinks(all_h) for k in _FEATURES if k != 0.0]
    src.emit(1, f"bp_h = ({', '.join(f'sc * ({p} - m2)' for p in [*map(repr, _points(all_h)), *near_kinks])},)")
    accs, tails = [], []
    for f, h, _ in fused:
        accs.append(src.name("acc"))
        src.emit(1, f"{accs[-1]} = 0.0")
        tails.append(_Tail(src, 1, f"E[f(λ1) h(λ2)], f(x) = {sympy.sstr(f)}, h(x) = {sympy.sstr(h)}"))

    def body(i, t, w):
        inner = [src.name("inner") for _ in hs]
        src.emit(i, f"lam1 = m1 + s1 * {t}")
        src.emit(i, f"mu = m2 + cs * {t}")
        _emit_avg1(src, i, hs, "mu", "v1", inner)
        outer = dict(zip(fs, _shared_code(src, i, fs, {X: "lam1"})))
        for (f, h, _), tail, acc in zip(fused, tails, accs):
            tail.add(i, t, f"{w} * ({outer[f]}) * {inner[hs.index(h)]}", acc)

    # the outer integrand oscillates through f(λ1) and through the inner averages'
    # conditional mean m2 + cs·t
    f_rate, h_rate, step = _frequency(fs), _frequency(all_h), None
    if f_rate is not None and h_rate is not None and (f_rate or h_rate):
        # λ2's range: the conditional means m2 + cs·t, widened by the inner spread
        rate = (f"{_rate(f_rate, 's1', f'abs(m1) + {_L!r} * s1')} + "
                f"{_rate(h_rate, 'abs(cs)', f'abs(m2) + {_L!r} * (abs(cs) + math.sqrt(v1))')}")
        step = _emit_period(src, 1, rate, f"E[f(λ1) h(λ2)], f(x) = {sympy.sstr(fs[0])}, "
                                          f"h(x) = {sympy.sstr(hs[0])}")
    _emit_panels(src, 1, [*tuples, "bp_h"], body, graded, soft=tuples[2:], step=step)
    for (_, _, target), tail, acc in zip(fused, tails, accs):
        tail.check(1, acc)
        src.emit(1, f"{target} += {acc} * {_INV_SQRT_2PI!r}")


def _emit_pairs(src, pairs):
    """Emit ``total_<i> = E[f_i(λ1) h_i(λ2)]`` for the (f, h) of ``pairs``: deltas exact,
    the rest in one fused quadrature (:func:`_emit_regular_pairs`); returns the names."""
    src.emit(1, f"det = max(q1 * q2 - c * c, {_VAR_FLOOR!r} * q1 * q2)")
    src.emit(1, "v1 = det / q1")  # variance of λ2 given λ1
    src.emit(1, "v2 = det / q2")  # variance of λ1 given λ2
    totals, regular, regular_targets = [], [], []
    for f, h in pairs:
        total = src.name("total")
        totals.append(total)
        src.emit(1, f"{total} = 0.0")
        f_deltas, f_reg = _split_delta(f)
        h_deltas, h_reg = _split_delta(h)
        for term in f_deltas:
            _emit_delta_pair(src, term, h, 1, total)
        for term in h_deltas:
            _emit_delta_pair(src, term, f_reg, 2, total)
        if f_reg != 0 and h_reg != 0:
            regular.append((f_reg, h_reg))
            regular_targets.append(total)
    _emit_regular_pairs(src, regular, regular_targets)
    return totals


def _header(src, func_name, args):
    if not str(func_name).isidentifier():
        raise ValueError(f"{func_name!r} is not a Python identifier")
    src.emit(0, "@njit")
    src.emit(0, f"def {func_name}({args}):")
    src.emit(1, f"gx = ({', '.join(map(repr, _GX.tolist()))})")
    src.emit(1, f"gw = ({', '.join(map(repr, _GW.tolist()))})")


def numeric_average_source(kind, f, h, func_name):
    """Source of a numba function evaluating a Gaussian average by quadrature.

    Parameters
    ----------
    kind : {1, 2}
        1: ``func_name(q, m)`` = E[f(λ)], λ ~ N(m, q) (``h`` must be None).
        2: ``func_name(q1, q2, c, m1, m2)`` = E[f(λ1) h(λ2)].
    f, h : sympy.Expr
        Functions of :data:`~odesolve.spec.activations.X`.
    func_name : str

    Returns
    -------
    str
        One ``@njit``-decorated function using only ``math`` and ``njit`` from
        the host namespace.  DiracDelta terms are integrated exactly (density
        derivatives times conditional averages), terms with a closed form are
        printed, the rest is composite Gauss-Legendre quadrature on [-10, 10]
        (standardised), with panels cut at kinks and at the activation scale.  At a
        variance where the integrand is not negligible at the edge of that range, the
        function raises :class:`~odesolve.errors.QuadratureRangeError` (a name the host
        namespace must provide) rather than return a truncated value.
    """
    if kind not in (1, 2) or (kind == 1) != (h is None):
        raise ValueError("kind 1 takes f only, kind 2 takes f and h")
    if kind == 2:
        return fused_average_source([(f, h)], func_name, scalar=True)
    src = _Source()
    _header(src, func_name, "q, m")
    _emit_avg1(src, 1, [normalize(as_expression(f))], "m", "q", ["total"])
    src.emit(1, "return total")
    return "\n".join(src.lines) + "\n"


def fused_average_source(pairs, func_name, scalar=False):
    """Source of one numba function ``func_name(q1, q2, c, m1, m2)`` returning the tuple
    ``(E[f_1(λ1) h_1(λ2)], E[f_2(λ1) h_2(λ2)], ...)`` for the (f, h) of ``pairs``.

    The averages are those of :func:`numeric_average_source` (the same deltas, closed
    pieces and panels, cut at the points of all of them), computed in one pass: one
    outer quadrature over λ1, and at each of its nodes one inner quadrature for every
    distinct h, the activation's values shared between the integrands.  The averages
    of one pair of units in a family's flow (E[g″ g], E[g′ g′], E[g g], both ways round)
    then cost about one quadrature instead of one each.

    Parameters
    ----------
    pairs : sequence of (sympy.Expr, sympy.Expr)
        ``(f, h)``, functions of :data:`~odesolve.spec.activations.X`.
    func_name : str
    scalar : bool
        Return the one average of a single pair as a float, not a 1-tuple.

    Returns
    -------
    str
        As :func:`numeric_average_source`.
    """
    pairs = [(normalize(as_expression(f)), normalize(as_expression(h))) for f, h in pairs]
    if not pairs or (scalar and len(pairs) != 1):
        raise ValueError("fused_average_source takes at least one pair (one with scalar=True)")
    src = _Source()
    _header(src, func_name, "q1, q2, c, m1, m2")
    totals = _emit_pairs(src, pairs)
    src.emit(1, f"return {totals[0] if scalar else '(' + ', '.join(totals) + ',)'}")
    return "\n".join(src.lines) + "\n"


@functools.lru_cache(maxsize=None)
def _compiled(kind, f, h, jit):
    source = numeric_average_source(kind, f, h, "average")
    namespace = {"math": math, "njit": numba.njit if jit else (lambda fn: fn),
                 "QuadratureRangeError": QuadratureRangeError, "exp_erfc": exp_erfc}
    exec(compile(source, "<odesolve.derive.averages>", "exec"), namespace)
    return namespace["average"]


def numeric_average_1(f, q, m=0.0, jit=True):
    """E[f(λ)], λ ~ N(m, q), by the quadrature of :func:`numeric_average_source`.

    ``jit=False`` runs the same source as plain Python (no compile time).

    >>> from odesolve.spec.activations import X
    >>> round(numeric_average_1(X**4, 2.0, 0.0, jit=False), 10)
    12.0
    """
    return _compiled(1, normalize(as_expression(f)), None, jit)(float(q), float(m))


def numeric_average(f, h, q1, q2, c, m1=0.0, m2=0.0, jit=True):
    """E[f(λ1) h(λ2)] by the quadrature of :func:`numeric_average_source`.

    >>> from odesolve.spec.activations import X
    >>> round(numeric_average(X**2, X**2, 1.0, 2.0, 0.5, jit=False), 10)  # q1 q2 + 2 c^2
    2.5
    """
    fn = _compiled(2, normalize(as_expression(f)), normalize(as_expression(h)), jit)
    return fn(float(q1), float(q2), float(c), float(m1), float(m2))

"""Activation functions as symbolic expressions, with numeric and numba back ends.

An :class:`Activation` stores ``g`` as a sympy expression in the real symbol
:data:`X`.  Non-smooth activations are kept in *Heaviside form* (``Max(0, x)``
becomes ``x*Heaviside(x)``, ``sign(x)`` becomes ``2*Heaviside(x) - 1``), so that
sympy differentiates them into Heaviside steps and DiracDelta distributions.
:func:`normalize` reduces such distributional expressions to a canonical sum in
which every DiracDelta term has a constant coefficient (``x*DiracDelta(x)`` is
``0``, ``x*DiracDelta(x, 1)`` is ``-DiracDelta(x)``); the Gaussian averages in
:mod:`odesolve.derive.averages` rely on that form.

Numeric conventions: ``Heaviside(0)`` is 1/2 symbolically (the symmetric
convention, which is what ``Heaviside(x)*DiracDelta(x) = DiracDelta(x)/2`` needs)
but 0 in the numpy and numba callables (``relu'(0) = 0``, as in autograd codes);
the difference lives on a null set.

>>> relu = resolve_activation("relu")
>>> relu.expr, relu.derivative(1), relu.derivative(2), relu.derivative(3)
(x*Heaviside(x), Heaviside(x), DiracDelta(x), DiracDelta(x, 1))
>>> resolve_activation("Max(0, x)") == Activation("Max(0, x)", relu.expr)
True
>>> print(resolve_activation("erf").numba_source(1, "erf_d1"), end="")
def erf_d1(x):
    return math.sqrt(2)*math.exp(-1/2*x**2)/math.sqrt(math.pi)
"""
from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from math import comb, isfinite

import numpy as np
import sympy
from sympy.core.function import AppliedUndef
from sympy.printing.pycode import PythonCodePrinter

from .special import EXP_ERFC

__all__ = ["X", "Activation", "BUILTIN_ACTIVATIONS", "NumbaPrinter", "by_regions", "normalize", "print_code", "step_regions",
           "resolve_activation", "parse_expression", "as_expression"]

#: The variable in which activations (and the averaged functions f, h) are written.
X = sympy.Symbol("x", real=True)


# --------------------------------------------------------------------------- #
# Canonical distributional form
# --------------------------------------------------------------------------- #
def _linear_coeffs(arg):
    """``(a, b)`` with ``arg = a*x + b`` and a, b free of x, or None."""
    poly = sympy.Poly(arg, X) if arg.is_polynomial(X) else None
    if poly is None or poly.degree() != 1:
        return None
    a, b = poly.all_coeffs()
    return a, b


def _indicator(cond):
    """Heaviside form of the indicator of a simple condition on x (Piecewise)."""
    if cond is sympy.true:
        return sympy.Integer(1)
    if cond is sympy.false:
        return sympy.Integer(0)
    if isinstance(cond, sympy.And):
        return sympy.Mul(*[_indicator(a) for a in cond.args])
    if isinstance(cond, sympy.Not):
        return 1 - _indicator(cond.args[0])
    if isinstance(cond, (sympy.StrictGreaterThan, sympy.GreaterThan)):
        return sympy.Heaviside(cond.lhs - cond.rhs)
    if isinstance(cond, (sympy.StrictLessThan, sympy.LessThan)):
        return sympy.Heaviside(cond.rhs - cond.lhs)
    raise ValueError(f"unsupported Piecewise condition {cond}")


def _piecewise_to_heaviside(pw):
    total, rest = sympy.Integer(0), sympy.Integer(1)  # rest: no earlier branch taken
    for expr, cond in pw.args:
        ind = _indicator(cond)
        total += expr * ind * rest
        rest *= 1 - ind
    return total


def _minmax_to_heaviside(e):
    args = list(e.args)
    out = args[0]
    for b in args[1:]:
        # Max(a, b) = b + (a - b) H(a - b); Min(a, b) = a - (a - b) H(a - b)
        if isinstance(e, sympy.Max):
            out = b + (out - b) * sympy.Heaviside(out - b)
        else:
            out = out - (out - b) * sympy.Heaviside(out - b)
    return out


def _canonical_heaviside(u):
    """H(a x + b) -> H(x + b/a) or 1 - H(x + b/a) (equal almost everywhere).

    A piecewise-linear argument (nested Min/Max, e.g. hard tanh ``Min(Max(x, -1), 1)``)
    is split on its inner steps: ``H(a + b H(x - r)) = H(a) (1 - H(x - r)) + H(a + b) H(x - r)``
    off the null set x = r.
    """
    inner = sorted(u.atoms(sympy.Heaviside), key=sympy.default_sort_key)
    if inner:
        h = inner[0]
        return (_canonical_heaviside(u.xreplace({h: sympy.Integer(0)})) * (1 - h)
                + _canonical_heaviside(u.xreplace({h: sympy.Integer(1)})) * h)
    if not u.has(X):
        return sympy.Heaviside(u)
    lin = _linear_coeffs(u)
    if lin is None or not lin[0].is_number:
        # Max(x, 0) + Min(0, exp(x) - 1) (ELU as PyTorch writes it) steps where exp(x) = 1
        raise ValueError(f"Heaviside/DiracDelta argument {u} is not linear in x (a step, Max "
                         "or Min must switch where a linear function of x changes sign; write "
                         "the pieces out, as in Piecewise((x, x > 0), (exp(x) - 1, True)))")
    a, b = lin
    h = sympy.Heaviside(X + b / a)
    return h if a > 0 else 1 - h


def _canonical_delta(u, n=0):
    """delta^(n)(a x + b) = sign(a)^n / |a|^(n+1) * delta^(n)(x + b/a)."""
    lin = _linear_coeffs(u)
    if lin is None or not lin[0].is_number:
        raise ValueError(f"Heaviside/DiracDelta argument {u} is not linear in x")
    a, b = lin
    return sympy.sign(a) ** n / abs(a) ** (n + 1) * sympy.DiracDelta(X + b / a, n)


def _reduce_delta_term(term):
    """Write ``s(x) * delta^(n)(x - r)`` as a sum of constant multiples of deltas.

    Distributionally  s delta^(n)(x - r) = sum_j (-1)^j C(n, j) s^(j)(r) delta^(n-j)(x - r),
    which needs s smooth at r; a Heaviside jump at r is accepted only for n = 0
    (with H(0) = 1/2) and anything worse leaves DiracDelta(0), which we reject.
    """
    factors = sympy.Mul.make_args(term)
    deltas = [f for f in factors if f.has(sympy.DiracDelta)]
    if not deltas:
        return term
    first = deltas[0]
    if not isinstance(first, sympy.DiracDelta):
        raise ValueError(f"ill-defined product of distributions: {term}")
    n = int(first.args[1]) if len(first.args) > 1 else 0
    r = -first.args[0].subs(X, 0)
    s = sympy.Mul(*[f for f in factors if f is not first])
    out = sympy.Integer(0)
    for j in range(n + 1):
        sj = _value_at(sympy.diff(s, X, j), r)
        if sj is None:
            raise ValueError(f"ill-defined product of distributions: {term} (its factor is "
                             f"singular at x = {r})")
        out += (-1) ** j * comb(n, j) * sj * sympy.DiracDelta(X - r, n - j)
    if any(not d.args[0].has(X) and d.args[0] == 0 for d in out.atoms(sympy.DiracDelta)):
        raise ValueError(f"ill-defined product of distributions: {term}")
    return out


def _value_at(s, r):
    """The value at x = r of a factor s(x) multiplying DiracDelta(x − r), or None.

    Substitution where it is finite; otherwise (a removable 0/0, e.g. x²/√|x| for
    g = |x|^1.5) the common limit from both sides, each side with its steps' values
    there; None if the limits differ or are infinite (the product has no meaning)."""
    value = s.subs(X, r)
    if not value.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        return value
    limits = []
    for side in "+-":
        # canonical steps H(x + c) take their value just to this side of r
        at_r = {h: h.args[0].subs(X, r) for h in s.atoms(sympy.Heaviside)}
        steps = {h: sympy.Integer(int(u > 0 or (u == 0 and side == "+")))
                 for h, u in at_r.items()}
        limits.append(sympy.limit(s.xreplace(steps), X, r, dir=side))
    if limits[0] != limits[1] or not limits[0].is_finite:
        return None
    return limits[0]


@functools.lru_cache(maxsize=4096)
def normalize(expr):
    """Canonical Heaviside/DiracDelta form of an expression in :data:`X`.

    Rewrites ``Abs``, ``sign``, ``Max``, ``Min`` and simple ``Piecewise`` into
    Heaviside steps of linear arguments, expands products, and reduces every
    product ``s(x) DiracDelta(x - r, n)`` to constant multiples of delta
    derivatives (so terms that vanish almost everywhere disappear).

    Parameters
    ----------
    expr : sympy.Expr
        Expression in ``X``.

    Returns
    -------
    sympy.Expr
        Sum of terms, each either free of DiracDelta or a constant times one
        ``DiracDelta(x - r, n)``.

    Raises
    ------
    ValueError
        For products of distributions without a meaning (``DiracDelta(x)**2``,
        ``Heaviside(x)*DiracDelta(x, 1)``) or non-linear step arguments.

    Examples
    --------
    >>> normalize(X * sympy.DiracDelta(X)), normalize(X**2 * sympy.DiracDelta(X, 2))
    (0, 2*DiracDelta(x))
    >>> normalize(sympy.Max(0, X) * sympy.Heaviside(X))
    x*Heaviside(x)
    """
    e = as_expression(expr)
    e = e.replace(lambda a: isinstance(a, sympy.Piecewise), _piecewise_to_heaviside)
    e = e.replace(lambda a: isinstance(a, (sympy.Max, sympy.Min)), _minmax_to_heaviside)
    e = e.replace(lambda a: isinstance(a, sympy.Abs), lambda a: a.args[0] * (2 * sympy.Heaviside(a.args[0]) - 1))
    e = e.replace(lambda a: isinstance(a, sympy.sign) and a.args[0].has(X),
                  lambda a: 2 * sympy.Heaviside(a.args[0]) - 1)
    e = e.replace(lambda a: isinstance(a, sympy.Heaviside), lambda a: _canonical_heaviside(a.args[0]))
    e = e.replace(lambda a: isinstance(a, sympy.DiracDelta), lambda a: _canonical_delta(*a.args))
    e = sympy.expand(e, power_exp=False, power_base=False, log=False)
    # H^k = H for k >= 1 (indicator functions)
    e = e.replace(lambda a: a.is_Pow and isinstance(a.base, sympy.Heaviside) and a.exp.is_Integer and a.exp > 0,
                  lambda a: a.base)
    # the terms of one delta are reduced together: their factors' sum can be regular at
    # its point while each is not (|x|^1.5: x·δ(x)/|x|^1.5 terms that cancel)
    alone, by_delta = [], {}
    for term in sympy.Add.make_args(e):
        deltas = [f for f in sympy.Mul.make_args(term) if f.has(sympy.DiracDelta)]
        if len(deltas) == 1 and isinstance(deltas[0], sympy.DiracDelta):
            by_delta[deltas[0]] = by_delta.get(deltas[0], 0) + term / deltas[0]
        else:
            alone.append(term)
    return sympy.Add(*[_reduce_delta_term(t) for t in alone],
                     *[_reduce_delta_term(sympy.Mul(factor, delta, evaluate=False))
                       for delta, factor in by_delta.items()])


# --------------------------------------------------------------------------- #
# Code printing
# --------------------------------------------------------------------------- #
class NumbaPrinter(PythonCodePrinter):
    """The one printer of generated code: Python that numba compiles, ``math.*`` calls
    only (the host module must ``import math``), Heaviside steps 0 at the origin.

    Parameters
    ----------
    placeholders : iterable of str
        Names of undefined functions printed as plain calls (the quadrature routines
        that :mod:`odesolve.derive.averages` pastes beside the code that calls them);
        ``exp_erfc`` (:mod:`odesolve.spec.special`, which the host module imports) always.

    Raises
    ------
    ValueError
        On printing a DiracDelta (a distribution has no code).
    """

    def __init__(self, placeholders=()):
        super().__init__({"fully_qualified_modules": True, "standard": "python3"})
        self.placeholders = frozenset(placeholders) | {EXP_ERFC.__name__}

    def _print_Function(self, expr):
        name = expr.func.__name__
        if name in self.placeholders:
            return f"{name}({', '.join(self._print(a) for a in expr.args)})"
        return super()._print_Function(expr)

    def _print_Integer(self, e):
        return super()._print_Integer(e) if abs(e.p) < _EXACT_INTEGERS else _float_literal(e)

    def _print_Rational(self, e):
        # numba types integer literals as int64: 3**64 or 39!!/2**40 would not compile
        return (super()._print_Rational(e) if max(abs(e.p), e.q) < _EXACT_INTEGERS
                else _float_literal(e))

    def _print_Heaviside(self, e):
        return f"(1.0 if ({self._print(e.args[0])}) > 0 else 0.0)"

    def _print_DiracDelta(self, e):
        raise ValueError(f"{e} is a distribution, not a function: it has no code")


#: Integers up to this size print as themselves (exact in float64); larger ones as floats.
_EXACT_INTEGERS = 2**53


def _float_literal(number):
    """The float64 literal of a sympy number, or ValueError beyond float64's range."""
    try:
        value = float(number)
    except OverflowError:
        value = float("inf")
    if not isfinite(value):
        raise ValueError(f"the constant {sympy.sstr(number)[:40]} is beyond double precision")
    return repr(value)


def print_code(expr):
    """Python/numba source of ``expr`` (:class:`NumbaPrinter`; ``import math`` needed),
    its steps resolved region by region (:func:`by_regions`)."""
    return NumbaPrinter().doprint(by_regions(expr))


def by_regions(expr):
    """``expr`` with its steps ``Heaviside(v − r)`` (one variable v, numeric r) resolved
    region by region: a Piecewise whose pieces sympy simplifies separately.

    The canonical form of ELU, x H(x) − eˣ H(x) + eˣ + H(x) − 1, cancels eˣ in floating
    point for x > 36 (and is inf − inf beyond 709): the ELU pair average by quadrature
    was 14% off at q = 300.  By regions it is x for x > 0 and eˣ − 1 below.  Steps are 0
    at their point, as everywhere in the generated code.

    >>> print(by_regions(normalize(sympy.Piecewise((X, X > 0), (sympy.exp(X) - 1, True)))))
    Piecewise((exp(x) - 1, x <= 0), (x, True))
    """
    split = step_regions([expr])
    if split is None:
        return expr
    return sympy.Piecewise(*[(pieces[0], True if cond is None else cond) for cond, pieces in split])


def step_regions(exprs):
    """The expressions ``exprs`` region by region of their steps (see :func:`by_regions`):
    ``[(condition, [piece of each expression]), ..., (None, [...])]``, conditions
    ``v <= r`` in increasing r, the last region without one; None when the steps are not
    all ``Heaviside(v − r)`` of one variable v and numbers r (or there are none)."""
    steps = set().union(*(e.atoms(sympy.Heaviside) for e in exprs))
    variables = set().union(*(h.args[0].free_symbols for h in steps)) if steps else set()
    if len(variables) != 1:
        return None
    v = variables.pop()
    points = {}
    for h in steps:
        r = v - h.args[0]
        if not r.is_number:
            return None
        points[h] = r
    cuts = sorted(set(points.values()), key=float)

    def pieces(above):      # the expressions where v lies above the points ``above``
        values = {h: sympy.Integer(int(r in above)) for h, r in points.items()}
        return [e.xreplace(values) for e in exprs]

    return ([(v <= r, pieces(cuts[:i])) for i, r in enumerate(cuts)]
            + [(None, pieces(cuts))])


# --------------------------------------------------------------------------- #
# Activation
# --------------------------------------------------------------------------- #
def _problem(expr):
    """Why ``expr`` is not a valid activation in x, or None."""
    if not isinstance(expr, sympy.Expr):
        return "not a sympy expression"
    extra = expr.free_symbols - {X}
    if extra:
        return "free symbols other than x: " + ", ".join(sorted(map(str, extra)))
    undefined = expr.atoms(AppliedUndef)
    if undefined:
        return "undefined functions: " + ", ".join(sorted(str(u.func) for u in undefined))
    if not expr.has(X):
        return "constant expression"
    if expr.has(sympy.DiracDelta):
        return "a distribution, not a function"
    for point in _PROBES:
        value = complex(expr.subs(X, point).evalf())
        if value.imag != 0 or not isfinite(value.real):
            return f"not real-valued (g({point}) = {value})"
    # far out too, where √(x + 2.5) and log(x + 2.5) turn complex (they passed the probes
    # above, then failed in the averages for a wrong reason): the imaginary part only, in
    # sympy's arbitrary-exponent floats, so that exp(x) or x²⁰ (1e4000 at these points,
    # valid activations) are not mistaken for non-finite values
    for point in _FAR_PROBES:
        value = expr.subs(X, point).evalf()
        real, imag = value.as_real_imag()
        if imag.is_number and imag != 0 and abs(imag) > 1e-12 * max(1, abs(real)):
            return f"not real-valued (g({point}) = {sympy.N(value, 4)})"
    return None


#: Points at which an activation must have a finite real value.
_PROBES = (-2.3, -0.7, 0.4, 1.9)
#: Points out to |x| ≈ 1000 (a pre-activation of that size is rare, but g must still be
#: real there: Gaussian averages see the whole line), and near 0 (√(x² − 10⁻⁶) is
#: imaginary only within 10⁻³ of it); none is round, so that an activation with a pole at
#: an integer or a root at ±10 is not judged at that point.
_FAR_PROBES = (-0.00071, 0.00093, -0.031, 0.029, -3.7, 3.7, -5.3, 5.3, -9.7, 9.7, -31.3, 31.3,
               -98.3, 98.3, -317.3, 317.3, -1013.7, 1013.7)


@functools.lru_cache(maxsize=1024)
def _derivative(expr, n):
    return expr if n == 0 else normalize(sympy.diff(_derivative(expr, n - 1), X))


@functools.lru_cache(maxsize=1024)
def _numpy_callable(expr, n):
    d = _derivative(expr, n)
    if d.has(sympy.DiracDelta):
        raise ValueError(f"derivative {n} of {expr} is a distribution ({d}), not a function")
    regions = step_regions([d]) or [(None, [d])]
    # each region's own expression on its own points only (by_regions: no cancellation;
    # and no warnings from a piece evaluated where it does not apply, e.g. √(−x) at x > 0)
    tests = [None if c is None else sympy.lambdify(X, c, modules="numpy") for c, _ in regions]
    pieces = [sympy.lambdify(X, p, modules=["scipy", "numpy"]) for _, (p,) in regions]

    def g(x):
        x = np.asarray(x, dtype=float)
        out, left = np.empty(x.shape), np.ones(x.shape, dtype=bool)
        for test, piece in zip(tests, pieces):
            here = left if test is None else left & test(x)
            out[here] = np.broadcast_to(piece(x[here]), x[here].shape)  # constants too
            left &= ~here
        return out
    return g


@dataclass(frozen=True)
class Activation:
    """An activation g(x) given by a sympy expression in :data:`X`.

    Parameters
    ----------
    name : str
        Label used in messages and file names.
    expr : sympy.Expr
        g as an expression in ``X``; stored in :func:`normalize` form.

    Examples
    --------
    >>> g = Activation("cubic", X + X**3 / 10)
    >>> g.derivative(1), float(g.numpy(2.0)), g.kinks
    (3*x**2/10 + 1, 2.8, ())
    """

    name: str
    expr: sympy.Expr

    def __post_init__(self):
        try:
            expr = as_expression(self.expr)
        except (TypeError, ValueError) as err:
            raise type(err)(f"invalid activation {self.name!r}: {err}") from None
        # any symbol spelled x is the variable, whatever its assumptions
        expr = expr.xreplace({s: X for s in expr.free_symbols if getattr(s, "name", "") == "x"})
        reason = _problem(expr)
        if reason is None:
            expr = normalize(expr)
            reason = _problem(expr)
        if reason is not None:
            raise ValueError(f"invalid activation {self.name!r}: {reason}")
        object.__setattr__(self, "expr", expr)

    def derivative(self, n):
        """n-th derivative (sympy, Heaviside/DiracDelta form, cached)."""
        return _derivative(self.expr, int(n))

    @property
    def numpy(self):
        """Vectorised numpy callable of g."""
        return _numpy_callable(self.expr, 0)

    def numpy_derivative(self, n):
        """Vectorised numpy callable of the n-th derivative (steps are 0 at 0).

        Raises ValueError when that derivative contains DiracDelta.
        """
        return _numpy_callable(self.expr, int(n))

    def numba_source(self, n, name):
        """Source of a scalar ``def name(x)`` for the n-th derivative.

        The text uses ``math.*`` only (the host module must ``import math``) and
        compiles under ``numba.njit``.  Raises ValueError when the derivative
        contains DiracDelta.
        """
        if not str(name).isidentifier():
            raise ValueError(f"{name!r} is not a Python identifier")
        body = print_code(self.derivative(n))
        return f"def {name}(x):\n    return {body}\n"

    @property
    def kinks(self):
        """Sorted points where g or one of its derivatives is not smooth."""
        args = [a.args[0] for a in self.expr.atoms(sympy.Heaviside, sympy.DiracDelta)]
        return tuple(sorted({float(-a.subs(X, 0)) for a in args}))

    @property
    def is_piecewise(self):
        """True for activations with steps or kinks (Heaviside form)."""
        return bool(self.kinks)

    @functools.cached_property
    def key(self):
        """Stable string identifying the function g (not the name); kept after the first
        call (every integrate looks its family up by it; srepr took 0.2 ms)."""
        return sympy.srepr(self.expr)


# Names a user expression may use.  Every other bare name is a plain Symbol (rejected by
# the activation checks) and every other call is refused by the parser, so parsing never
# reaches Python: the text is read by :func:`parse_expression` node by node, never evaluated.
_FUNCTIONS = {
    name: getattr(sympy, name)
    for name in ("exp", "log", "sqrt", "sin", "cos", "tan", "sinh", "cosh", "tanh", "asinh", "atan",
                 "erf", "erfc", "Abs", "sign", "Max", "Min", "Heaviside", "Piecewise")
}
_FUNCTIONS.update({"abs": sympy.Abs, "max": sympy.Max, "min": sympy.Min})
# common spellings of activations, written out in the functions above (so the averages,
# derivatives and generated code see only those): relu is the built-in name, usable
# inside an expression too (``relu(x - 0.3)``)


def relu(u):
    return sympy.Max(u, 0)


def sigmoid(u):
    return 1 / (1 + sympy.exp(-u))


def softplus(u):
    return sympy.log(1 + sympy.exp(u))


_FUNCTIONS.update({f.__name__: f for f in (relu, sigmoid, softplus)})
#: Spelled-out functions that also name an activation alone (relu is a built-in already).
_SPELLED = ("sigmoid", "softplus")
_CONSTANTS = {"pi": sympy.pi, "E": sympy.E, "x": X, "True": sympy.true, "False": sympy.false}
_NUMBER_TYPES = {"Integer": sympy.Integer, "Rational": sympy.Rational, "Float": sympy.Float}
_BINARY = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
           ast.Mult: lambda a, b: a * b, ast.Div: lambda a, b: a / b}
_COMPARE = {ast.Gt: sympy.StrictGreaterThan, ast.GtE: sympy.GreaterThan,
            ast.Lt: sympy.StrictLessThan, ast.LtE: sympy.LessThan}

#: Limits that keep the cost of reading an expression bounded (milliseconds): its length,
#: its number of syntax nodes, the size of a number and of an exponent.  ``x*9**9**9``
#: would otherwise build a 370-million-digit integer, ``(x + 1)**100000`` a huge
#: expansion in :func:`normalize`.
MAX_EXPRESSION_LENGTH = 500
MAX_EXPRESSION_NODES = 200
MAX_EXPONENT = 64
MAX_NUMBER = 1e15


def parse_expression(text: str) -> sympy.Basic:
    """Read a user expression in ``x`` into sympy: the one parser of strings in the package.

    The text is parsed by :mod:`ast` and rebuilt node by node from numbers, ``x``, ``pi``,
    ``E``, the operators ``+ - * / **`` (``^`` is a power; a variable exponent needs a
    positive numeric base, ``E**x``), comparisons (inside ``Piecewise``) and calls of the
    whitelisted functions (``exp``, ``erf``, ``tanh``, ``Max``, ``Piecewise``, …, and
    ``relu(u) = Max(u, 0)``, ``sigmoid(u) = 1/(1 + exp(−u))``, ``softplus(u) =
    log(1 + exp(u))``); nothing is ever evaluated as Python, so no string can run
    code.  Sizes are bounded before sympy sees them (length, node count, |number| ≤ 10¹⁵,
    |exponent| ≤ 64), so every accepted string is read in milliseconds.

    Parameters
    ----------
    text : str

    Returns
    -------
    sympy.Basic

    Raises
    ------
    ValueError
        Naming the construct that is not allowed or too large; for an unknown function,
        listing the functions available.

    Examples
    --------
    >>> parse_expression("tanh(2*x) + x^2/10")
    x**2/10 + tanh(2*x)
    >>> parse_expression("x*9**9**9")
    Traceback (most recent call last):
    ...
    ValueError: exponent 387420489 is too large (at most 64)
    >>> parse_expression("__import__('os')")
    Traceback (most recent call last):
    ...
    ValueError: forbidden name '__import__'
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a string, got {type(text).__name__}")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ValueError(f"expression too long ({len(text)} characters, at most "
                         f"{MAX_EXPRESSION_LENGTH})")
    if "#" in text:
        # no string constant is allowed, so a '#' can only open a comment, which ast
        # would drop silently with whatever followed it ("tanh(x) # + x")
        raise ValueError("'#' starts a Python comment, which is not part of an expression")
    try:
        tree = ast.parse(text.strip().replace("^", "**"), mode="eval")
    except SyntaxError as err:
        raise ValueError(f"syntax error: {err.msg}") from None
    except (RecursionError, MemoryError):
        raise ValueError("expression nested too deeply") from None
    nodes = sum(1 for _ in ast.walk(tree))
    if nodes > MAX_EXPRESSION_NODES:
        raise ValueError(f"expression too large ({nodes} syntax nodes, at most "
                         f"{MAX_EXPRESSION_NODES})")
    try:
        expr = _build(tree.body)
    except RecursionError:
        raise ValueError("expression nested too deeply") from None
    # sizes of the constants sympy computed (3**64, 1e15*1e15), as of the numbers typed
    for number in expr.atoms(sympy.Number) if isinstance(expr, sympy.Basic) else ():
        if number.is_finite and abs(number) > MAX_NUMBER:
            raise ValueError(f"constant {float(number):.3g} is too large (at most "
                             f"{MAX_NUMBER:g} in size)")
    return expr


def _number(value):
    if not np.isfinite(value) or abs(value) > MAX_NUMBER:
        raise ValueError(f"number {value!r} is too large (at most {MAX_NUMBER:g} in size)")
    return sympy.Integer(value) if isinstance(value, int) else sympy.Float(value)


def _power(base, exponent):
    if not exponent.is_number:
        if base.is_number and base.is_positive:
            # b**u = exp(u log b): E**x is exp(x), 2**x is exp(x log 2), the form whose
            # Gaussian averages have closed forms; the exponent's size needs no bound here
            return sympy.exp(exponent * sympy.log(base))
        raise ValueError(f"exponent {exponent} must be a number (or the base a positive "
                         f"number, as in E**x)")
    size = abs(complex(exponent.evalf(15)))
    if size > MAX_EXPONENT:
        raise ValueError(f"exponent {exponent} is too large (at most {MAX_EXPONENT})")
    if base.is_number and abs(complex(base.evalf(15))) > MAX_NUMBER:
        raise ValueError(f"number {base} is too large (at most {MAX_NUMBER:g} in size)")
    return base ** exponent


def _build(node):
    """sympy object of one syntax node (recursively); ValueError for anything else."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool):          # the default branch of a Piecewise
            return sympy.true if node.value else sympy.false
        if not isinstance(node.value, (int, float)):
            raise ValueError(f"unsupported constant {node.value!r}")
        return _number(node.value)
    if isinstance(node, ast.Name):
        if node.id.startswith("_"):
            raise ValueError(f"forbidden name {node.id!r}")
        if node.id in _FUNCTIONS or node.id in _NUMBER_TYPES:
            raise ValueError(f"{node.id} is a function: call it, e.g. {node.id}(x)")
        return _CONSTANTS[node.id] if node.id in _CONSTANTS else sympy.Symbol(node.id)
    if isinstance(node, ast.BinOp):
        left, right = _build(node.left), _build(node.right)
        if isinstance(node.op, ast.Pow):
            return _power(left, right)
        if type(node.op) not in _BINARY:
            raise ValueError(f"unsupported operator {ast.unparse(node)!r}")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _build(node.operand)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.Tuple):
        return sympy.Tuple(*[_build(e) for e in node.elts])
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
        return _COMPARE[type(node.ops[0])](_build(node.left), _build(node.comparators[0]))
    if isinstance(node, ast.Call):
        return _call(node)
    raise ValueError(f"unsupported syntax {ast.unparse(node)!r}")


def _call(node):
    if not isinstance(node.func, ast.Name) or node.keywords or any(
            isinstance(a, ast.Starred) for a in node.args):
        raise ValueError(f"unsupported call {ast.unparse(node)!r}")
    name = node.func.id
    if name.startswith("_"):
        raise ValueError(f"forbidden name {name!r}")
    args = [_build(a) for a in node.args]
    if name in _NUMBER_TYPES:
        if not args or not all(a.is_Number for a in args):
            raise ValueError(f"{name}() takes numbers, got {ast.unparse(node)!r}")
        return _NUMBER_TYPES[name](*args)
    if name == "Piecewise":
        return sympy.Piecewise(*[tuple(a) if isinstance(a, sympy.Tuple) else a for a in args])
    if name == "Heaviside" and len(args) != 1:
        # sympy's second argument is the value at 0, which no Gaussian average or SGD
        # step sees (λ = 0 has probability 0): the package fixes it (module doc)
        raise ValueError(f"{ast.unparse(node)!r}: Heaviside takes one argument here (its "
                         "value at 0 does not change any Gaussian average)")
    if name not in _FUNCTIONS:
        # refused here, not left to sympy as an undefined function: the message can say
        # what is available (a misspelt or unknown name would otherwise only be named)
        raise ValueError(f"unknown function {name!r}: the functions are "
                         f"{', '.join(sorted(_FUNCTIONS, key=str.lower))}")
    function = _FUNCTIONS[name]
    try:
        return function(*args)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{ast.unparse(node)!r}: {err}") from None


def as_expression(value) -> sympy.Basic:
    """A user value as a sympy object: strings through :func:`parse_expression` (never
    :func:`sympy.sympify`, which evaluates strings), numbers and sympy objects as they are."""
    if isinstance(value, str):
        return parse_expression(value)
    if isinstance(value, sympy.Basic):
        return value
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return sympy.sympify(value, strict=True)
    raise TypeError(f"expected a string or a sympy expression, got {type(value).__name__}")


BUILTIN_ACTIVATIONS = {
    "linear": Activation("linear", X),
    "erf": Activation("erf", sympy.erf(X / sympy.sqrt(2))),
    "relu": Activation("relu", X * sympy.Heaviside(X)),
    "sign": Activation("sign", 2 * sympy.Heaviside(X) - 1),
    "tanh": Activation("tanh", sympy.tanh(X)),
}

def _shown(text) -> str:
    """``repr(text)``, cut to its start when long (an error line echoes what was given)."""
    shown = repr(text)
    return shown if len(shown) <= 80 else f"{shown[:60]}… ({len(shown)} characters)"


def resolve_activation(spec):
    """Turn a user specification into an :class:`Activation`.

    Parameters
    ----------
    spec : Activation, str or sympy.Expr
        An Activation; a built-in name (linear, erf, relu, sign, tanh); a sympy
        expression in x; or a string sympy parses into an expression of the single
        free symbol x, e.g. ``"tanh(2*x)"``, ``"x + 0.1*x**3"``, ``"Max(0,x)"``.

    Raises
    ------
    ValueError
        Naming ``spec`` and the reason (unknown name, other free symbols, undefined
        functions, constant, complex values, unsupported syntax).

    Examples
    --------
    >>> resolve_activation("x + 0.1*x**3").expr
    0.1*x**3 + x
    >>> resolve_activation("foo")
    Traceback (most recent call last):
    ValueError: unknown activation 'foo': expected one of linear, erf, relu, sign, tanh, sigmoid, softplus or a sympy expression in x (free symbols other than x: foo)
    """
    if isinstance(spec, Activation):
        return spec
    expected = ("expected one of " + ", ".join([*BUILTIN_ACTIVATIONS, *_SPELLED])
                + " or a sympy expression in x")
    if isinstance(spec, str):
        text = spec.strip()
        if text.lower() in BUILTIN_ACTIVATIONS:
            return BUILTIN_ACTIVATIONS[text.lower()]
        name = " ".join(text.split())     # one line (log lines, titles), as typed otherwise
        try:
            # a spelled-out function named alone ("sigmoid") is that function of x
            expr = parse_expression(f"{text.lower()}(x)" if text.lower() in _SPELLED else text)
        except ValueError as err:
            raise ValueError(f"unknown activation {_shown(spec)}: {expected} ({err})") from None
    elif isinstance(spec, sympy.Basic):
        name = str(spec)
        # accept any symbol spelled x, whatever its assumptions
        expr = spec.xreplace({s: X for s in spec.free_symbols if s.name == "x"})
    else:
        raise TypeError(f"activation must be a name, an expression in x or an Activation, "
                        f"got {spec!r} ({type(spec).__name__})")
    try:
        return Activation(name, expr)
    except ValueError as err:
        reason = str(err).split(": ", 1)[-1]
        if isinstance(expr, sympy.Basic) and expr.free_symbols - {X}:
            # a name that is not x: a misspelt or unknown activation
            raise ValueError(f"unknown activation {_shown(spec)}: {expected} ({reason})") from None
        # read, but not a function of x that can be an activation: the reason alone
        raise ValueError(f"invalid activation {_shown(spec)}: {reason}") from None

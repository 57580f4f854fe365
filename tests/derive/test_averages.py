"""Gaussian averages: closed forms vs quadrature vs Monte Carlo, placeholders, numba.

Monte Carlo of averages with DiracDelta terms uses exact Gaussian smoothing
(:mod:`odesolve.testing.gaussian_mc`).
"""
import math
import zlib

import mpmath
import numba
import numpy as np
import pytest
import sympy

from odesolve.derive import averages, closed_form
from odesolve.errors import QuadratureRangeError
from odesolve.testing.gaussian_mc import EPS, mc_average_1, mc_average_2
from odesolve.spec.activations import X, resolve_activation
from odesolve.derive.averages import (closed_form_available, expect_1, expect_2,
                                      fused_average_source, gaussian_average_1,
                                      gaussian_average_2, numeric_average, numeric_average_1,
                                      numeric_average_source, numeric_sources)

H, D = sympy.Heaviside, sympy.DiracDelta
Q1, Q2, C, M1, M2 = sympy.symbols("Q1 Q2 C M1 M2", real=True)
ACTIVATIONS = ["linear", "erf", "relu", "sign", "tanh", "x + 0.1*x**3", "sin(2*x + 0.5) + 0.3*x"]
# pairs (derivative order of f on λ1, of h on λ2) and single-field products
PAIRS = {"g'g'": (1, 1), "g''g": (2, 0), "gg": (0, 0), "g'g": (1, 0), "g''g'": (2, 1), "g'''g": (3, 0)}
SINGLES = {"g": (0,), "g'": (1,), "g'''": (3,), "g'g": (1, 0), "g'^2": (1, 1), "g^2": (0, 0)}
MC_SAMPLES = 200_000


def _seed(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _pair_params(rng, means):
    q1, q2 = rng.uniform(0.3, 2.0, 2)
    c = rng.uniform(-0.9, 0.9) * math.sqrt(q1 * q2)
    m1, m2 = rng.normal(0.0, 0.7, 2) if means else (0.0, 0.0)
    return float(q1), float(q2), float(c), float(m1), float(m2)


def _functions(act, orders):
    g = resolve_activation(act)
    return [g.derivative(n) for n in orders]


def _single(act, family):
    return sympy.Mul(*_functions(act, SINGLES[family]))


# ----------------------------------------------------------------------------- theory
def _theory_2(f, h, p):
    """Closed form when there is one, else quadrature (plain Python, no compile)."""
    means = (M1, M2) if p[3] or p[4] else (0, 0)  # zero means: the zero-mean formulas
    closed = gaussian_average_2(f, h, Q1, Q2, C, *means)
    if closed is None:
        return numeric_average(f, h, *p, jit=False)
    return float(closed.subs(dict(zip((Q1, Q2, C, M1, M2), p))))


def _theory_1(f, q, m):
    closed = gaussian_average_1(f, Q1, M1 if m else 0)
    if closed is None:
        return numeric_average_1(f, q, m, jit=False)
    return float(closed.subs({Q1: q, M1: m}))


# ------------------------------------------------------------------------ Monte Carlo
def _mc_2(f, h, p, rng):
    return mc_average_2(f, h, p, rng, MC_SAMPLES, EPS)


def _mc_1(f, q, m, rng):
    return mc_average_1(f, q, m, rng, MC_SAMPLES, EPS)


# ------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("means", [False, True], ids=["m=0", "m"])
@pytest.mark.parametrize("family", PAIRS)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_pair_average_matches_monte_carlo(act, family, means):
    rng = _seed("mc2", act, family, means)
    f, h = _functions(act, PAIRS[family])
    p = _pair_params(rng, means)
    mc, se, shifted = _mc_2(f, h, p, rng)
    assert abs(_theory_2(f, h, shifted) - mc) < 4 * se + 1e-12


@pytest.mark.parametrize("means", [False, True], ids=["m=0", "m"])
@pytest.mark.parametrize("family", SINGLES)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_single_average_matches_monte_carlo(act, family, means):
    if act == "sign" and family in ("g'g", "g'^2"):
        pytest.skip("products of a delta with a step or a delta at its jump")
    rng = _seed("mc1", act, family, means)
    f = _single(act, family)
    q, m = float(rng.uniform(0.3, 2.0)), float(rng.normal(0.0, 0.7)) if means else 0.0
    mc, se, q_shifted = _mc_1(f, q, m, rng)
    assert abs(_theory_1(f, q_shifted, m) - mc) < 4 * se + 1e-12


@pytest.mark.parametrize("means", [False, True], ids=["m=0", "m"])
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_closed_forms_agree_with_quadrature(act, means):
    rng = _seed("quad", act, means)
    m = (M1, M2) if means else (0, 0)
    for family, orders in PAIRS.items():
        f, h = _functions(act, orders)
        closed = gaussian_average_2(f, h, Q1, Q2, C, *m)
        if closed is None:
            continue
        fn = sympy.lambdify((Q1, Q2, C, M1, M2), closed, "math")
        for _ in range(3):
            p = _pair_params(rng, means)
            assert numeric_average(f, h, *p, jit=False) == pytest.approx(fn(*p), rel=1e-9, abs=1e-10), family
    for family in SINGLES:
        if act == "sign" and family == "g'^2":
            continue
        f = _single(act, family)
        closed = gaussian_average_1(f, Q1, m[0])
        if closed is None:
            continue
        fn = sympy.lambdify((Q1, M1), closed, "math")
        for _ in range(3):
            q, mean = float(rng.uniform(0.1, 5.0)), float(rng.normal(0, 1.5)) if means else 0.0
            assert numeric_average_1(f, q, mean, jit=False) == pytest.approx(fn(q, mean), rel=1e-9, abs=1e-10)


def test_known_erf_results():
    erf = resolve_activation("erf")
    g, g1 = erf.derivative(0), erf.derivative(1)
    q1, q2 = sympy.symbols("q1 q2", positive=True)
    c = sympy.Symbol("c", real=True)
    pi = sympy.pi
    assert sympy.simplify(gaussian_average_1(g1, q1) - sympy.sqrt(2 / pi) / sympy.sqrt(1 + q1)) == 0
    assert sympy.simplify(gaussian_average_2(g, g, q1, q2, c)
                          - 2 / pi * sympy.asin(c / sympy.sqrt((1 + q1) * (1 + q2)))) == 0
    assert sympy.simplify(gaussian_average_2(g1, g1, q1, q2, c)
                          - 2 / pi / sympy.sqrt((1 + q1) * (1 + q2) - c**2)) == 0
    m = sympy.Symbol("m", real=True)  # E[g] with a mean: erf(m / sqrt(2 (1 + q)))
    assert sympy.simplify(gaussian_average_1(g, q1, m) - sympy.erf(m / sympy.sqrt(2 * (1 + q1)))) == 0


def test_known_relu_and_sign_results():
    relu, sign = resolve_activation("relu"), resolve_activation("sign")
    rng = np.random.default_rng(7)
    gg = sympy.lambdify((Q1, Q2, C), gaussian_average_2(relu.expr, relu.expr, Q1, Q2, C), "math")
    hh = sympy.lambdify((Q1, Q2, C), gaussian_average_2(H(X), H(X), Q1, Q2, C), "math")
    ss = sympy.lambdify((Q1, Q2, C), gaussian_average_2(sign.expr, sign.expr, Q1, Q2, C), "math")
    for _ in range(5):
        q1, q2 = rng.uniform(0.1, 4.0, 2)
        c = rng.uniform(-1, 1) * math.sqrt(q1 * q2)
        cos = c / math.sqrt(q1 * q2)
        theta = math.acos(cos)
        arc_cosine = math.sqrt(q1 * q2) / (2 * math.pi) * (math.sin(theta) + (math.pi - theta) * cos)
        assert gg(q1, q2, c) == pytest.approx(arc_cosine, rel=1e-13)
        assert hh(q1, q2, c) == pytest.approx(0.25 + math.asin(cos) / (2 * math.pi), rel=1e-13)
        assert ss(q1, q2, c) == pytest.approx(2 / math.pi * math.asin(cos), rel=1e-12, abs=1e-14)
    q = sympy.Symbol("q", positive=True)
    assert gaussian_average_1(sign.derivative(1), q) == sympy.sqrt(2) / (sympy.sqrt(sympy.pi) * sympy.sqrt(q))


@pytest.mark.parametrize("act, missing_at_zero_means, missing_with_means", [
    ("linear", set(), set()),
    ("x + 0.1*x**3", set(), set()),
    ("erf", set(), {"gg"}),  # Owen's T
    ("relu", set(), {"gg", "g'g'", "g'g"}),  # bivariate normal CDF
    ("sign", set(), {"gg"}),
    ("tanh", set(PAIRS), set(PAIRS)),
    ("sin(2*x + 0.5) + 0.3*x", set(), set()),  # complex exponentials
])
def test_closed_form_availability(act, missing_at_zero_means, missing_with_means):
    for family, orders in PAIRS.items():
        f, h = _functions(act, orders)
        assert closed_form_available(f, h) == (family not in missing_at_zero_means), family
        assert closed_form_available(f, h, with_means=True) == (family not in missing_with_means), family
    assert closed_form_available(_single(act, "g'")) == (act != "tanh")


def test_tails_and_large_variances_are_accurate():
    relu, erf = resolve_activation("relu"), resolve_activation("erf")
    for m in (-6.0, 6.0):  # deep in a tail of the ReLU kink
        exact = m * 0.5 * math.erfc(-m / math.sqrt(2)) + math.exp(-m * m / 2) / math.sqrt(2 * math.pi)
        assert numeric_average_1(relu.expr, 1.0, m, jit=False) == pytest.approx(exact, rel=1e-10, abs=1e-15)
        closed = gaussian_average_1(relu.expr, 1, m)
        assert float(closed) == pytest.approx(exact, rel=1e-10, abs=1e-15)
    for q in (0.01, 50.0):  # erf of a very narrow / wide pre-activation
        for c in (0.3, 0.999):
            p = (q, q, c * q, 0.0, 0.0)
            closed = 2 / math.pi * math.asin(c * q / (1 + q))
            assert numeric_average(erf.expr, erf.expr, *p, jit=False) == pytest.approx(closed, rel=1e-8, abs=1e-12)


def test_trigonometric_averages_are_exact_at_large_variances():
    """sin and cos of a linear argument are complex exponentials: E[sin λ1 sin λ2] =
    (e^{−(q1+q2−2c)/2} cos(m1−m2) − e^{−(q1+q2+2c)/2} cos(m1+m2))/2 in closed form,
    where the quadrature of the oscillation was wrong without warning at q ≥ 10³ (its
    panels hold tens of periods).  Values from the textbook formula at q up to 10⁴."""
    sin, cos = sympy.sin(X), sympy.cos(X)
    closed = {(f, h): sympy.lambdify((Q1, Q2, C, M1, M2), gaussian_average_2(f, h, Q1, Q2, C, M1, M2), "math")
              for f, h in ((sin, sin), (cos, cos), (sin, cos))}
    for q, rho, m1, m2 in ((1e3, 0.9995, 0.3, -1.1), (1e4, 0.99995, 2.0, 0.5), (1.0, 0.3, 0.0, 0.0)):
        c = rho * q
        near, far = math.exp(-(2 * q - 2 * c) / 2), math.exp(-(2 * q + 2 * c) / 2)
        expected = {(sin, sin): (near * math.cos(m1 - m2) - far * math.cos(m1 + m2)) / 2,
                    (cos, cos): (near * math.cos(m1 - m2) + far * math.cos(m1 + m2)) / 2,
                    (sin, cos): (near * math.sin(m1 - m2) + far * math.sin(m1 + m2)) / 2}
        for pair, value in expected.items():
            assert closed[pair](q, q, c, m1, m2) == pytest.approx(value, rel=1e-12, abs=1e-300)
    # one field: E[x sin(a x + b)] = a q e^{−a²q/2} cos(am + b) + m e^{−a²q/2} sin(am + b)
    q, m = sympy.Symbol("q", positive=True), sympy.Symbol("m", real=True)
    one = gaussian_average_1(X * sympy.sin(3 * X + 1), q, m)
    for qv, mv in ((0.5, 0.2), (40.0, -1.0)):
        damp = math.exp(-9 * qv / 2)
        exact = 3 * qv * damp * math.cos(3 * mv + 1) + mv * damp * math.sin(3 * mv + 1)
        assert float(one.subs({q: qv, m: mv})) == pytest.approx(exact, rel=1e-12, abs=1e-300)
    # powers: sin² (E[g²] of sin) = (1 − e^{−2q} cos 2m)/2, sin³ = (3 sin λ − sin 3λ)/4
    for qv, mv in ((0.5, 0.2), (3e3, 1.3)):
        values = {q: qv, m: mv}
        assert float(gaussian_average_1(sin**2, q, m).subs(values)) == pytest.approx(
            (1 - math.exp(-2 * qv) * math.cos(2 * mv)) / 2, rel=1e-14)
        assert float(gaussian_average_1(sin**3, q, m).subs(values)) == pytest.approx(
            (3 * math.exp(-qv / 2) * math.sin(mv) - math.exp(-9 * qv / 2) * math.sin(3 * mv)) / 4,
            rel=1e-12, abs=1e-300)
    # so a sin network's averages are all closed forms: no quadrature routine in its module
    from odesolve import Autoencoder, compile_model
    assert "gauss_" not in str(compile_model(Autoencoder(K=2, activation="sin(x)"), jit=False))
    # a factor on a half line needs erfc of a complex argument: left to quadrature
    assert gaussian_average_1(sin * H(X), q) is None


def test_oscillating_quadratures_are_resolved_or_refused():
    """An average with sin or cos of a x + b but no closed form (sin(x)·tanh(x)) is
    quadrature with panels no longer than one period: (sin 3λ + tanh λ)² at q = 100 was
    30% off (16 nodes over ~10 periods alias) and is now exact to rounding, against a
    trapezoid sum on 4·10⁶ points; beyond 128 periods over ±10 standard deviations it is
    a QuadratureRangeError, not a wrong number."""
    for expr, fn, q in ((sympy.sin(3 * X) + sympy.tanh(X), lambda x: np.sin(3 * x) + np.tanh(x), 100.0),
                        (sympy.sin(X) * sympy.tanh(X), lambda x: np.sin(x) * np.tanh(x), 1000.0)):
        sd = math.sqrt(q)
        x = np.linspace(-12 * sd, 12 * sd, 4_000_001) + 0.2
        exact = np.trapezoid(fn(x) ** 2 * np.exp(-(x - 0.2) ** 2 / (2 * q)), x) / math.sqrt(2 * math.pi * q)
        assert numeric_average_1(expr ** 2, q, 0.2, jit=False) == pytest.approx(exact, rel=1e-10)
        with pytest.raises(QuadratureRangeError, match="more than 128 periods"):
            numeric_average_1(expr ** 2, 100 * q, 0.2, jit=False)
    # a pair: the outer panels follow both f's oscillation and the inner conditional mean's
    f, h = sympy.sin(2 * X) * sympy.tanh(X), sympy.sin(X) + X
    assert numeric_average(f, h, 50.0, 50.0, 30.0, 0.1, -0.2) == pytest.approx(
        _quad_2d(lambda a, b: np.sin(2 * a) * np.tanh(a) * (np.sin(b) + b), 50.0, 50.0, 30.0, 0.1, -0.2),
        rel=1e-8, abs=1e-12)
    with pytest.raises(QuadratureRangeError, match="periods"):
        numeric_average(f, h, 5e3, 5e3, 3e3, 0.1, -0.2)


def test_oscillations_of_a_polynomial_argument_are_resolved_or_refused():
    """sin(x²) speeds up away from 0: panels sized by the spread alone left E[sin²(λ²)]
    5e-4 off at q = 3 and 2e-2 at q = 30, silently.  The panels now follow the fastest
    oscillation within ±10 standard deviations (|p′| there), exact to rounding where
    that is within 128 periods, a QuadratureRangeError beyond; in a pair too."""
    for expr in (sympy.sin(X**2) ** 2, sympy.sin(X**2) * sympy.tanh(X)):
        fn = sympy.lambdify(X, expr, "mpmath")
        for q in (0.5, 1.5):
            with mpmath.workdps(30):
                exact = float(mpmath.quad(lambda x: fn(x) * mpmath.npdf(x, 0.3, mpmath.sqrt(q)),
                                          mpmath.linspace(-12 * q**0.5 + 0.3, 12 * q**0.5 + 0.3, 300)))
            assert numeric_average_1(expr, q, 0.3, jit=False) == pytest.approx(exact, rel=1e-12, abs=1e-15)
        for q in (3.0, 30.0):
            with pytest.raises(QuadratureRangeError, match="more than 128 periods"):
                numeric_average_1(expr, q, 0.3, jit=False)
    f, h = sympy.sin(X**2) * sympy.tanh(X), sympy.cos(X**2 + X)
    assert numeric_average(f, h, 0.6, 0.8, 0.3, 0.1, -0.2, jit=False) == pytest.approx(
        _quad_2d(lambda a, b: np.sin(a * a) * np.tanh(a) * np.cos(b * b + b), 0.6, 0.8, 0.3, 0.1, -0.2),
        rel=1e-8, abs=1e-12)
    with pytest.raises(QuadratureRangeError, match="periods"):
        numeric_average(f, h, 0.6, 30.0, 0.3, 0.1, -0.2, jit=False)


def _quad_2d(fn, q1, q2, c, m1, m2, n=4001):
    """E[fn(λ1, λ2)] by a product trapezoid rule over ±12 standard deviations of λ1 and of
    λ2 given λ1 (fine enough for the oscillations of the test above)."""
    s1, v = math.sqrt(q1), q2 - c * c / q1
    t = np.linspace(-12, 12, n)
    outer = m1 + s1 * t
    inner_mean = m2 + c / q1 * (outer - m1)
    inner = inner_mean[:, None] + math.sqrt(v) * t[None, :]
    weight = np.exp(-t ** 2 / 2) / math.sqrt(2 * math.pi)
    values = np.trapezoid(fn(outer[:, None], inner) * weight[None, :], t, axis=1)
    return float(np.trapezoid(values * weight, t))


def _exact_average(f, q):
    """E[f(λ)], λ ~ N(0, q), by mpmath over the whole line (30 digits)."""
    fn = sympy.lambdify(X, f, "mpmath")
    with mpmath.workdps(30):
        return float(mpmath.quad(lambda x: fn(x) * mpmath.npdf(x, 0, mpmath.sqrt(q)),
                                 [-mpmath.inf, -20, 0, 20, mpmath.inf]))


def test_growing_integrands_are_exact_or_refused():
    """exp(2x) tanh²x: E over N(0, q) peaks at 2√q standard deviations.  At q = 2 the
    cut at ±10 is harmless and the quadrature is exact; at q = 8 it would cut off 1e-5
    of the average (it returned 8886046 for 8886109), so it must raise instead."""
    f = sympy.exp(2 * X) * sympy.tanh(X) ** 2
    for jit in (False, True):
        assert numeric_average_1(f, 2.0, jit=jit) == pytest.approx(_exact_average(f, 2.0), rel=1e-11)
        with pytest.raises(QuadratureRangeError, match=r"not negligible at 10 standard deviations"):
            numeric_average_1(f, 8.0, jit=jit)
    # the same in a pair average: its outer quadrature checks its edge too
    g = sympy.exp(X) * sympy.tanh(X)
    with pytest.raises(QuadratureRangeError, match=r"E\[f\(λ1\) h\(λ2\)\]"):
        numeric_average(g * g, g, 8.0, 1.0, 0.5, jit=False)


def test_edge_check_spares_tiny_and_polynomial_averages():
    """No alarm where the truncation is negligible: an average that is itself ~1e-24
    (a ReLU kink 9.8 standard deviations out) and x²⁴ tanh²x (its tail beyond 10
    standard deviations is ~1e-12 of the average)."""
    relu = sympy.Max(0, X - 4.9)
    assert numeric_average_1(relu, 0.25, jit=False) == pytest.approx(_exact_average(relu, 0.25), rel=1e-3)
    f = X**24 * sympy.tanh(X) ** 2
    assert numeric_average_1(f, 1.0, jit=False) == pytest.approx(_exact_average(f, 1.0), rel=1e-10)


def test_fractional_powers_at_a_kink_are_integrated_to_rounding():
    """|λ|^(−1/2) (E[ga²] of g = |x|^0.75) and |λ|^1.5: plain Gauss-Legendre panels
    ending at 0 gave 1.5 % and 1e-8 errors; graded nodes give these to 1e-9 and better."""
    for q in (0.01, 0.3, 1.0, 2.5, 30.0):
        exact = (2 * q) ** -0.25 * math.gamma(0.25) / math.sqrt(math.pi)
        assert numeric_average_1(sympy.Abs(X) ** -0.5, q, jit=False) == pytest.approx(exact, rel=1e-10)
    for f in (sympy.Abs(X) ** -0.5, sympy.Abs(X) ** 1.5, sympy.Abs(X - 0.2) ** -0.25):
        fn = sympy.lambdify(X, f, "mpmath")
        with mpmath.workdps(20):
            exact = float(mpmath.quad(lambda x: fn(x) * mpmath.npdf(x, 0.3, mpmath.sqrt(0.7)),
                                      [-mpmath.inf, 0, 0.2, mpmath.inf]))
        assert numeric_average_1(f, 0.7, 0.3) == pytest.approx(exact, rel=1e-8)


def _mpmath_average(f, q, mean, points):
    fn = sympy.lambdify(X, f, "mpmath")
    with mpmath.workdps(20):
        return float(mpmath.quad(lambda x: fn(x) * mpmath.npdf(x, mean, mpmath.sqrt(q)),
                                 [-mpmath.inf, *points, mpmath.inf]))


def test_a_logarithm_at_a_kink_is_integrated_accurately():
    """E[log|λ|] = ½(−γ − log 2) + ½ log q at zero mean: 7e-4 off before panels ending at
    a logarithm's kink were graded."""
    for q in (0.01, 0.7, 30.0):
        exact = 0.5 * (-0.5772156649015329 - math.log(2)) + 0.5 * math.log(q)
        for jit in (False, True):
            got = numeric_average_1(sympy.log(sympy.Abs(X)), q, jit=jit)
            assert got == pytest.approx(exact, rel=1e-11)


@pytest.mark.parametrize("mean", [0.0, 1e-12, 1e-5, -1e-3, 0.1, -2.0])
def test_singular_kinks_near_the_mean_are_integrated_accurately(mean):
    """The averages of g = x log|x| (g' = 1 + log|x|) and the fractional powers, at means
    that put the kink at or near the centre of the grid: with the mean at 1e-5 the grid
    point t = 0 lay 1e-5 from the kink and E[g'] came out 2e-4 off; a graded panel 1.5
    standard deviations long left E|λ|^(−1/2) 3e-6 off at q = 0.01; log(x²), whose kink
    no Heaviside function marks, was not graded at all (3.6 % off)."""
    g = resolve_activation("x*log(abs(x))")
    h = resolve_activation("x*log(x**2)").derivative(1)      # no Heaviside marks its kink
    for f in (g.derivative(1), g.derivative(1) ** 2, g.expr * g.derivative(1),
              sympy.Abs(X) ** -0.5, sympy.Abs(X) ** 1.5, h ** 2):
        for q in (0.01, 0.87, 30.0):
            exact = _mpmath_average(f, q, mean, [0])
            assert numeric_average_1(f, q, mean, jit=False) == pytest.approx(exact, rel=1e-8, abs=1e-14)


def _pair_against_inner_closed_form(f, inner, q1, q2, c):
    """E[f(λ1) h(λ2)] by mpmath over λ1, with inner(μ, σ) = E[h(y)], y ~ N(μ, σ²), in
    closed form (nested quadrature of these singular integrands took minutes)."""
    sigma = math.sqrt(q2 - c * c / q1)
    with mpmath.workdps(20):
        return float(mpmath.quad(lambda x: f(x) * inner(c / q1 * x, sigma)
                                 * mpmath.npdf(x, 0, mpmath.sqrt(q1)), [-mpmath.inf, 0, mpmath.inf]))


def test_a_pair_of_logarithmic_factors_is_accurate():
    """E[(1 + log|λ1|)(1 + log|λ2|)] (E[g'(λ_k) g'(λ_l)] of g = x log|x|): 1.4e-3 off
    before grading.  Inner average: E log|y| = log σ + ½(−γ − log 2) +
    (μ²/2σ²) ₂F₂(1, 1; 3/2, 2; −μ²/2σ²)."""
    f = resolve_activation("x*log(abs(x))").derivative(1)

    def inner(mu, sigma):
        z = mu * mu / (2 * sigma * sigma)
        return (1 + mpmath.log(sigma) - (mpmath.euler + mpmath.log(2)) / 2
                + z * mpmath.hyp2f2(1, 1, 1.5, 2, -z))

    q1, q2, c = 0.7, 1.1, 0.4
    exact = _pair_against_inner_closed_form(lambda x: 1 + mpmath.log(abs(x)), inner, q1, q2, c)
    assert numeric_average(f, f, q1, q2, c, jit=False) == pytest.approx(exact, rel=1e-9)


def test_a_pair_with_a_singular_factor_is_accurate():
    """E[(3/4)|λ1|^(−1/2) |λ2|^1.5] (E[ga'(λ_k) g(λ_l)] of g = |x|^1.5): 1.2 % low before
    its outer nodes were graded.  Inner average: E|y|^p = σ^p 2^(p/2) Γ((p+1)/2)/√π
    ₁F₁(−p/2; 1/2; −μ²/2σ²)."""
    def inner(mu, sigma):
        return (sigma ** 1.5 * 2 ** 0.75 * mpmath.gamma(1.25) / mpmath.sqrt(mpmath.pi)
                * mpmath.hyp1f1(-0.75, 0.5, -mu * mu / (2 * sigma * sigma)))

    q1, q2, c = 0.7, 1.1, 0.4
    exact = _pair_against_inner_closed_form(lambda x: 0.75 * abs(x) ** -0.5, inner, q1, q2, c)
    got = numeric_average(0.75 * sympy.Abs(X) ** -0.5, sympy.Abs(X) ** 1.5, q1, q2, c, jit=False)
    assert got == pytest.approx(exact, rel=1e-9)


@pytest.mark.parametrize("rho", [0.999999, -0.9999999])
def test_near_perfect_correlation_of_steps(rho):
    """λ2 | λ1 is very narrow: the inner average of a step is itself a steep step."""
    q1, q2 = 0.8, 1.9
    c = rho * math.sqrt(q1 * q2)
    exact = 0.25 + math.asin(rho) / (2 * math.pi)
    assert numeric_average(H(X), H(X), q1, q2, c, jit=False) == pytest.approx(exact, abs=1e-11)


def test_perfect_correlation_is_graceful():
    relu = resolve_activation("relu")
    q, m = 1.3, 0.4
    diagonal = numeric_average_1(relu.expr**2, q, m, jit=False)
    for c in (q, q * (1 + 1e-15)):  # exactly and (by rounding) beyond perfect correlation
        value = numeric_average(relu.expr, relu.expr, q, q, c, m, m, jit=False)
        assert value == pytest.approx(diagonal, abs=1e-6)


def test_special_cases():
    erf = resolve_activation("erf").expr
    q1, q2, c = sympy.symbols("q1 q2 c", real=True)
    assert expect_2(0, erf, q1, q2, c) == 0
    assert expect_2(X * D(X), erf, q1, q2, c) == 0
    assert expect_1(X * D(X, 1) + D(X), q1) == 0
    assert expect_2(3, erf**2, q1, q2, c) == 3 * expect_1(erf**2, q2)
    assert expect_1(sympy.Integer(5), q1) == 5
    with pytest.raises(ValueError, match="ill-defined"):
        expect_2(D(X) ** 2, erf, q1, q2, c)
    with pytest.raises(ValueError, match="ill-defined"):
        expect_1(H(X) * D(X, 1), q1)


def test_numeric_mode_gives_placeholders_everywhere(monkeypatch):
    erf = resolve_activation("erf").expr
    q1, q2, c = sympy.symbols("q1 q2 c", real=True)
    closed = expect_2(erf, erf, q1, q2, c)
    monkeypatch.setenv("ODESOLVE_AVERAGES", "numeric")
    e = expect_2(erf, erf, q1, q2, c)
    assert e.func.__name__.startswith("gauss_avg2_") and e.args == (q1, q2, c, 0, 0)
    assert expect_2(erf, erf, q1, q2, c, mode="auto") == closed
    e1 = expect_1(erf**2, q1, 0.5)
    assert e1.func.__name__.startswith("gauss_avg1_")
    sources = numeric_sources(sympy.Tuple(e + 1, 2 * e1, sympy.Function("other")(q1)))
    assert set(sources) == {e.func.__name__, e1.func.__name__}
    namespace = {"math": math, "njit": lambda fn: fn}
    for source in sources.values():
        exec(source, namespace)
    point = {q1: 0.8, q2: 1.7, c: -0.6}
    assert namespace[e.func.__name__](0.8, 1.7, -0.6, 0.0, 0.0) == pytest.approx(
        float(closed.subs(point)), rel=1e-12)
    monkeypatch.setenv("ODESOLVE_AVERAGES", "bogus")
    with pytest.raises(ValueError, match="bogus"):
        expect_1(erf, q1)


def test_placeholder_names_are_per_integrand():
    tanh = resolve_activation("tanh")
    q1, q2, c = sympy.symbols("q1 q2 c", real=True)
    a = expect_2(tanh.expr, tanh.expr, q1, q2, c)
    b = expect_2(tanh.expr, tanh.expr, q2, q1, c, 1, 2)
    d = expect_2(tanh.derivative(1), tanh.expr, q1, q2, c)
    assert a.func is b.func and a.func != d.func
    with pytest.raises(KeyError, match="re-derive"):
        numeric_sources(sympy.Function("gauss_avg2_000000000000")(q1, q2, c, 0, 0))


def test_placeholder_evaluates_with_evalf():
    tanh = resolve_activation("tanh").expr
    q = sympy.Symbol("q", positive=True)
    e = expect_1(tanh**2, q, 0.3)
    assert float(e.subs(q, 0.9).evalf()) == pytest.approx(numeric_average_1(tanh**2, 0.9, 0.3, jit=False), rel=1e-12)


def test_generated_sources_compile_with_numba():
    """The sources as a code generator uses them: pasted after the module header."""
    relu, tanh, sign = (resolve_activation(a) for a in ("relu", "tanh", "sign"))
    cases = [
        (2, relu.expr, relu.expr, (0.9, 1.4, 0.5, 0.3, -0.6)),  # closed inner, kink outer
        (2, sign.derivative(2), sign.expr, (0.9, 1.4, -0.5, 0.3, -0.6)),  # δ' integrated exactly
        (2, tanh.expr, tanh.derivative(1), (0.9, 1.4, 0.5, 0.3, -0.6)),  # nested quadrature
        (1, tanh.expr * tanh.derivative(1), None, (1.7, 0.2)),
    ]
    sources = [numeric_average_source(kind, f, h, f"avg_{i}") for i, (kind, f, h, _) in enumerate(cases)]
    module = ("import math\nfrom numba import njit\nfrom odesolve.errors import QuadratureRangeError\n\n"
              + "\n\n".join(sources))
    namespace = {}
    exec(compile(module, "<generated>", "exec"), namespace)
    for i, (kind, f, h, args) in enumerate(cases):
        jitted = namespace[f"avg_{i}"]
        assert hasattr(jitted, "signatures")  # a numba dispatcher
        python = numeric_average(f, h, *args, jit=False) if kind == 2 else numeric_average_1(f, *args, jit=False)
        assert jitted(*args) == pytest.approx(python, rel=1e-12, abs=1e-15)


def test_source_arguments_are_checked():
    with pytest.raises(ValueError, match="kind"):
        numeric_average_source(1, X, X, "f")
    with pytest.raises(ValueError, match="identifier"):
        numeric_average_source(2, X, X, "1f")


def test_closed_forms_are_cached():
    relu = resolve_activation("relu").expr
    gaussian_average_2(relu, relu, Q1, Q2, C)
    hits = closed_form._closed_2.cache_info().hits
    gaussian_average_2(relu, relu, Q2, Q1, C)
    assert closed_form._closed_2.cache_info().hits == hits + 1


# ----------------------------------------------------------------------------- fused
def _run_source(source, name):
    namespace = {"math": math, "njit": lambda fn: fn, "QuadratureRangeError": QuadratureRangeError}
    exec(compile(source, "<fused>", "exec"), namespace)
    return namespace[name]


def test_fused_quadrature_equals_one_quadrature_per_pair():
    """Every kind of integrand in one fused pass: smooth ones sharing tanh, kinks with a
    closed inner average, deltas (exact), a singular kink (graded panels), a constant
    side; each value as its own quadrature gives it, and closed forms pin two."""
    tanh, relu, sign = (resolve_activation(a) for a in ("tanh", "relu", "sign"))
    sigmoid = resolve_activation("1/(1 + exp(-x))")
    erf = resolve_activation("erf").expr
    t0, t1, t2 = (tanh.derivative(n) for n in range(3))
    s0, s1, s2 = (sigmoid.derivative(n) for n in range(3))   # exp(±x), exp(±2x), exp(3x)
    pairs = [(t0, t0), (t2, t0), (t0, t2), (t1, t1), (relu.expr, t1), (sign.derivative(1), t0),
             (t0, relu.derivative(1)), (sympy.Abs(X) ** sympy.Rational(1, 2), t0),
             (sympy.Integer(2), t1), (s2, s0), (s1, s1), (erf, erf), (X, X)]
    source = fused_average_source(pairs, "pairs")
    assert "math.exp(3" not in source and "math.exp(-2" not in source
    fused = _run_source(source, "pairs")
    for args in ((0.9, 1.4, 0.5, 0.3, -0.6), (2.5, 0.4, -0.9, 0.0, 0.0), (1.0, 1.0, 0.999, 0.0, 0.1)):
        got = fused(*args)
        assert len(got) == len(pairs)
        for (f, h), value in zip(pairs, got):
            one = numeric_average(f, h, *args, jit=False)
            assert value == pytest.approx(one, rel=1e-9, abs=1e-12), (f, h, args)
        q1, q2, c, m1, m2 = args
        if m1 == m2 == 0:       # the arcsine kernel (zero means)
            assert got[-2] == pytest.approx(2 / np.pi * np.arcsin(c / np.sqrt((1 + q1) * (1 + q2))),
                                            rel=1e-11)
        assert got[-1] == pytest.approx(c + m1 * m2, rel=1e-11)


def test_fused_exponentials_and_overflow_at_large_variances():
    """Compiled, exp(±λ) overflows to inf at |λ| > 709: at q = 400 (|λ| up to 200) the
    powers of exp(λ) and exp(−λ) give the separate exponentials' values; at q = 10⁴ the
    expanded sigmoid'' is inf/inf at the outer nodes, which is a QuadratureRangeError
    (it was a silent NaN), fused or not."""
    sigmoid = resolve_activation("1/(1 + exp(-x))")
    s0, s1, s2 = (sigmoid.derivative(n) for n in range(3))
    pairs = [(s2, s0), (s1, s1)]
    namespace = {"math": math, "njit": numba.njit, "QuadratureRangeError": QuadratureRangeError}
    exec(compile(fused_average_source(pairs, "pairs"), "<fused>", "exec"), namespace)
    args = (400.0, 400.0, 200.0, 0.0, 0.0)
    for (f, h), value in zip(pairs, namespace["pairs"](*args)):
        assert value == pytest.approx(numeric_average(f, h, *args), rel=1e-9, abs=1e-12)
    args = (1e4, 1.0, 30.0, 0.0, 0.0)
    assert math.isfinite(numeric_average(s1, s1, *args))
    for call in (lambda: namespace["pairs"](*args), lambda: numeric_average(s2, s0, *args)):
        with pytest.raises(QuadratureRangeError, match="not a number here.*inf/inf"):
            call()


def test_fused_pair_sources_route_each_call_to_its_entry():
    """A placeholder called with the fields swapped is the swapped integrand at the
    pair's own arguments; calls with means go to a routine of their own; anything but a
    pair of units is refused."""
    q1, q2, c, m1, m2 = averages.Q1, averages.Q2, averages.C, averages.M1, averages.M2
    tanh, sigmoid = (resolve_activation(a).expr for a in ("tanh", "1/(1 + exp(-x))"))
    p = expect_2(tanh, sigmoid, q1, q2, c).func
    calls_expr = [p(q1, q2, c, 0, 0), p(q2, q1, c, 0, 0), p(q1, q2, c, m1, m2)]
    calls, sources = averages.fused_pair_sources(sympy.Tuple(*calls_expr), "pairs")
    assert len(sources) == 2 and len({calls[e][0] for e in calls_expr[:2]}) == 1
    args = {q1: 0.8, q2: 1.7, c: 0.6, m1: 0.4, m2: -0.3}
    for expr in calls_expr:
        name, means, index = calls[expr]
        routine = _run_source(sources[name], name)
        value = routine(args[q1], args[q2], args[c], *(float(sympy.sympify(m).subs(args)) for m in means))
        direct = numeric_average(tanh, sigmoid, *(float(a.subs(args)) for a in expr.args), jit=False)
        assert value[index] == pytest.approx(direct, rel=1e-12)
    with pytest.raises(ValueError, match="pair of units"):
        averages.fused_pair_sources(p(q1, q1, c, 0, 0), "pairs")


def test_a_family_computes_each_pair_of_units_in_one_pass():
    """The tanh family's loops call one fused routine per pair of units (l < k) and no
    separate pair quadrature; their values are those of the per-average functions."""
    from odesolve import Autoencoder, compile_model
    compiled = compile_model(Autoencoder(K=3, activation="tanh"), jit=False)
    source = str(compiled)
    loop = source[source.index("def coefficients("):source.index("def error_excess(")]
    assert loop.count("gauss_pairs_") == 1 and "gauss_avg2_" not in loop
    assert "for l in range(k):" in loop
    module, rng = compiled.module, np.random.default_rng(3)
    A = rng.normal(size=(3, 5))
    B = rng.normal(size=(3, 3))
    Q, R, T0 = A @ A.T / 5, rng.normal(size=(3, 3)), B @ B.T
    m = np.zeros(3)
    S, N = np.zeros((6, 6)), np.zeros((6, 6))
    module.coefficients(Q, R, T0, m, S, N, np.zeros(3))
    # S[k, j] = −T0[k, j] E[ga(λ_k) g'(λ_j)] (j ≠ k) in this family (see its source);
    # (0, 1) is filled as the swapped entry of the pair (1, 0)
    for k, j in ((0, 1), (2, 0), (1, 2)):
        expected = module.avg2_a0__g1(Q[k, k], Q[j, j], Q[k, j], 0.0, 0.0)
        assert S[k, j] == pytest.approx(-T0[k, j] * expected, rel=1e-12)
    # E[ga'(λ_k) g(λ_l)] is not symmetric: both orders enter S[k, k]
    diagonal = (R[0, 0] * module.avg1_a2(Q[0, 0], 0.0) - T0[0, 0] * (
        module.avg1_g1_a0(Q[0, 0], 0.0) + module.avg1_g0_a1(Q[0, 0], 0.0))
        - sum(T0[0, l] * module.avg2_a1__g0(Q[0, 0], Q[l, l], Q[0, l], 0.0, 0.0) for l in (1, 2)))
    assert S[0, 0] == pytest.approx(diagonal, rel=1e-12)

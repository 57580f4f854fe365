"""Issue 9's corpus of 15 activations: derivation, Gaussian averages and right-hand side.

For every activation of :data:`odesolve.testing.sgd_oracle.CORPUS`:

* every Gaussian average the equations need (the same nine for every family without a
  bias), evaluated by the *generated* functions, against a Monte-Carlo estimate
  (:mod:`odesolve.testing.gaussian_mc`, delta factors smoothed exactly) within 4
  standard errors;
* the compiled right-hand side against the Monte-Carlo average of one SGD step of the
  independent oracle (hand-written numpy g and g'), at D = 1000, for K = 1, 2, 3 and
  untied, tied and truncated SGD, within 4 standard errors.

Both run the generated source as plain Python (``ODESOLVE_JIT=0``): they evaluate each
of some fifty families at a few points, where numba's compilation (10–15 s a family)
would be nearly all of the time; ``tests/codegen/test_compile.py`` checks that the
compiled and the interpreted module agree.  They are still slow (the Monte-Carlo
averages); the fast suite checks that
the two activations the previous engine refused (sigmoid at K ≥ 2, hard tanh) derive,
and that missing averages are clear errors.
"""
from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from odesolve import Autoencoder, spiked_covariance
from odesolve.codegen import compile_model
from odesolve.derive.averages import (Q, Q1, Q2, C, activation_factor, check_sgd_averages,
                                      family_average)
from odesolve.derive.structure import lower
from odesolve.spec.activations import normalize, resolve_activation
from odesolve.testing.gaussian_mc import mc_average_1, mc_average_2
from odesolve.testing.sgd_oracle import (CORPUS, LOGARITHMIC, POWERS_OF_ABS, compiled_drift,
                                        monte_carlo_drift, random_state)

VARIANTS = {"untied": (False, "sgd"), "tied": (True, "sgd"), "truncated": (False, "truncated")}
MC_SAMPLES = 200_000


@pytest.fixture(autouse=True)
def _interpreted(monkeypatch):
    monkeypatch.setenv("ODESOLVE_JIT", "0")


def _rng(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _param(name, *rest):
    return pytest.param(name, *rest, marks=[pytest.mark.slow],
                        id="-".join(map(str, (name, *rest))))


def _integrand(act, keys):
    f = 1
    for name, n in keys:
        f = f * activation_factor(act, name, n)
    return normalize(f)


@pytest.mark.parametrize("name", [_param(n) for n in CORPUS])
def test_generated_averages_match_monte_carlo(name):
    spec = CORPUS[name][0]
    act = resolve_activation(spec)
    module = compile_model(Autoencoder(K=1, activation=spec)).module
    rng = _rng("averages", name)
    for average in lower(False, "sgd", "none").averages():
        f = _integrand(act, average.own)
        fn = getattr(module, average.name)
        if average.other is None:
            q = float(rng.uniform(0.3, 1.5))
            mc, se, shifted = mc_average_1(f, q, 0.0, rng, MC_SAMPLES)
            theory = fn(shifted, 0.0)
        else:
            q1, q2 = rng.uniform(0.3, 1.5, 2)
            c = float(rng.uniform(-0.8, 0.8) * np.sqrt(q1 * q2))
            h = _integrand(act, average.other)
            mc, se, shifted = mc_average_2(f, h, (q1, q2, c, 0.0, 0.0), rng, MC_SAMPLES)
            theory = fn(*shifted)
        assert abs(theory - mc) < 4 * se + 1e-12, (average.formula, theory, mc, se)


@pytest.mark.parametrize("name,K,variant", [_param(n, K, v) for n in CORPUS for K in (1, 2, 3)
                                            for v in VARIANTS])
def test_rhs_matches_monte_carlo_sgd_step(name, K, variant):
    tied, rule = VARIANTS[variant]
    _assert_drift_matches_sgd(Autoencoder(K=K, activation=CORPUS[name][0], tied=tied, rule=rule),
                              _rng("rhs", name, K, variant))


def _assert_drift_matches_sgd(model, rng):
    """The compiled right-hand side within 4 standard errors of the Monte-Carlo average of
    one SGD step (D = 1000, η = 0.7, 40,000 steps), at a random state."""
    spec, W, V, m = random_state(model, rng, 1000)
    mean, se = monte_carlo_drift(model, spec, W, V, m, 0.7, rng, 40_000)
    theory = compiled_drift(model, spec, W, V, m, 0.7)
    exact = se < 1e-12          # e.g. a sign or step encoder never moves, nor untrained biases
    np.testing.assert_allclose(theory[exact], mean[exact], atol=1e-10)
    z = (mean[~exact] - theory[~exact]) / se[~exact]
    assert np.max(np.abs(z)) < 4.0, f"max |z| = {np.max(np.abs(z)):.2f}"


@pytest.mark.parametrize("name", [_param(n) for n in ("gelu", "tanh", "sigmoid", "elu")])
def test_a_trained_bias_derives_and_matches_the_sgd_step(name):
    """With a trained bias the averages have means; GELU's stopped the derivation with a
    TypeError (Stein's lemma on two offset erfs, which has no elementary form, returned
    None into a product) instead of falling back to quadrature."""
    _assert_drift_matches_sgd(Autoencoder(K=2, activation=CORPUS[name][0], bias="trained"),
                              _rng("rhs-bias", name))


@pytest.mark.parametrize("name", list(POWERS_OF_ABS))
def test_powers_of_abs_derive_and_match_the_sgd_step(name):
    """|x|^p: its derivatives carry their steps inside roots (g'' = p(p−1)|x|^(p−2), locally
    integrable for p > 1); the derivation once refused it as an 'ill-defined product of
    distributions' (a delta times x²/√|x|, whose value at 0 is a limit)."""
    spec = POWERS_OF_ABS[name][0]
    act = resolve_activation(spec)
    p = float(name.rsplit("_", 1)[1])
    x = np.array([-2.0, -0.3, 0.5, 1.7])
    if p > 1:       # for p < 1, g'' has the term |x|^(p−1) δ(x), which is not a distribution
        np.testing.assert_allclose(act.numpy_derivative(2)(x), p * (p - 1) * np.abs(x)**(p - 2),
                                   rtol=1e-12)
    _assert_drift_matches_sgd(Autoencoder(K=2, activation=spec), _rng("rhs", name))


def test_a_logarithmic_derivative_derives_and_matches_the_sgd_step():
    """g = x log|x|: g' = 1 + log|x| is unbounded at its kink (its averages were 7e-3 off
    before the quadrature graded its nodes there) and g'' = 1/x is not locally
    integrable, so the averages holding it are integrated by parts."""
    spec = LOGARITHMIC["x_log_abs"][0]
    _assert_drift_matches_sgd(Autoencoder(K=2, activation=spec), _rng("rhs", spec))


def test_a_product_with_an_ill_defined_derivative_is_integrated_by_parts():
    """|x|^0.75: ga' = 0.75 (2H(x) − 1)|x|^(−1/4) has the term 1.5 |x|^(−1/4) δ(x), which is
    not a distribution, so E[g ga'] is taken as E[(g ga)'] − E[ga²] (by parts).  g ga =
    0.75 sign(x)|x|^(1/2) is continuous, so the value is the integral of the pointwise
    product −(3/16)|λ|^(−1/2): −(3/16) (2q)^(−1/4) Γ(1/4)/√π at zero mean."""
    act = resolve_activation("Abs(x)**0.75")
    average = next(a for a in lower(False, "sgd", "none").averages() if a.name == "avg1_g0_a1")
    value = family_average(act, average, False)
    for q in (0.3, 1.0, 2.5):
        exact = -3 / 16 * (2 * q) ** -0.25 * math.gamma(0.25) / math.sqrt(math.pi)
        assert float(value.subs(Q, q)) == pytest.approx(exact, rel=1e-8)


def test_a_power_of_abs_whose_derivative_is_not_integrable_is_refused():
    """√|x|: g'' ∝ |x|^(−3/2) is not locally integrable: a clear error, not a number."""
    act = resolve_activation("sqrt(Abs(x))")
    with pytest.raises(ValueError, match="ill-defined product of distributions"):
        act.derivative(2)


def test_sigmoid_at_two_units_derives():
    """The previous engine stopped with 'factor couples two fields' here."""
    from odesolve import derive_equations
    eq = derive_equations(Autoencoder(K=2, activation="1/(1+exp(-x))"))
    assert eq.S.shape == (4, 4) and eq.N[2, 3] != 0


def test_hard_tanh_is_an_activation_with_two_kinks():
    act = resolve_activation("Min(Max(x, -1), 1)")
    assert act.kinks == (-1.0, 1.0)
    x = np.array([-3.0, -1.5, -0.5, 0.3, 0.9, 2.0])
    np.testing.assert_allclose(act.numpy(x), np.clip(x, -1, 1), rtol=0, atol=1e-15)


MISSING_AVERAGES = [
    ("exp(x**2)", "grows like exp"),
    ("exp(x**2/4)", "grows like exp"),
    ("exp(x**2/1000)", "grows like exp"),                 # E exists only for q < 500
    ("exp(exp(x))", "grows faster than any"),           # beyond every float at x = 10⁴
    ("x + 1/x", "not integrable"),
    ("erf(x) + 1/(x - 1)**2", "not integrable"),
    ("1/(x - 0.5)", "near x = 0.5, which is not integrable"),
    ("tan(x)", r"near x = 1\.5708, which is not integrable"),   # infinitely many poles
    ("1/sin(x)", "not integrable"),
    ("x*sin(1/x)", "not integrable"),
]


@pytest.mark.parametrize("spec,reason", MISSING_AVERAGES)
def test_missing_average_is_a_clear_error(spec, reason):
    act = resolve_activation(spec)
    with pytest.raises(ValueError, match=reason) as info:
        for average in lower(False, "sgd", "none").averages():
            family_average(act, average, False)
    assert repr(act.name) in str(info.value) and "does not exist" in str(info.value)


@pytest.mark.parametrize("spec", ["exp(2*x)", "exp(4*x)", "cosh(3*x)", "x**20", "exp(-x) + x**7",
                                  "sin(x)/x", "(1 - cos(x))/x**2", "(exp(x) - 1)/x",
                                  "exp(Abs(x)**1.5)", "exp(x**2/(1 + log(1 + x**2)))",
                                  "log(1 + Abs(x - 0.5))"])
def test_averages_that_exist_are_not_refused(spec):
    """E[e^{cλ}] = e^{c²q/2} exists for every variance, whatever c: only a positive
    curvature of log|g| in x that persists far out (exp(a x²)) makes an average diverge:
    exp(|x|^1.5) and exp(x²/log x) curve less and less (their averages exist).  Removable
    singularities (sinc: its g'² cancels terms of size x^(−4) at 0) are not poles.  For
    log(1 + |x − 0.5|) sympy's singularity search failed inside mpmath (NoConvergence,
    which escaped as a traceback)."""
    act = resolve_activation(spec)
    for average in lower(False, "sgd", "none").averages():
        family_average(act, average, False, mode="numeric")
    check_sgd_averages(act)


@pytest.mark.parametrize("spec", ["Abs(x)**0.9/(1 + x**2)", "x/(1 + Abs(x))"])
def test_unresolved_singular_sets_are_not_poles(spec):
    """sympy answers these singularity searches with ConditionSets, not poles: the SGD
    averages exist (g'² ~ |x|^(−0.2) at worst) and the simulator must run them."""
    check_sgd_averages(resolve_activation(spec))


def test_exponential_average_matches_its_closed_form():
    """E[g(λ)²] for g = exp(2x): e^{8q} (the growth check must not stand in the way)."""
    act = resolve_activation("exp(2*x)")
    average = next(a for a in lower(False, "sgd", "none").averages() if a.name == "avg1_g0_g0")
    value = family_average(act, average, False)
    for q in (0.05, 0.3, 1.0):
        assert float(value.subs(Q, q)) == pytest.approx(np.exp(8 * q), rel=1e-10)


@pytest.mark.parametrize("spec,reason", MISSING_AVERAGES + [("Abs(x)**0.5", "not integrable")])
def test_the_simulator_refuses_what_the_theory_refuses(spec, reason):
    """The simulator runs the theory's existence check (E[g²], E[g'²]) before any work."""
    from simulations import simulate
    model = Autoencoder(K=2, activation=spec)
    with pytest.raises(ValueError, match="does not exist"):
        check_sgd_averages(model.activation)
    with pytest.raises(ValueError, match="does not exist"):
        simulate(model, spiked_covariance(D=50, spikes=[1.0], bulk=0.1), 0.5, 100.0, seed=0)


def test_average_symbols_are_the_generated_arguments():
    """family_average returns expressions in the arguments of the generated functions."""
    act = resolve_activation("erf")
    single, pair = (family_average(act, a, False) for a in
                    [a for a in lower(False, "sgd", "none").averages()
                     if a.name in ("avg1_g1", "avg2_g0__g0")])
    assert single.free_symbols == {Q}
    assert pair.free_symbols == {Q1, Q2, C}


def test_elu_closed_forms_do_not_cancel_or_overflow_at_large_variances():
    """ELU's half-line averages were (erfc(u)/2 − 1)e^{2q} + e^{2q}: at q = 30, E[g²] came
    out 0.359 (the e^{2q} ≈ 1e26 cancelled), not 15.39; and as e^{2q}·erfc(√(2q))/2 the
    generated code gave NaN (inf·0) from q ≈ 354 on.  mpmath at 50 digits pins the sympy
    value and the generated function, up to q = 10³; the pair average E[g(λ1) g(λ2)] at
    q = 400 against a 2-D mpmath quadrature."""
    import mpmath
    act = resolve_activation(CORPUS["elu"][0])
    g = lambda x: x if x > 0 else mpmath.expm1(x)                        # noqa: E731
    average = next(a for a in lower(False, "sgd", "none").averages() if a.name == "avg1_g0_g0")
    value = family_average(act, average, False)
    module = compile_model(Autoencoder(K=2, activation=act.expr)).module
    for q in (10.0, 30.0, 100.0, 400.0, 1000.0):
        with mpmath.workdps(50):
            exact = float(mpmath.quad(lambda x: g(x)**2 * mpmath.npdf(x, 0, mpmath.sqrt(q)),
                                      [-mpmath.inf, 0, mpmath.inf]))
        assert float(value.subs(Q, q)) == pytest.approx(exact, rel=1e-12)
        assert module.avg1_g0_g0(q, 0.0) == pytest.approx(exact, rel=1e-12)
    q, c = 400.0, 360.0
    s, v = math.sqrt(q), math.sqrt(q - c * c / q)


    def inner(t):      # E[g(λ2) | λ1 = s t], split at λ2's kink
        return mpmath.quad(lambda u: g(c / s * t + v * u) * mpmath.npdf(u), [-12, -c / s * t / v, 12])
    exact = float(mpmath.quad(lambda t: g(s * t) * inner(t) * mpmath.npdf(t), [-12, 0, 12]))
    assert module.avg2_g0__g0(q, q, c, 0.0, 0.0) == pytest.approx(exact, rel=1e-9)

"""Right-hand side of the equations vs the Monte-Carlo average of one SGD step.

For every model variant of ``tests/derive/test_rhs_monte_carlo.py`` (activation, tied weights, learning
rule, bias), at random states with O(1) order parameters, the drift ``D·E[Δy]`` of every
tracked overlap, of the bulk Gram matrix and of the biases is estimated from many
independent SGD steps of the independent reference :mod:`odesolve.testing.sgd_oracle` and compared
with the compiled right-hand side (``bulk="finite"``, exact at that D).  The functions are
those of the test (``random_state``, ``monte_carlo_drift``, ``compiled_drift``), called
here with more samples and more states, and the z-scores are tabulated.

Run: ``python -m validation.rhs_monte_carlo [--quick]``.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from odesolve.testing import sgd_oracle
from validation.common import expected_max_abs_normal, fmt, md_table, script_main, stopwatch

HEADERS = ["variant", "K", "state", "entries", "exact entries", "max abs z", "rms z",
           "expected max abs z", "median rel. SE", "max abs z if RHS 5% off"]

#: numbers of the last :func:`main` call (for the tests)
RESULTS: dict = {}

#: (K, seed of the random state) used in full mode; quick mode uses the first only
STATES = [(2, 12345), (3, 2024)]


def _rhs_module(D: int, n_samples: int):
    """The oracle's functions with this D and number of samples bound."""
    return SimpleNamespace(
        CASES=sgd_oracle.CASES, compiled_drift=sgd_oracle.compiled_drift,
        random_state=lambda model, rng: sgd_oracle.random_state(model, rng, D),
        monte_carlo_drift=lambda *args: sgd_oracle.monte_carlo_drift(*args, n_samples))


def _independent_entries(model, spec) -> np.ndarray:
    """Mask of the state vector [Y, G, m] without the duplicated lower triangle of G."""
    P = model.K if model.tied else 2 * model.K
    nY = P * spec.n_tracked
    upper = np.triu(np.ones((P, P), dtype=bool)).ravel()
    return np.concatenate([np.ones(nY, bool), upper, np.ones(model.K, bool)])


def compare(rhs, activation, tied, rule, bias, K, seed, lr=0.7):
    """z-scores of the Monte-Carlo drift against the compiled drift at one random state."""
    from odesolve import Autoencoder
    rng = np.random.default_rng(seed)
    model = Autoencoder(K=K, activation=activation, tied=tied, rule=rule, bias=bias)
    spec, W, V, m = rhs.random_state(model, rng)
    mean, se = rhs.monte_carlo_drift(model, spec, W, V, m, lr, rng)
    theory = rhs.compiled_drift(model, spec, W, V, m, lr)
    keep = _independent_entries(model, spec)   # drop the lower triangle of the symmetric G
    mean, se, theory = mean[keep], se[keep], theory[keep]
    exact = se < 1e-12                        # entries that do not fluctuate (e.g. sign encoder)
    exact_ok = bool(np.allclose(theory[exact], mean[exact], atol=1e-10))
    z = (mean[~exact] - theory[~exact]) / se[~exact]
    z_off = (mean[~exact] - 1.05 * theory[~exact]) / se[~exact]
    rel = se[~exact] / np.maximum(np.abs(theory[~exact]), 1e-300)
    return dict(n=int(z.size), n_exact=int(exact.sum()), exact_ok=exact_ok,
                max_z=float(np.max(np.abs(z))), rms_z=float(np.sqrt(np.mean(z**2))),
                rel_se=float(np.median(rel)), max_z_off=float(np.max(np.abs(z_off))))


def main(quick: bool = False) -> str:
    """Markdown section: one row per model variant and random state."""
    D, n_samples = (200, 4000) if quick else (1000, 60_000)
    rhs = _rhs_module(D, n_samples)
    cases = ([("linear", False, "sgd", "none"), ("erf", False, "sgd", "none")] if quick
             else rhs.CASES)
    states = STATES[:1] if quick else STATES
    rows, all_z, failures = [], [], []
    with stopwatch() as elapsed:
        for activation, tied, rule, bias in cases:
            name = f"{activation}, {'tied' if tied else 'untied'}, {rule}, bias {bias}"
            for K, seed in states:
                r = compare(rhs, activation, tied, rule, bias, K, seed)
                all_z.append((r["max_z"], r["n"]))
                if not r["exact_ok"]:
                    failures.append(f"{name}, K={K}: non-fluctuating entries differ")
                rows.append([name, K, str(seed), r["n"],
                             f"{r['n_exact']} ({'equal' if r['exact_ok'] else 'DIFFER'})",
                             r["max_z"], r["rms_z"], expected_max_abs_normal(r["n"]),
                             r["rel_se"], r["max_z_off"]])
    worst = max(z for z, _ in all_z)
    RESULTS.clear()
    RESULTS.update(rows=rows, worst=worst, failures=failures)
    n_total = sum(n for _, n in all_z)
    text = [
        "## Right-hand side vs Monte Carlo",
        "",
        f"**Summary.**  RHS vs Monte Carlo: {len(rows)} comparisons ({len(cases)} model "
        f"variants × {len(states)} random states, {n_total} fluctuating entries): largest "
        f"|z| = {fmt(worst)} (pure noise: median {fmt(expected_max_abs_normal(n_total))}); "
        + ("all non-fluctuating entries equal." if not failures else
           f"FAILURES: {'; '.join(failures)}."),
        "",
        f"D = {D}, {n_samples:,} independent SGD steps per state (reference implementation "
        "`odesolve/testing/sgd_oracle.py`), η = 0.7, spikes [1.2, 0.6], bulk 0.3; drift of every "
        "tracked overlap, of the bulk Gram matrix and of the biases vs the compiled "
        "right-hand side (`bulk=\"finite\"`).  z = (MC mean − RHS) / MC standard error.  "
        "*expected max |z|*: median of the largest |z| of that many independent normals; "
        "*rms z* should be ≈ 1; the last column is the max |z| a 5% error in the RHS would "
        "give (the power of the check).  Entries: the overlaps with the two spikes, the upper "
        "triangle of the symmetric bulk Gram matrix and the biases; *exact entries* do not "
        "fluctuate (e.g. the sign encoder, a bias that is not trained) and must agree to "
        "1e-10.",
        "",
        md_table(HEADERS, rows),
        "",
        f"Largest |z| over all {len(rows)} comparisons ({n_total} entries): **{fmt(worst)}** "
        f"(median largest |z| of {n_total} independent normals: "
        f"{fmt(expected_max_abs_normal(n_total))}).  Run time {elapsed():.0f} s.",
    ]
    if failures:
        text += ["", "**Failures:** " + "; ".join(failures)]
    return "\n".join(text)


if __name__ == "__main__":
    script_main(main, __doc__.splitlines()[0])

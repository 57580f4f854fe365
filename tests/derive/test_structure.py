"""The structural derivation (g abstract) and its lowering to loops over units."""
from __future__ import annotations

import itertools

import pytest
import sympy as sp

from odesolve.derive.structure import derive_structure, expand, lower

FAMILIES = [(tied, rule, bias) for tied, rule, bias in
            itertools.product([False, True], ["sgd", "truncated", "sanger"],
                              ["none", "trained", "fixed"])
            if not (rule == "sanger" and (not tied or bias == "trained"))]


def _canonical(items):
    """Σ coeff · E[...] as one sympy expression, the fields of an average sorted."""
    out = 0
    for coeff, factors in items:
        name = ",".join(f"{keys}@{unit}" for unit, keys in sorted(factors))
        out += coeff * sp.Symbol(f"E[{name}]")
    return sp.expand(out)


def _derived(terms):
    return _canonical((t.coeff, t.factors) for t in terms)


def _lowered(items):
    return _canonical((c, [(fields[0], a.own)] + ([(fields[1], a.other)] if a.other else []))
                      for c, a, fields in items)


@pytest.mark.parametrize("tied,rule,bias", FAMILIES)
def test_loops_reproduce_the_direct_derivation(tied, rule, bias):
    """The loop bodies read off K_REP = 3 units give every entry at K = 1, 2, 4."""
    low = lower(tied, rule, bias)
    for K in (1, 2, 4):
        direct = derive_structure(tied, rule, bias, K)
        S, N, drift, error = expand(low, K)
        for table, mine in ((direct.S, S), (direct.N, N)):
            for key, terms in table.items():
                assert _derived(terms) == _lowered(mine.get(key, [])), (K, key)
        for k in range(K):
            assert _derived(direct.drift[k]) == _lowered(drift[k])
        assert _derived(direct.error) == _lowered(error)


def test_increments_are_taken_almost_everywhere():
    """The encoder increment uses ga (a.e. derivative): its Stein derivative is ga', not g''
    (so a sign encoder, ga = 0, never moves), while the error keeps g' (distributional)."""
    low = lower(False, "sgd", "none")
    names = {a.name for a in low.averages()}
    assert "avg1_a2" in names and "avg1_g2" not in names
    assert {t.average.name for t in low.error_single} == {"avg1_g1", "avg1_g0_g0"}


def test_sanger_has_no_bias_update():
    with pytest.raises(ValueError, match="no loss"):
        lower(True, "sanger", "trained")

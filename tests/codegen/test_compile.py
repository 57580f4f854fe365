"""One generated module per family: K-independence, the printed source, stages, cache."""
from __future__ import annotations

import logging

import numpy as np

from odesolve import Autoencoder, State, compile_model, integrate, spiked_covariance
from odesolve.codegen import compile as compile_module
from odesolve.testing.reference_rhs import reference_rhs
from odesolve.integrator import rhs_function


def test_one_module_serves_every_width():
    small = compile_model(Autoencoder(K=1, activation="linear"))
    wide = compile_model(Autoencoder(K=6, activation="linear"))
    assert wide.module is small.module and wide.model.K == 6
    spec = spiked_covariance(D=200, spikes=[1.5, 1.0, 0.6, 0.3, 0.2, 0.1], bulk=0.2)
    state = State.random(wide.model, spec, scale=0.3, seed=1)
    got = rhs_function(wide, state, 0.8, "finite")(0.0, state.to_vector())
    np.testing.assert_allclose(got, reference_rhs(state, 0.8, "finite"), rtol=1e-10, atol=1e-13)


def test_printed_source_states_g_version_fingerprint_and_slots():
    compiled = compile_model(Autoencoder(K=3, activation="linear", tied=True, rule="sanger"))
    text = str(compiled)
    header = text.split("import math")[0]
    assert "# g(x) = x" in header and "odesolve " in header and "fingerprint" in header
    assert "State vector y" in header and "m_k: encoder biases" in header
    assert "avg1_g1 = E[g'(λ_k)]: closed form" in header
    assert set(compiled.stages) >= {"compile"}


def test_first_run_derives_then_the_disk_cache_is_used(tmp_path, monkeypatch, caplog, capsys):
    monkeypatch.setenv("ODESOLVE_CACHE", str(tmp_path))
    monkeypatch.setattr(compile_module, "_LOADED", {})
    model = Autoencoder(K=2, activation="linear", bias="fixed")
    with caplog.at_level(logging.INFO, logger="odesolve.codegen.compile"):
        first = compile_model(model)
    assert first.cache == "miss" and set(first.stages) == {"derive", "lower", "emit", "compile"}
    assert "deriving and compiling" in capsys.readouterr().err
    monkeypatch.setattr(compile_module, "_LOADED", {})
    second = compile_model(model)
    assert second.cache == "disk" and set(second.stages) == {"compile"}
    assert "deriving and compiling" not in capsys.readouterr().err
    assert "cache miss" in caplog.text


def test_damaged_module_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("ODESOLVE_CACHE", str(tmp_path))
    monkeypatch.setattr(compile_module, "_LOADED", {})
    model = Autoencoder(K=2, activation="linear", bias="fixed")
    path = compile_model(model).path
    path.write_text(path.read_text()[:200])          # truncated by a crash
    monkeypatch.setattr(compile_module, "_LOADED", {})
    rebuilt = compile_model(model)
    assert rebuilt.cache == "miss" and rebuilt.source.endswith(path.read_text()[-60:])
    spec = spiked_covariance(D=100, spikes=[1.0, 0.5], bulk=0.2)
    assert np.isfinite(integrate(State.random(model, spec, seed=0), 1.0, 5.0).error).all()


def test_interpreted_module_is_the_compiled_one(monkeypatch):
    """ODESOLVE_JIT=0 (used by the corpus and regression tests) runs the same source as
    plain Python: its right-hand side and error must be the compiled ones, including a
    quadrature average (ReLU with a trained bias) and the plain average functions."""
    spec = spiked_covariance(D=300, spikes=[1.5, 0.8, 0.4], bulk=0.1)
    for model in (Autoencoder(K=3, activation="erf"),
                  Autoencoder(K=3, activation="relu", bias="trained")):
        state = State.random(model, spec, scale=0.4, seed=2)
        y = state.to_vector()
        compiled = compile_model(model)
        monkeypatch.setenv("ODESOLVE_JIT", "0")
        interpreted = compile_model(model)
        monkeypatch.delenv("ODESOLVE_JIT")
        assert compiled.jit and not interpreted.jit
        assert interpreted.module is not compiled.module and interpreted.path == compiled.path
        for bulk in ("limit", "finite"):
            np.testing.assert_allclose(rhs_function(interpreted, state, 0.9, bulk)(0.0, y),
                                       rhs_function(compiled, state, 0.9, bulk)(0.0, y),
                                       rtol=1e-13, atol=1e-15)
        spec_ = state.spectrum
        args = (y, np.ascontiguousarray(spec_.s), spec_.bulk / spec_.D, model.K, compiled.blocks)
        assert interpreted.module.error_of_state(*args) == compiled.module.error_of_state(*args)
        assert interpreted.module.avg1_g1(0.7, 0.2) == compiled.module.avg1_g1(0.7, 0.2)


def test_unchecked_function_is_the_dispatchers_own(monkeypatch):
    """``CompiledModel.unchecked``: the compiled function the dispatcher would call for these
    argument types (no second compilation), with the same results and codes; without
    jit, the module's function itself."""
    from odesolve.integrator.flow import NO_JACOBIAN, _FlowArguments
    model = Autoencoder(K=3, activation="erf")
    spec = spiked_covariance(D=300, spikes=[1.5, 0.8, 0.4], bulk=0.1)
    state = State.random(model, spec, scale=0.4, seed=2)
    compiled = compile_model(model)
    a = _FlowArguments(compiled, state, 0.9, "limit", None, False)
    y, dy_direct, dy = state.to_vector(), np.empty(a.size), np.empty(a.size)
    tail = a.at_rate(0.9) + (1e3,)
    extra = a.work_arrays() + (False, NO_JACOBIAN)
    guarded = compiled.module.rhs_guarded
    before = len(guarded.overloads)
    direct = compiled.unchecked("rhs_guarded", (y,) + tail + (dy_direct,) + extra)
    assert len(guarded.overloads) == before
    assert compiled.unchecked("rhs_guarded", (y.copy(),) + tail + (dy,) + extra) is direct
    assert direct(y, *tail, dy_direct, *extra) == guarded(y, *tail, dy, *extra) == 0
    np.testing.assert_array_equal(dy_direct, dy)
    far = y.copy()
    far[0] = 2e3                                   # beyond the limit of 1e3: code 1
    assert direct(far, *tail, dy_direct, *extra) == 1
    monkeypatch.setenv("ODESOLVE_JIT", "0")
    interpreted = compile_model(model)
    assert interpreted.unchecked("rhs_guarded", ()) is interpreted.module.rhs_guarded

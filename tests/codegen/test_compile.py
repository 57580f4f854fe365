"""One generated module per family: K-independence, the printed source, stages, cache."""
from __future__ import annotations

import logging
import os

import numpy as np
import pytest

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
        args = (np.ascontiguousarray(spec_.s), spec_.bulk / spec_.D, model.K, compiled.blocks)
        assert (interpreted.kernels.error_of_state(y, interpreted.error_handle, *args)
                == compiled.kernels.error_of_state(y, compiled.error_handle, *args))
        assert interpreted.module.avg1_g1(0.7, 0.2) == compiled.module.avg1_g1(0.7, 0.2)


def test_unchecked_function_is_the_dispatchers_own(monkeypatch):
    """``CompiledModel.unchecked``: the compiled function the dispatcher would call for these
    argument types (no second compilation), with the same results and codes; without
    jit, the plain Python kernel itself."""
    from odesolve.integrator.flow import NO_JACOBIAN, _FlowArguments
    model = Autoencoder(K=3, activation="erf")
    spec = spiked_covariance(D=300, spikes=[1.5, 0.8, 0.4], bulk=0.1)
    state = State.random(model, spec, scale=0.4, seed=2)
    compiled = compile_model(model)
    a = _FlowArguments(compiled, state, 0.9, "limit", None, False)
    y, dy_direct, dy = state.to_vector(), np.empty(a.size), np.empty(a.size)
    tail = a.at_rate(0.9) + (1e3,)
    extra = (False, NO_JACOBIAN)
    guarded = compiled.kernels.rhs_guarded
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
    assert interpreted.unchecked("rhs_guarded", ()) is interpreted.kernels.rhs_guarded


def test_one_compiled_kernel_serves_every_family():
    """The flow kernels are compiled once for all families (odesolve.codegen.kernels):
    integrating models of three families (untied erf, tied ReLU with a bias, tied Sanger's
    rule) adds no compiled version of rhs_guarded, and each family's handle is the address
    of its own coefficients (their flows differ)."""
    from odesolve.codegen import kernels
    spec = spiked_covariance(D=100, spikes=[1.0, 0.5], bulk=0.2)
    models = [Autoencoder(K=2, activation="erf"),
              Autoencoder(K=2, activation="relu", tied=True, bias="trained"),
              Autoencoder(K=2, activation="erf", tied=True, rule="sanger")]
    states = [State.random(m, spec, seed=0) for m in models]
    integrate(states[0], 1.0, 2.0)
    assert kernels.is_cached()        # in numba's cache now: the next process loads them
    guarded = kernels.compiled().rhs_guarded
    before = dict(guarded.overloads)
    flows = [rhs_function(compile_model(m), s, 1.0)(0.0, s.to_vector()) for m, s in
             zip(models, states)]
    for state in states:
        integrate(state, 1.0, 2.0)
    assert dict(guarded.overloads) == before
    handles = {compile_model(m).coefficients_handle for m in models}
    assert len(handles) == 3 and all(isinstance(h, int) for h in handles)
    for flow, state in zip(flows, states):
        np.testing.assert_allclose(flow, reference_rhs(state, 1.0, "limit"), rtol=1e-10,
                                   atol=1e-13)


def test_an_error_raised_in_a_family_reaches_the_caller_through_the_kernels():
    """A family's code is called by address from the compiled kernels; an exception it
    raises (a quadrature out of its range: exp(|x|^1.5) at a large variance) still stops
    the run with its own class and message."""
    from odesolve import QuadratureRangeError
    model = Autoencoder(K=1, activation="exp(Abs(x)**1.5)")
    spec = spiked_covariance(D=200, spikes=[1.0], bulk=0.05)
    assert compile_model(model).jit
    with pytest.raises(QuadratureRangeError, match="not negligible at 10 standard deviations"):
        integrate(State.random(model, spec, 4.0, seed=0), 0.5, (0.0, 1.0), method="RK45")


def test_kernels_are_compiled_from_their_flattened_source():
    """The compiled entry points are kernels.py's functions with their callees inlined
    (one compiled function each, odesolve.codegen.inline), from a flattened source kept
    in the cache folder, and named with a digest of kernels.py, of the flattening code and
    of the calls of a family (odesolve.codegen.addresses), so that numba's cache is not
    served a stale one; the plain Python ones call their callees."""
    import hashlib
    from pathlib import Path

    from odesolve.codegen import addresses, cache_dir, inline, kernels
    flow = kernels.compiled()
    source = Path(kernels.__file__).read_text()
    digest = hashlib.sha256(b"".join(Path(m.__file__).read_bytes()
                                     for m in (inline, addresses))
                            + source.encode()).hexdigest()[:12]
    flat = (cache_dir() / f"odesolve_kernels_{digest}.py").read_text()
    assert flat.startswith(inline.flatten(source, kernels.ENTRY_POINTS).rstrip("\n"))
    for name in kernels.ENTRY_POINTS:
        function = getattr(flow, name).py_func
        assert function.__qualname__ == f"{name}_{digest}"
        assert function.__code__.co_filename == kernels.__file__
    names = set(flow.rhs_guarded.py_func.__code__.co_names)
    assert "rhs" not in names and "order_parameters" not in names and "call_coefficients" in names
    assert "rhs" in kernels.PLAIN.rhs_guarded.__code__.co_names


def test_rhs_function_takes_any_real_vector_and_refuses_others():
    """rhs_function's f(t, y): a read-only, strided or list y gives the flow of the same
    float64 vector (the kernels write into y for Jacobians, and a strided y's biases
    reach the family's code as a copy); a y of another size, complex or text is refused
    with one line, not read out of bounds by the compiled loops, and so is a t that is not
    a finite real number (ignored at a constant rate, it would pass unnoticed)."""
    model = Autoencoder(K=2, activation="relu", bias="trained")
    state = State.random(model, spiked_covariance(D=100, spikes=[1.0, 0.5], bulk=0.2), seed=0)
    f = rhs_function(compile_model(model), state, 1.0)
    y = state.to_vector()
    expected = f(0.0, y)
    read_only = y.copy()
    read_only.flags.writeable = False
    strided = np.repeat(y, 2)[::2]
    for same in (read_only, strided, list(y)):
        np.testing.assert_array_equal(f(0.0, same), expected)
    np.testing.assert_array_equal(read_only, y)
    for bad, error, message in ((y[:-1], ValueError, "state vector of 26 entries"),
                                (np.ones((2, y.size)), ValueError, r"shape \(2, 26\)"),
                                (y + 1j, TypeError, "real numbers"),
                                (["a"] * y.size, TypeError, "must be numbers")):
        with pytest.raises(error, match=message):
            f(0.0, bad)
    for bad_t, error in ((float("nan"), ValueError), ("1", TypeError), (np.ones(2), TypeError)):
        with pytest.raises(error, match="t must be"):
            f(bad_t, y)


@pytest.mark.slow
def test_damaged_numba_cache_entries_are_rebuilt(tmp_path):
    """A numba cache file truncated or overwritten (the kernels', shared by every family,
    the family's, the packing loops') is compiled again with a warning, not a crash from
    numba's loader, and saved afresh: the next process runs without a warning."""
    import subprocess
    import sys
    script = ("from odesolve import Autoencoder, State, integrate, spiked_covariance\n"
              "spec = spiked_covariance(D=300, spikes=[1.5, 0.7, 0.4], bulk=0.05)\n"
              "state = State.random(Autoencoder(K=3, activation='erf'), spec, 0.3, seed=0)\n"
              "for method in ('LSODA', 'CVODE', 'euler'):\n"
              "    print(repr(integrate(state, 1.0, 5.0, method=method).error[-1]))\n")
    numba_cache = tmp_path / "numba"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(numba_cache),
           "ODESOLVE_CACHE": str(tmp_path / "odesolve")}

    def run():
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout, done.stderr

    first, _ = run()
    damaged = 0
    for path in numba_cache.rglob("*"):
        if path.suffix == ".nbc":
            path.write_bytes(path.read_bytes()[:100])
            damaged += 1
        elif path.suffix == ".nbi":
            path.write_bytes(b"\x80\x04not an index" * 7)
            damaged += 1
    assert damaged >= 10
    again, warned = run()
    assert again == first and "could not be read" in warned and "compiling it again" in warned
    third, quiet = run()
    assert third == first and "could not be read" not in quiet

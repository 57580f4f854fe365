"""Configuration files: parsing, validation errors, overrides, and building the problem."""
from __future__ import annotations


import numpy as np
import pytest
from conftest import ROOT

from odesolve.errors import ConfigError
from odesolve.integrator import time_grid
from odesolve.workflow.config import load_config, parse_config, parse_value, resolve_key, tomllib
from odesolve.workflow.problem import build_problem
from odesolve.workflow.schema import markdown_table

EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))

MINIMAL = """
[data]
kind = "spiked"
D = 200
spikes = [2.0, 1.0]
bulk = 0.05
[model]
K = 2
[train]
lr = 1.0
t_max = 20.0
"""


def write(tmp_path, text, name="config.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def error_for(tmp_path, text) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        build_problem(load_config(path))
    assert str(path) in str(info.value), "the error must name the file"
    return info.value


def test_minimal_config_fills_in_defaults(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    assert config.data.spikes == (2.0, 1.0)
    assert config.model.activation == "erf" and config.model.tied is False
    assert config.train.rule == "sgd" and config.train.n_times == 60
    assert (config.init.scale, config.init.seed) == (0.1, 0)
    assert (config.theory.solver, config.theory.closure) == ("auto", True)
    assert config.simulation.seeds == 0 and not config.simulated
    assert config.seeds == (0,)
    # keys of other data kinds stay unset
    assert config.data.eigenvalues is None and config.data.M is None


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_config_is_valid(path):
    config = load_config(path)
    assert config.source == str(path)
    assert config.simulation.seeds >= 1, "examples compare theory with simulation"


def test_main_example_matches_the_contract():
    config = load_config(ROOT / "examples" / "sequential_pcs.toml")
    assert config.data.kind == "spiked" and config.model.activation == "erf"
    assert config.model.K == 3 and not config.model.tied
    assert config.seeds == (0, 1, 2, 3)


@pytest.mark.parametrize("text, key, words", [
    (MINIMAL.replace("bulk", "blk"), "data.blk", "unknown key (did you mean 'bulk'?)"),
    (MINIMAL.replace("K = 2", "k = 2"), "model.k", "unknown key (did you mean 'K'?)"),  # had no hint
    (MINIMAL + "[sim]\nseeds = 2\n", "sim", "unknown section [sim] (did you mean 'simulation'?)"),
    (MINIMAL.replace("lr = 1.0\n", ""), "train.lr", "missing required key"),
    (MINIMAL.replace("[model]\nK = 2\n", ""), "model", "missing section [model]"),
    (MINIMAL.replace("K = 2", "K = 2.5"), "model.K", "expected int"),
    (MINIMAL.replace("K = 2", "K = true"), "model.K", "expected int"),
    (MINIMAL.replace("lr = 1.0", 'lr = "fast"'), "train.lr", "expected float"),
    (MINIMAL.replace("lr = 1.0", "lr = nan"), "train.lr", "must be finite and > 0"),
    (MINIMAL.replace("lr = 1.0", "lr = -0.5"), "train.lr", "must be finite and > 0"),
    (MINIMAL.replace("t_max = 20.0", "t_max = inf"), "train.t_max", "finite"),
    (MINIMAL.replace("K = 2", "K = 200"), "model.K", "need K < D"),
    (MINIMAL.replace("K = 2", 'K = 2\ntied = "yes"'), "model.tied", "expected bool"),
    (MINIMAL.replace("K = 2", 'K = 2\nbias = "sometimes"'), "model.bias", "must be one of"),
    (MINIMAL.replace("K = 2", 'K = 2\nactivation = "softplux"'), "model.activation",
     "unknown activation 'softplux'"),
    (MINIMAL.replace('kind = "spiked"', 'kind = "gaussian"'), "data.kind", "must be one of"),
    (MINIMAL.replace("bulk = 0.05", "bulk = 0.05\neigenvalues = [1.0, 2.0]"), "data.eigenvalues",
     "is not used with kind = 'spiked'"),
    (MINIMAL.replace("spikes = [2.0, 1.0]", "spikes = [2.0, -1.0]"), "data.spikes", "> 0"),
    (MINIMAL.replace("spikes = [2.0, 1.0]\n", ""), "data.spikes", "missing required key"),
    (MINIMAL.replace("D = 200\n", ""), "data.D", "missing required key"),
    (MINIMAL.replace("lr = 1.0", 'lr = 1.0\nrule = "sanger"'), "train.rule", "tied weights"),
    (MINIMAL.replace("lr = 1.0", "lr = 1.0\ntimes = [0.0, 5.0, 2.0]"), "train.times",
     "strictly increasing"),
    (MINIMAL.replace("lr = 1.0", "lr = 1.0\ntimes = [0.0, 50.0]"), "train.times", "t_max"),
    (MINIMAL.replace("lr = 1.0", "lr = 1.0\ntimes = [0.0, 0.0001]"), "train.times",
     "multiples of 1/D"),
    (MINIMAL + "[theory]\nsolver = \"rk4\"\n", "theory.solver", "must be one of"),
    (MINIMAL + "[init]\nweights = \"missing.npz\"\n", "init.weights", "no such file"),
    (MINIMAL.replace("K = 2", "K = = 2"), None, "invalid TOML"),
    # arguments that were dropped without a word, or refused later without the key
    (MINIMAL.replace("lr = 1.0", "lr = 1.0\ntimes = [0.0, 5.0]\nn_times = 10"),
     "train.n_times", "not used when train.times is given"),
    (MINIMAL + "[init]\nbias = 0.5\n", "init.bias", "the model has no bias"),
    (MINIMAL.replace("K = 2", "K = 2\ntied = true\nbias = true").replace(
        "lr = 1.0", 'lr = 1.0\nrule = "sanger"'), "model.bias", "Sanger's rule has no loss"),
])
def test_invalid_configs_name_the_file_and_the_key(tmp_path, text, key, words):
    error = error_for(tmp_path, text)
    assert isinstance(error, ValueError)
    assert error.key == key
    assert words in str(error)
    if key is not None:
        assert f": {key}: " in str(error)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml")


def test_spectrum_kind_from_list_and_files(tmp_path):
    eigenvalues = [3.0, 1.0, 0.5, 0.25, 0.1]
    base = MINIMAL.replace('kind = "spiked"\nD = 200\nspikes = [2.0, 1.0]\nbulk = 0.05',
                           'kind = "spectrum"\n{line}')
    listed = load_config(write(tmp_path, base.format(line=f"eigenvalues = {eigenvalues}")))
    np.save(tmp_path / "ev.npy", np.array(eigenvalues))
    cov = np.diag(eigenvalues)
    np.savez(tmp_path / "cov.npz", covariance=cov)
    from_npy = load_config(write(tmp_path, base.format(line='file = "ev.npy"'), "b.toml"))
    from_npz = load_config(write(tmp_path, base.format(line='file = "cov.npz"'), "c.toml"))
    for config in (listed, from_npy, from_npz):
        problem = build_problem(config)
        assert problem.spectrum.D == 5 and problem.spectrum.n_bulk == 0
        assert problem.spectrum.trace == pytest.approx(sum(eigenvalues))
        # the overlap modes are the 2K leading modes, largest first
        assert list(problem.spectrum.eigenvalues[problem.overlap_modes]) == sorted(eigenvalues)[::-1][:4]
    assert from_npy.data.file == str(tmp_path / "ev.npy"), "paths resolve against the file"
    both = base.format(line='eigenvalues = [1.0, 2.0]\nfile = "ev.npy"')
    assert error_for(tmp_path, both).key == "data.eigenvalues"


def test_overrides_bare_and_dotted_keys(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    changed = config.with_overrides({"lr": 0.5, "model.K": 3, "seeds": 2})
    assert (changed.train.lr, changed.model.K, changed.simulation.seeds) == (0.5, 3, 2)
    assert config.train.lr == 1.0, "configs are immutable"
    with pytest.raises(ConfigError, match="ambiguous key: write one of model.bias, init.bias"):
        config.with_overrides({"bias": 0.1})
    with pytest.raises(ConfigError, match="train.lr: must be finite"):
        config.with_overrides({"lr": 0.0})
    with pytest.raises(ConfigError, match="unknown key"):
        resolve_key("learning_rate")


def test_toml_round_trip_and_digest(tmp_path):
    config = load_config(write(tmp_path, MINIMAL + '[init]\nbias = 0.0\n[theory]\nclosure = false\n'))
    again = parse_config(tomllib.loads(config.to_toml()), "again")
    assert again == config
    assert again.digest() == config.digest()
    assert config.with_overrides({"lr": 0.5}).digest() != config.digest()


def test_parse_value_reads_toml_or_bare_strings():
    assert parse_value("2") == 2 and isinstance(parse_value("2"), int)
    assert parse_value("1e-3") == 1e-3
    assert parse_value("false") is False
    assert parse_value('"x**2"') == "x**2"
    assert parse_value("tanh(2*x)") == "tanh(2*x)"


def test_time_grid_is_log_spaced_on_whole_steps():
    t = time_grid(200.0, 60, D=500)
    assert t[0] == 0.0 and t[-1] == 200.0
    assert np.all(np.diff(t) > 0)
    assert np.allclose(t * 500, np.round(t * 500))
    assert t[1] == pytest.approx(0.2)
    ratios = t[2:] / t[1:-1]
    assert np.allclose(ratios, ratios[0], rtol=0.02)


@pytest.mark.parametrize("n", [2, 3])
def test_time_grid_of_few_times_ends_at_t_max(n):
    """Two times were [0, t_max/1000]: a run asked for its start and end stopped early."""
    for D in (None, 500):
        t = time_grid(200.0, n, D=D)
        assert t[0] == 0.0 and t[-1] == 200.0 and t.size == n


def test_build_problem_spiked(tmp_path):
    config = load_config(write(tmp_path, MINIMAL + "[simulation]\nseeds = 3\n[init]\nseed = 7\n"))
    problem = build_problem(config)
    assert problem.model.K == 2 and problem.spectrum.D == 200
    assert problem.seeds == (7, 8, 9)
    assert problem.theory_spectrum is problem.spectrum
    assert list(problem.overlap_modes) == [0, 1]
    assert problem.samples is None and problem.weights is None
    state = problem.initial_state(8)
    from odesolve.state import State
    same = State.random(problem.model, problem.spectrum, 0.1, seed=8)
    assert np.array_equal(state.A, same.A)
    all_modes = build_problem(config.with_overrides({"closure": False}))
    assert all_modes.theory_spectrum.n_tracked == 200 and all_modes.theory_spectrum.n_bulk == 0


def test_weights_file(tmp_path):
    rng = np.random.default_rng(1)
    W, V = rng.normal(0, 0.1, (2, 200)), rng.normal(0, 0.1, (2, 200))
    np.savez(tmp_path / "init.npz", W=W, V=V)
    config = load_config(write(tmp_path, MINIMAL + '[init]\nweights = "init.npz"\n'
                                                   "[simulation]\nseeds = 1\n"))
    problem = build_problem(config)
    assert problem.seeds == (0,)
    assert np.array_equal(problem.weights[0], W) and np.array_equal(problem.weights[1], V)
    assert np.allclose(problem.initial_state(0).A, W[:, :2])
    np.savez(tmp_path / "bad.npz", W=W[:, :10], V=V)
    bad = load_config(write(tmp_path, MINIMAL + '[init]\nweights = "bad.npz"\n', "bad.toml"))
    with pytest.raises(ConfigError, match=r"init.weights: array W .* has shape \(2, 10\)"):
        build_problem(bad)
    many = MINIMAL + '[init]\nweights = "init.npz"\n[simulation]\nseeds = 3\n'
    assert error_for(tmp_path, many).key == "simulation.seeds"


@pytest.mark.parametrize("document", ["docs/configuration.md", "README.md"])
def test_documentation_lists_every_key(document):
    docs = (ROOT / document).read_text()
    assert markdown_table() in docs, f"regenerate the table in {document}: python -m odesolve.workflow.schema"
    for line in markdown_table().splitlines()[2:]:
        key = line.split("`")[1]
        section, name = key.split(".")
        assert resolve_key(key) == (section, name)


def test_times_override_replaces_the_count(tmp_path):
    """A configuration stores n_times (its default) and a --set of times replaces it; the
    two given together are refused (one of them was dropped without a word)."""
    config = load_config(write(tmp_path, MINIMAL))
    assert config.with_overrides({"times": [0.0, 5.0, 20.0]}).train.times == (0.0, 5.0, 20.0)
    timed = config.with_overrides({"times": [0.0, 20.0]})
    assert "n_times" not in timed.to_toml()
    assert parse_config(tomllib.loads(timed.to_toml())).train.times == (0.0, 20.0)
    with pytest.raises(ConfigError, match="train.n_times: is not used"):
        timed.with_overrides({"n_times": 5})

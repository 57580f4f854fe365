"""Protocol keys in configurations: parsing, errors naming the key, results attributes."""
from __future__ import annotations

import numpy as np
import pytest

from odesolve import integrate
from odesolve.errors import ConfigError
from odesolve.protocols import Protocol, piecewise, power_law
from odesolve.workflow.config import load_config, parse_config, protocol_of, tomllib
from odesolve.workflow.experiment import run_experiment
from odesolve.workflow.problem import build_problem

from conftest import ROOT, TINY_CONFIG

TINY = TINY_CONFIG.format(seeds=2)


def _config(extra_train="", schedule="", model=""):
    text = TINY.replace("[train]\n", "[train]\n" + extra_train).replace(
        "[model]\n", "[model]\n" + model) + schedule
    return parse_config(tomllib.loads(text), "p.toml")


def test_example_protocol_config():
    config = load_config(ROOT / "examples" / "protocols.toml")
    protocol = protocol_of(config)
    assert protocol == Protocol(schedule=power_law(20.0, 1.0), decoder_rate=0.5,
                                encoder_decay=0.02, decoder_decay=0.05, batch_size=2)


def test_default_protocol_is_plain_sgd():
    assert protocol_of(_config()).is_plain


def test_piecewise_schedule_keys():
    config = _config(schedule='[schedule]\nkind = "piecewise"\nchange_times = [1.0, 2.0]\n'
                              'factors = [1.0, 0.5, 0.25]\n')
    assert protocol_of(config).schedule == piecewise([1.0, 2.0], [1.0, 0.5, 0.25])


@pytest.mark.parametrize("train,schedule,model,key,match", [
    ("", '[schedule]\nkind = "power_law"\n', "", "schedule.tau", "missing required key"),
    ("", '[schedule]\nkind = "exponential"\ntau = 2.0\nfactors = [1.0]\n', "",
     "schedule.factors", "is not used with kind = 'exponential'"),
    ("", '[schedule]\nkind = "exponential"\ntau = 5.0\nbeta = 2.0\n', "",      # was ignored
     "schedule.beta", "is not used with kind = 'exponential'"),
    ("", '[schedule]\nkind = "piecewise"\nchange_times = [1.0]\nfactors = [1.0]\n', "",
     "schedule.change_times", "needs 2 factors"),
    ("", '[schedule]\nkind = "cosine"\n', "", "schedule.kind", "must be one of"),
    ("decoder_rate = 0.0\n", "", "", "train.decoder_rate", "must be finite and > 0"),
    ("encoder_decay = -0.1\n", "", "", "train.encoder_decay", ">= 0"),
    ("batch_size = 0\n", "", "", "train.batch_size", ">= 1"),
    ("decoder_rate = 2.0\n", "", "tied = true\n", "train.decoder_rate", "one vector per unit"),
])
def test_bad_protocol_keys_name_the_key(train, schedule, model, key, match):
    with pytest.raises(ConfigError, match=match) as info:
        _config(train, schedule, model)
    assert info.value.key == key


def test_times_are_whole_batches():
    config = _config("batch_size = 3\n")
    problem = build_problem(config)
    steps = problem.times * 60 / 3
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-9)
    # 60 samples: not whole batches (times replace the base configuration's n_times)
    bad = parse_config(tomllib.loads(TINY.replace("n_times = 12\n", "batch_size = 7\ntimes = [0.0, 1.0]\n")),
                       "p.toml")
    with pytest.raises(ConfigError, match="multiples of B/D = 7/60"):
        build_problem(bad)


def test_experiment_runs_and_records_the_protocol():
    config = _config("batch_size = 2\nencoder_decay = 0.1\ndecoder_rate = 0.5\n",
                     '[schedule]\nkind = "exponential"\ntau = 3.0\n')
    ds = run_experiment(config)
    assert ds.attrs["protocol_schedule"] == "exponential(tau=3)"
    assert ds.attrs["protocol_batch_size"] == 2 and ds.attrs["protocol_encoder_decay"] == 0.1
    assert ds.attrs["protocol_decoder_rate"] == 0.5
    problem = build_problem(config)
    theory = integrate(problem.initial_state(0), 1.0, (0.0, 4.0), t_eval=problem.times,
                       protocol=protocol_of(config))
    np.testing.assert_allclose(ds["error_theory"].sel(seed=0), theory.error, rtol=1e-10)
    assert np.all(np.isfinite(ds["error_simulation"]))


def test_finite_size_key():
    config = _config(schedule="[theory]\nfinite_size = true\n")
    ds = run_experiment(config.with_overrides({"simulation.seeds": 0}))
    assert ds.attrs["theory_finite_size"] == 1
    tied = _config(model="tied = true\n", schedule="[theory]\nfinite_size = true\n")
    with pytest.raises(ConfigError, match="untied vanilla SGD only") as info:
        build_problem(tied)
    assert info.value.key == "theory.finite_size"
    all_modes = _config(schedule="[theory]\nfinite_size = true\nclosure = false\n")
    with pytest.raises(ConfigError, match="needs a spectrum with a bulk"):
        build_problem(all_modes)

"""Experiment configuration: a TOML file → a validated, frozen :class:`Config`.

A configuration has seven sections.  ``[data]``, ``[model]`` and ``[train]`` are
required; ``[schedule]``, ``[init]``, ``[theory]`` and ``[simulation]`` may be left out (every key in
them has a default).  Every key, its type, default and meaning is listed by
:func:`odesolve.workflow.schema.markdown_table` (that table is in the README).

Unknown sections or keys, missing required keys, values of the wrong type or out of
range all raise :class:`ConfigError`, which names the file and the key:

>>> text = '''
... [data]
... kind = "spiked"
... D = 500
... spikes = [1.5, 0.6]
... bulk = 0.05
... [model]
... K = 2
... [train]
... lr = 1.0
... t_max = 50.0
... '''
>>> config = parse_config(tomllib.loads(text), source="demo.toml")
>>> config.model.activation, config.init.scale, config.simulation.seeds
('erf', 0.1, 0)
>>> config.with_overrides({"lr": 0.5}).train.lr
0.5
>>> parse_config({**tomllib.loads(text), "train": {"lr": -1.0, "t_max": 5.0}}, "demo.toml")
Traceback (most recent call last):
...
odesolve.errors.ConfigError: demo.toml: train.lr: must be finite and > 0, got -1.0
"""
from __future__ import annotations

import contextlib
import dataclasses
import difflib
import hashlib
import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path


if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from simulations.online import SECONDS_PER_STEP_KD

from .._checks import SECONDS_PER_FLOP, check_cost, check_seed, message_of
from ..derive.averages import check_sgd_averages
from ..errors import ConfigError, CostWarning
from ..integrator.euler import SECONDS_PER_EULER_VALUE
from ..spec.model import Autoencoder, check_sanger_bias
from ..state import state_variables
from ..protocols import Protocol, constant, exponential, piecewise, power_law
from .schema import (REQUIRED_SECTIONS, SECTIONS, DataConfig, InitConfig, ModelConfig,
                     ScheduleConfig, SimulationConfig, TheoryConfig, TrainConfig, plain_value,
                     toml_value)

__all__ = ["Config", "load_config", "parse_config", "parse_value", "resolve_key", "autoencoder_of",
           "protocol_of", "blame", "tomllib", "estimated_seconds"]



@dataclass(frozen=True)
class Config:
    """A validated experiment configuration (one attribute per TOML section).

    Build it with :func:`load_config` or :func:`parse_config`; derive variants with
    :meth:`with_overrides`.  ``source`` is the file it came from.
    """

    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    init: InitConfig = field(default_factory=InitConfig)
    theory: TheoryConfig = field(default_factory=TheoryConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    source: str = field(default="<config>", compare=False)

    @property
    def n_runs(self) -> int:
        """Number of runs: one for a weights file or no simulation, else ``simulation.seeds``."""
        return 1 if self.init.weights is not None else max(1, self.simulation.seeds)

    @property
    def seeds(self) -> tuple[int, ...]:
        """Seeds of the runs: ``init.seed + i``; a single run for a weights file or no simulation."""
        return tuple(self.init.seed + i for i in range(self.n_runs))

    @property
    def simulated(self) -> bool:
        """Whether the SGD simulator runs."""
        return self.simulation.seeds > 0

    def to_dict(self) -> dict:
        """Nested ``{section: {key: value}}`` with every key (unset optional keys left out)."""
        out = {}
        for name in SECTIONS:
            section = getattr(self, name)
            out[name] = {f.name: plain_value(getattr(section, f.name))
                         for f in dataclasses.fields(section) if getattr(section, f.name) is not None}
        if self.train.times is not None:   # n_times is unused then, and not to be given
            del out["train"]["n_times"]
        return out

    def to_toml(self) -> str:
        """The full configuration as TOML text (reloadable with :func:`parse_config`)."""
        lines = []
        for name, section in self.to_dict().items():
            lines.append(f"[{name}]")
            lines += [f"{key} = {toml_value(value)}" for key, value in section.items()]
            lines.append("")
        return "\n".join(lines)

    def digest(self) -> str:
        """SHA-256 of the canonical configuration (identifies a run's inputs)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def with_overrides(self, overrides: dict, source: str | None = None) -> "Config":
        """A copy with some keys changed, validated like a file.

        Keys are dotted (``"train.lr"``) or bare when unambiguous (``"lr"``, ``"K"``).
        """
        data = self.to_dict()
        for key, value in overrides.items():
            section, name = resolve_key(key, source or self.source)
            if (section, name) == ("train", "times"):
                # the recorded times replace the count this configuration had (given or by
                # default); giving both in the overrides is refused below as in a file
                data["train"].pop("n_times", None)
            data.setdefault(section, {})[name] = value
        return parse_config(data, source or self.source, base_dir=None)


def resolve_key(key: str, source: str = "<overrides>") -> tuple[str, str]:
    """Split a dotted or bare key into ``(section, name)``.

    >>> resolve_key("lr"), resolve_key("model.K"), resolve_key("K")
    (('train', 'lr'), ('model', 'K'), ('model', 'K'))
    """
    if "." in key:
        section, _, name = key.partition(".")
        if section not in SECTIONS:
            raise ConfigError(source, key, f"unknown section [{section}]{_suggest(section, SECTIONS)}")
        names = [f.name for f in dataclasses.fields(SECTIONS[section])]
        if name not in names:
            raise ConfigError(source, key, f"unknown key{_suggest(name, names)}")
        return section, name
    owners = [s for s, cls in SECTIONS.items() if key in {f.name for f in dataclasses.fields(cls)}]
    if not owners:
        every = [f.name for cls in SECTIONS.values() for f in dataclasses.fields(cls)]
        raise ConfigError(source, key, f"unknown key{_suggest(key, every)}")
    if len(owners) > 1:
        raise ConfigError(source, key, "ambiguous key: write one of "
                          + ", ".join(f"{s}.{key}" for s in owners))
    return owners[0], key


def _suggest(word, options) -> str:
    # the same key in another case first: difflib finds no match for "k" against "K"
    close = ([o for o in options if o.lower() == word.lower()]
             or difflib.get_close_matches(word, list(options), n=1)
             or [o for o in options if o.startswith(word) or word.startswith(o)])
    return f" (did you mean {close[0]!r}?)" if close else ""


# --- parsing and validation ---------------------------------------------------------
def load_config(path) -> Config:
    """Read and validate a TOML configuration file.

    Parameters
    ----------
    path : str or Path
        The ``.toml`` file. Relative paths inside it are resolved against its directory.

    Raises
    ------
    ConfigError
        For an unreadable file, invalid TOML, or any invalid key.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
        data = tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(path, None, "no such file") from None
    except IsADirectoryError:
        raise ConfigError(path, None, "is a directory, not a TOML file") from None
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, None, f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at "
                          f"offset {exc.start}); TOML files are UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, None, f"invalid TOML: {exc}") from None
    return parse_config(data, str(path), base_dir=path.parent)


def parse_config(data: dict, source: str = "<config>", base_dir=None) -> Config:
    """Validate a parsed TOML document (nested dicts) and build a :class:`Config`.

    Parameters
    ----------
    data : dict
        ``{section: {key: value}}`` as returned by :mod:`tomllib`.
    source : str
        Name used in error messages.
    base_dir : path, optional
        Directory against which relative paths are resolved (default: keep them as given).
    """
    if not isinstance(data, dict):
        raise ConfigError(source, None, "expected a TOML document")
    for name, value in data.items():
        if name not in SECTIONS:
            raise ConfigError(source, name, f"unknown section [{name}]{_suggest(name, SECTIONS)}")
        if not isinstance(value, dict):
            raise ConfigError(source, name, f"must be a table [{name}], got {_type_name(value)}")
    for name in REQUIRED_SECTIONS:
        if name not in data:
            raise ConfigError(source, name, f"missing section [{name}]")
    train = data.get("train", {})
    if "times" in train and "n_times" in train:
        # one of them would be dropped without a word (times wins)
        raise ConfigError(source, "train.n_times", "is not used when train.times is given: "
                          "give one of them")
    kind = data["data"].get("kind", DataConfig.kind)
    sections = {name: _parse_section(name, cls, data.get(name, {}), source, base_dir, kind)
                for name, cls in SECTIONS.items()}
    config = Config(**sections, source=str(source))
    _check_consistency(config)
    return config


def _parse_section(name, cls, table, source, base_dir, kind):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in table:
        if key not in fields:
            raise ConfigError(source, f"{name}.{key}", f"unknown key{_suggest(key, fields)}")
    values = {}
    for key, f in fields.items():
        dotted = f"{name}.{key}"
        kinds = f.metadata["kinds"]
        if kinds and kind not in kinds:
            if key in table:
                raise ConfigError(source, dotted, f"is not used with kind = {kind!r} (only with "
                                  + " or ".join(repr(k) for k in kinds) + ")")
            continue
        if key not in table:
            if f.metadata["required"]:
                raise ConfigError(source, dotted, "missing required key")
            if f.metadata["default"] is not None:
                values[key] = f.metadata["default"]
            continue
        value = _coerce(table[key], f.metadata["types"], source, dotted)
        if f.metadata["types"] == "path" and base_dir is not None:
            value = str((Path(base_dir) / value).resolve()) if not os.path.isabs(value) else value
        choices = f.metadata["choices"]
        if choices is not None and not any(value == c and type(value) is type(c) for c in choices):
            shown = ", ".join(toml_value(c) for c in choices)
            raise ConfigError(source, dotted, f"must be one of {shown}; got {toml_value(value)}")
        check = f.metadata["check"]
        message = check(value) if check is not None else None
        if message:
            raise ConfigError(source, dotted, message)
        values[key] = value
    return cls(**values)


def _type_name(value) -> str:
    return {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def _coerce(value, types, source, dotted):
    """Check a TOML value against the declared type; ints are accepted as floats."""
    def fail():
        raise ConfigError(source, dotted, f"expected {types}, got {_type_name(value)} {value!r}")

    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if types == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            fail()
        return value
    if types == "float":
        if not is_number:
            fail()
        return float(value)
    if types == "bool":
        if not isinstance(value, bool):
            fail()
        return value
    if types in ("string", "path"):
        if not isinstance(value, str):
            fail()
        if not value.strip():
            raise ConfigError(source, dotted, f"expected a non-empty {types}, got {value!r}")
        return value
    if types == "bool or string":
        if not isinstance(value, (bool, str)):
            fail()
        return value
    if types == "list of float":
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            fail()
        return tuple(float(v) for v in value)
    raise AssertionError(f"undeclared type {types!r}")


def _check_consistency(config: Config) -> None:
    """Checks that involve several keys."""
    src, data = config.source, config.data
    if data.kind in ("spiked", "sinusoidal") and data.D is None:
        raise ConfigError(src, "data.D", f"missing required key (kind = {data.kind!r})")
    if data.kind == "spiked":
        if data.spikes is None:
            raise ConfigError(src, "data.spikes", "missing required key (kind = 'spiked')")
        if len(data.spikes) >= data.D:
            raise ConfigError(src, "data.spikes",
                              f"need fewer spikes ({len(data.spikes)}) than dimensions (D = {data.D})")
    if data.kind == "sinusoidal" and data.M >= data.D:
        raise ConfigError(src, "data.M", f"need M < D, got M = {data.M}, D = {data.D}")
    if data.kind == "spectrum":
        if (data.eigenvalues is None) == (data.file is None):
            raise ConfigError(src, "data.eigenvalues", "give exactly one of data.eigenvalues "
                              "and data.file (kind = 'spectrum')")
        if data.eigenvalues is not None and data.D is not None and len(data.eigenvalues) != data.D:
            raise ConfigError(src, "data.eigenvalues",
                              f"lists {len(data.eigenvalues)} eigenvalues but D = {data.D}")
    if data.kind == "images":
        if data.dataset is None:
            raise ConfigError(src, "data.dataset", "missing required key (kind = 'images')")
        if data.dataset in ("cifar10", "fashion_mnist") and data.path is None:
            raise ConfigError(src, "data.path", f"missing required key (dataset = {data.dataset!r} "
                              "is read from disk)")
    if data.D is not None and config.model.K >= data.D:
        raise ConfigError(src, "model.K", f"need K < D, got K = {config.model.K}, D = {data.D}")
    D = data.D if data.D is not None else (
        len(data.eigenvalues) if data.eigenvalues is not None else None)
    if D is not None and round(config.train.t_max * D) < 1:
        raise ConfigError(src, "train.t_max", f"{config.train.t_max:g} is less than one SGD "
                          f"step (1/D = {1 / D:g})")
    if config.theory.dt is not None and config.theory.solver != "euler":
        raise ConfigError(src, "theory.dt", f"is the step of solver = 'euler'; solver "
                          f"{config.theory.solver!r} chooses its own steps (theory.rtol, "
                          "theory.atol)")
    if config.theory.dt is not None and config.theory.dt > config.train.t_max:
        raise ConfigError(src, "theory.dt", f"the Euler step {config.theory.dt:g} is longer "
                          f"than t_max = {config.train.t_max:g}")
    message = check_seed_message(config.init.seed, config.n_runs)
    if message:
        raise ConfigError(src, "init.seed", f"{message} (seeds init.seed … init.seed + "
                          f"{config.n_runs - 1} are used)")
    times = config.train.times
    if times is not None and times[-1] > config.train.t_max:
        raise ConfigError(src, "train.times", f"last time {times[-1]} exceeds t_max = {config.train.t_max}")
    if config.init.weights is not None and config.simulation.seeds > 1:
        raise ConfigError(src, "simulation.seeds",
                          "a weights file gives one initial condition: use seeds = 0 or 1")
    if config.train.rule == "sanger" and not config.model.tied:
        raise ConfigError(src, "train.rule", "Sanger's rule needs tied weights (model.tied = true)")
    with blame(src, "model.bias"):      # before the model is made, which blames its activation
        check_sanger_bias(config.train.rule, config.model.bias)
    if config.init.bias != 0 and config.model.bias in (False, "none"):
        # it would be dropped: there is no bias to start from it
        raise ConfigError(src, "init.bias", f"= {config.init.bias:g} is given but the model "
                          "has no bias (model.bias = \"trained\" or \"fixed\")")
    with blame(src, "model.activation"):  # the other arguments are validated above
        model = autoencoder_of(config)
        check_sgd_averages(model.activation)   # milliseconds: tan(x), 1/x named here
    _check_schedule(config)
    with blame(src, "train.decoder_rate"):
        protocol_of(config).check_model(model)
    _check_cost(config)


#: Cost model of the estimates made before a run (measured on the 2-core CI machine), with
#: the simulator's and the integrator's per-step costs and the seconds per flop of
#: :mod:`odesolve._checks`: seconds per theory run.
_SECONDS_PER_THEORY_RUN = 0.1


def estimated_seconds(config: Config) -> float:
    """The estimated run time of a (valid) configuration, in seconds: theory runs, Euler
    steps and SGD steps from the cost model below; 0 where D is only known once a data
    file is read.  (A sweep adds these up, :func:`odesolve.workflow.sweep.run_sweep`.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CostWarning)
        return _check_cost(config)


def _check_cost(config: Config) -> float:
    """Refuse, before any work, a run whose estimated memory or time is out of reach, and
    announce a long one (:func:`odesolve._checks.check_cost`); each estimate is blamed on
    the key that makes it large.  Returns the estimated seconds of the run."""
    d, model = config.data, config.model
    D = d.D if d.D is not None else (len(d.eigenvalues) if d.eigenvalues is not None else None)
    if D is None and d.kind == "images" and d.size is not None:
        D = d.size ** 2
        with blame(config.source, "data.size"):
            check_cost(f"images of {d.size}×{d.size} pixels (D = {D}): covariance and its "
                       "eigenvectors", nbytes=8.0 * 3 * D * D,
                       seconds=SECONDS_PER_FLOP * 10.0 * D**3)
    if D is None:
        return 0.0  # known once the data file is read; the stages check their own sizes
    src, K, seeds = config.source, model.K, config.n_runs
    all_modes = not config.theory.closure or d.kind in ("spectrum", "images")
    n_state = state_variables(K, model.tied,
                              D if all_modes else (len(d.spikes) if d.spikes else d.M))
    n_times = len(config.train.times) if config.train.times else config.train.n_times
    # bytes per recorded time of one run: theory states and order parameters, SGD records
    per_time = 8.0 * (3 * n_state + 4 * K * K + 4 * K * min(D, 2 * K + 8))
    state_key = "theory.closure" if all_modes else "data.D"
    with blame(src, "data.D"):
        check_cost(f"weights of K = {K} units in D = {D}", nbytes=8.0 * 3 * K * D)
    with blame(src, state_key):
        check_cost(f"theory with all modes tracked ({n_state} variables)" if all_modes else
                   f"theory ({n_state} variables)", nbytes=8.0 * 4 * n_state)
    with blame(src, "train.n_times"):
        check_cost(f"{n_times} recorded times of {n_state} variables", nbytes=per_time * n_times)
    per_seed = _SECONDS_PER_THEORY_RUN
    if config.theory.solver == "euler":
        steps = config.train.t_max / (config.theory.dt or 1.0 / D)
        per_seed = SECONDS_PER_EULER_VALUE * steps * n_state
        with blame(src, "theory.dt"):
            # refused here, before any work; announced by integrate as each run starts
            # (the same estimate twice on stderr otherwise)
            check_cost(f"Euler: {steps:.3g} steps of {n_state} variables", seconds=per_seed,
                       announce=False)
    if config.simulated:
        steps = round(config.train.t_max * D)
        per_seed += SECONDS_PER_STEP_KD * steps * K * D
        with blame(src, "train.t_max"):
            check_cost(f"online SGD: {steps:.3g} SGD steps at K = {K}, D = {D}", seconds=per_seed)
        with blame(src, "simulation.n_test"):
            check_cost(f"{config.simulation.n_test} test samples in D = {D}",
                       nbytes=8.0 * config.simulation.n_test * D)
    if seeds > 1:
        with blame(src, "simulation.seeds"):
            check_cost(f"{seeds} seeds", seconds=per_seed * seeds,
                       nbytes=per_time * n_times * seeds)
    return per_seed * seeds


def check_seed_message(seed: int, count: int) -> str | None:
    """Why seeds ``seed … seed + count − 1`` are out of range, or None."""
    return message_of(check_seed, seed, count)


#: ``[schedule]`` keys each kind needs (the others must be left out).
_SCHEDULE_KEYS = {"constant": (), "piecewise": ("change_times", "factors"),
                  "power_law": ("tau",), "exponential": ("tau",)}


def _check_schedule(config: Config) -> None:
    src, sched = config.source, config.schedule
    needed = _SCHEDULE_KEYS[sched.kind]
    for key in ("change_times", "factors", "tau"):
        if key in needed and getattr(sched, key) is None:
            raise ConfigError(src, f"schedule.{key}", f"missing required key (kind = {sched.kind!r})")
        if key not in needed and getattr(sched, key) is not None:
            raise ConfigError(src, f"schedule.{key}", f"is not used with kind = {sched.kind!r}")
    # beta has a default (1): only a value other than it can be told from no value
    if sched.kind != "power_law" and sched.beta != 1.0:
        raise ConfigError(src, "schedule.beta", f"is not used with kind = {sched.kind!r}")
    with blame(src, f"schedule.{needed[0] if needed else 'kind'}"):
        protocol_of(config)


def protocol_of(config: Config) -> Protocol:
    """The :class:`~odesolve.protocols.Protocol` of ``[train]`` and ``[schedule]``."""
    sched, train = config.schedule, config.train
    schedule = {"constant": constant,
                "piecewise": lambda: piecewise(sched.change_times, sched.factors),
                "power_law": lambda: power_law(sched.tau, sched.beta),
                "exponential": lambda: exponential(sched.tau)}[sched.kind]()
    return Protocol(schedule=schedule, encoder_rate=train.encoder_rate,
                    decoder_rate=train.decoder_rate, bias_rate=train.bias_rate,
                    encoder_decay=train.encoder_decay, decoder_decay=train.decoder_decay,
                    batch_size=train.batch_size)


def autoencoder_of(config: Config) -> Autoencoder:
    """The :class:`~odesolve.Autoencoder` a configuration describes."""
    m = config.model
    return Autoencoder(K=m.K, activation=m.activation, tied=m.tied, bias=m.bias,
                       rule=config.train.rule)


@contextlib.contextmanager
def blame(source, key):
    """Re-raise a ``ValueError``/``TypeError`` raised inside the block as a
    :class:`ConfigError` on ``key``."""
    try:
        yield
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigError(source, key, str(exc)) from exc


def parse_value(text: str):
    """Parse a command-line value as a TOML value, or as a bare string if it is not one.

    >>> parse_value("0.5"), parse_value("true"), parse_value("relu"), parse_value("[1, 2]")
    (0.5, True, 'relu', [1, 2])
    """
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()



"""Experiment configuration: a TOML file → a validated, frozen :class:`Config`.

A configuration has six sections.  ``[data]``, ``[model]`` and ``[train]`` are
required; ``[init]``, ``[theory]`` and ``[simulation]`` may be left out (every key in
them has a default).  Every key, its type, default and meaning is listed by
:func:`markdown_table` (that table is ``docs/configuration.md``).

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
odesolve.config.ConfigError: demo.toml: train.lr: must be finite and > 0, got -1.0
"""
from __future__ import annotations

import contextlib
import dataclasses
import difflib
import hashlib
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "ConfigError",
    "Config",
    "DataConfig",
    "ModelConfig",
    "TrainConfig",
    "InitConfig",
    "TheoryConfig",
    "SimulationConfig",
    "Problem",
    "load_config",
    "parse_config",
    "parse_value",
    "resolve_key",
    "build_problem",
    "time_grid",
    "markdown_table",
]

#: Data models (``[data] kind``).
DATA_KINDS = ("spiked", "sinusoidal", "spectrum", "images")
#: Offline image data sets (``[data] dataset``).
IMAGE_DATASETS = ("digits", "patches", "cifar10", "fashion_mnist")
#: Solvers of the theory (``[theory] solver``).
SOLVERS = ("auto", "LSODA", "RK45", "DOP853", "Radau", "BDF", "euler")
#: Bulk treatments of the closure (``[theory] bulk``).
BULK_TREATMENTS = ("limit", "finite")
#: Learning rules (``[train] rule``); kept in sync with :data:`odesolve.model.RULES`.
RULES = ("sgd", "truncated", "sanger")
#: Spellings accepted by ``[model] bias``.
BIAS_VALUES = (True, False, "trained", "fixed", "none")

_REQUIRED = object()


class ConfigError(ValueError):
    """An invalid configuration, naming the file and the offending key.

    Attributes
    ----------
    source : str
        File the configuration came from (or a description such as ``"<overrides>"``).
    key : str or None
        Dotted key, e.g. ``"train.lr"`` (``None`` for errors about the whole file).
    """

    def __init__(self, source, key: str | None, message: str):
        self.source, self.key, self.reason = str(source), key, message
        where = f"{self.source}: {key}" if key else self.source
        super().__init__(f"{where}: {message}")


# --- key declarations ---------------------------------------------------------------
def _key(default=_REQUIRED, *, types: str, doc: str, check=None, choices=None, kinds=None):
    """Declare one TOML key as a dataclass field.

    Parameters
    ----------
    types : str
        TOML type(s), as written in the documentation: ``"int"``, ``"float"``, ``"bool"``,
        ``"string"``, ``"path"``, ``"list of float"`` or ``"bool or string"``.
    check : callable, optional
        ``check(value) -> str | None``; a returned string is the error message.
    choices : tuple, optional
        Allowed values.
    kinds : tuple of str, optional
        For ``[data]`` keys: the data kinds the key applies to.
    """
    required = default is _REQUIRED
    meta = {"types": types, "doc": doc, "check": check, "choices": choices, "kinds": kinds,
            "required": required, "default": None if required else default}
    # A kind-specific key stays unset (None) unless its data kind is used.
    return field(default=None if required or kinds else default, metadata=meta)


def _positive(value):
    if not (math.isfinite(value) and value > 0):
        return f"must be finite and > 0, got {value!r}"


def _non_negative(value):
    if not (math.isfinite(value) and value >= 0):
        return f"must be finite and >= 0, got {value!r}"


def _finite(value):
    if not math.isfinite(value):
        return f"must be finite, got {value!r}"


def _at_least(n):
    def check(value):
        if value < n:
            return f"must be >= {n}, got {value!r}"
    return check


def _positive_list(values):
    if len(values) == 0:
        return "must be a non-empty list"
    if not all(math.isfinite(v) and v > 0 for v in values):
        return f"must contain finite numbers > 0, got {list(values)}"


def _non_negative_list(values):
    if len(values) == 0:
        return "must be a non-empty list"
    if not all(math.isfinite(v) and v >= 0 for v in values):
        return f"must contain finite numbers >= 0, got {list(values)}"


def _time_list(values):
    if len(values) < 2:
        return "must list at least two times"
    if not all(math.isfinite(v) and v >= 0 for v in values):
        return f"must contain finite times >= 0, got {list(values)}"
    if any(b <= a for a, b in zip(values, values[1:])):
        return "must be strictly increasing"


@dataclass(frozen=True)
class DataConfig:
    """``[data]``: the input distribution."""

    kind: str = _key("spiked", types="string", choices=DATA_KINDS,
                     doc="Data model: `spiked` (spikes + flat bulk), `sinusoidal` (the paper's "
                         "sinusoidal spiked model), `spectrum` (given eigenvalues, every mode "
                         "tracked) or `images` (an offline image data set and its covariance).")
    D: int | None = _key(None, types="int", check=_at_least(2),
                         doc="Input dimension. Required for `spiked` and `sinusoidal`; for "
                             "`spectrum` and `images` it follows from the data (if given, it "
                             "must match).")
    spikes: tuple | None = _key(None, types="list of float", check=_positive_list,
                                kinds=("spiked",),
                                doc="Spike eigenvalues divided by D, s_1 > s_2 > … > 0 "
                                    "(eigenvalue s_m·D). Required for `spiked`.")
    bulk: float = _key(1.0, types="float", check=_non_negative, kinds=("spiked",),
                       doc="Bulk eigenvalue σ² shared by the D − M other directions.")
    M: int = _key(3, types="int", check=_at_least(1), kinds=("sinusoidal",),
                  doc="Number of sinusoidal directions (spikes) of the `sinusoidal` model.")
    eigenvalues: tuple | None = _key(None, types="list of float", check=_non_negative_list,
                                     kinds=("spectrum",),
                                     doc="All D eigenvalues ρ_τ of the covariance (not divided "
                                         "by D). `spectrum` needs this or `file`.")
    file: str | None = _key(None, types="path", kinds=("spectrum",),
                            doc="`.npy` holding the D eigenvalues (1-d) or the D×D covariance "
                                "(2-d), or `.npz` with `eigenvalues` (and optionally "
                                "`eigenvectors`, as columns) or `covariance`. Relative to the "
                                "config file.")
    dataset: str | None = _key(None, types="string", choices=IMAGE_DATASETS, kinds=("images",),
                               doc="Image data set: `digits` (scikit-learn's 8×8 digits, D = 64), "
                                   "`patches` (size×size patches of scikit-image's bundled "
                                   "photographs), `cifar10` or `fashion_mnist` (read from `path`). "
                                   "Required for `images`.")
    path: str | None = _key(None, types="path", kinds=("images",),
                            doc="Directory or file of a downloaded data set (`cifar10`, "
                                "`fashion_mnist`). Relative to the config file.")
    size: int | None = _key(None, types="int", check=_at_least(2), kinds=("images",),
                            doc="Side of the square images/patches in pixels (images are "
                                "rescaled or cropped to it); the data set's default if omitted.")


@dataclass(frozen=True)
class ModelConfig:
    """``[model]``: the autoencoder."""

    K: int = _key(types="int", check=_at_least(1), doc="Number of hidden units (K < D).")
    activation: str = _key("erf", types="string",
                           doc="`linear`, `erf` (g(x) = erf(x/√2)), `relu`, `sign`, `tanh`, or a "
                               "sympy expression in `x`, e.g. `\"tanh(2*x)\"`.")
    tied: bool = _key(False, types="bool",
                      doc="Tied weights v_k = √D w_k (the normalisation in which the D → ∞ "
                          "equations are O(1)).")
    bias: Any = _key("none", types="bool or string", choices=BIAS_VALUES,
                     doc="Encoder bias: `\"none\"`/`false`, `\"trained\"`/`true` (learnt by SGD) "
                         "or `\"fixed\"` (kept at `init.bias`).")


@dataclass(frozen=True)
class TrainConfig:
    """``[train]``: the learning rule and the time window."""

    rule: str = _key("sgd", types="string", choices=RULES,
                     doc="`sgd` (vanilla online SGD), `truncated` (unit k sees only the "
                         "reconstruction of units ≤ k) or `sanger` (Sanger's rule; tied only).")
    lr: float = _key(types="float", check=_positive, doc="Learning rate η.")
    t_max: float = _key(types="float", check=_positive,
                        doc="Final time t = (samples seen)/D.")
    times: tuple | None = _key(None, types="list of float", check=_time_list,
                               doc="Times at which theory and simulation are recorded (strictly "
                                   "increasing, within [0, t_max]); default: 0 and `n_times` − 1 "
                                   "log-spaced times from t_max/1000 to t_max.")
    n_times: int = _key(60, types="int", check=_at_least(2),
                        doc="Number of recorded times when `times` is not given.")


@dataclass(frozen=True)
class InitConfig:
    """``[init]``: the initial weights."""

    scale: float = _key(0.1, types="float", check=_non_negative,
                        doc="Standard deviation of the i.i.d. Gaussian initial weights.")
    seed: int = _key(0, types="int", check=_at_least(0),
                     doc="Seed of the first run; run i uses seed + i (theory and simulation "
                         "start from the same weights).")
    bias: float = _key(0.0, types="float", check=_finite,
                       doc="Initial value of every encoder bias (models with a bias).")
    weights: str | None = _key(None, types="path",
                               doc="`.npz` with arrays `W` and `V` (K×D, in the eigenbasis of the "
                                   "data; `V` may be omitted for tied weights) and optionally "
                                   "`m` (K biases), used instead of `scale`/`seed`: one run. "
                                   "Relative to the config file.")


@dataclass(frozen=True)
class TheoryConfig:
    """``[theory]``: how the D → ∞ equations are solved."""

    solver: str = _key("auto", types="string", choices=SOLVERS,
                       doc="Integrator: `auto` (LSODA, stiff-aware, for up to 400 state variables; "
                           "RK45 for larger all-modes states), scipy's `LSODA`, `RK45`, `DOP853`, "
                           "`Radau`, `BDF`, or fixed-step `euler` (dt = `theory.dt`, the "
                           "published scheme).")
    closure: bool = _key(True, types="bool",
                         doc="`true`: spikes + K×K bulk aggregates (the strict D → ∞ closure); "
                             "`false`: one equation per eigen-direction (all D modes, the "
                             "finite-D ODE). Data with no bulk (`spectrum`, `images`) always "
                             "track all modes. The result file records which ran "
                             "(`theory_mode`).")
    bulk: str = _key("limit", types="string", choices=BULK_TREATMENTS,
                     doc="Bulk flow in the closure: `limit` drops the bulk eigenvalue σ²/D "
                         "(strict D → ∞), `finite` keeps it (then the closure equals the "
                         "all-modes ODE at this D).")
    rtol: float = _key(1e-7, types="float", check=_positive,
                       doc="Relative tolerance of adaptive solvers.")
    atol: float = _key(1e-9, types="float", check=_positive,
                       doc="Absolute tolerance of adaptive solvers.")
    dt: float | None = _key(None, types="float", check=_positive,
                            doc="Step of the `euler` solver (default 1/D).")


@dataclass(frozen=True)
class SimulationConfig:
    """``[simulation]``: the finite-D SGD runs compared with the theory."""

    seeds: int = _key(0, types="int", check=_at_least(0),
                      doc="Number of simulated runs (seeds `init.seed`, `init.seed` + 1, …), "
                          "each compared with the theory from its own initial weights; 0: "
                          "theory only (one run from `init.seed`).")
    n_test: int = _key(2000, types="int", check=_at_least(1),
                       doc="Held-out samples for the simulated test error.")
    eigenbasis: bool = _key(True, types="bool",
                            doc="Simulate in the eigenbasis of the covariance (results do not "
                                "depend on it; `false` rotates the inputs).")


_SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "init": InitConfig,
    "theory": TheoryConfig,
    "simulation": SimulationConfig,
}
_REQUIRED_SECTIONS = ("data", "model", "train")


@dataclass(frozen=True)
class Config:
    """A validated experiment configuration (one attribute per TOML section).

    Build it with :func:`load_config` or :func:`parse_config`; derive variants with
    :meth:`with_overrides`.  ``source`` is the file it came from.
    """

    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    init: InitConfig = field(default_factory=InitConfig)
    theory: TheoryConfig = field(default_factory=TheoryConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    source: str = field(default="<config>", compare=False)

    @property
    def seeds(self) -> tuple[int, ...]:
        """Seeds of the runs: ``init.seed + i``; a single run for a weights file or no simulation."""
        n = 1 if self.init.weights is not None else max(1, self.simulation.seeds)
        return tuple(self.init.seed + i for i in range(n))

    @property
    def simulated(self) -> bool:
        """Whether the SGD simulator runs."""
        return self.simulation.seeds > 0

    def to_dict(self) -> dict:
        """Nested ``{section: {key: value}}`` with every key (unset optional keys left out)."""
        out = {}
        for name in _SECTIONS:
            section = getattr(self, name)
            out[name] = {f.name: _plain(getattr(section, f.name))
                         for f in dataclasses.fields(section) if getattr(section, f.name) is not None}
        return out

    def to_toml(self) -> str:
        """The full configuration as TOML text (reloadable with :func:`parse_config`)."""
        lines = []
        for name, section in self.to_dict().items():
            lines.append(f"[{name}]")
            lines += [f"{key} = {_toml_value(value)}" for key, value in section.items()]
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
            data.setdefault(section, {})[name] = value
        return parse_config(data, source or self.source, base_dir=None)


def _plain(value):
    if isinstance(value, tuple):
        return list(value)
    return value


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def resolve_key(key: str, source: str = "<overrides>") -> tuple[str, str]:
    """Split a dotted or bare key into ``(section, name)``.

    >>> resolve_key("lr"), resolve_key("model.K"), resolve_key("K")
    (('train', 'lr'), ('model', 'K'), ('model', 'K'))
    """
    if "." in key:
        section, _, name = key.partition(".")
        if section not in _SECTIONS:
            raise ConfigError(source, key, f"unknown section [{section}]{_suggest(section, _SECTIONS)}")
        names = [f.name for f in dataclasses.fields(_SECTIONS[section])]
        if name not in names:
            raise ConfigError(source, key, f"unknown key{_suggest(name, names)}")
        return section, name
    owners = [s for s, cls in _SECTIONS.items() if key in {f.name for f in dataclasses.fields(cls)}]
    if not owners:
        every = [f.name for cls in _SECTIONS.values() for f in dataclasses.fields(cls)]
        raise ConfigError(source, key, f"unknown key{_suggest(key, every)}")
    if len(owners) > 1:
        raise ConfigError(source, key, "ambiguous key: write one of "
                          + ", ".join(f"{s}.{key}" for s in owners))
    return owners[0], key


def _suggest(word, options) -> str:
    close = (difflib.get_close_matches(word, list(options), n=1)
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
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(path, None, "no such file") from None
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
        if name not in _SECTIONS:
            raise ConfigError(source, name, f"unknown section [{name}]{_suggest(name, _SECTIONS)}")
        if not isinstance(value, dict):
            raise ConfigError(source, name, f"must be a table [{name}], got {_type_name(value)}")
    for name in _REQUIRED_SECTIONS:
        if name not in data:
            raise ConfigError(source, name, f"missing section [{name}]")
    kind = data["data"].get("kind", DataConfig.kind)
    sections = {name: _parse_section(name, cls, data.get(name, {}), source, base_dir, kind)
                for name, cls in _SECTIONS.items()}
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
            shown = ", ".join(_toml_value(c) for c in choices)
            raise ConfigError(source, dotted, f"must be one of {shown}; got {_toml_value(value)}")
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
        if not isinstance(value, str) or not value:
            fail()
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
    times = config.train.times
    if times is not None and times[-1] > config.train.t_max:
        raise ConfigError(src, "train.times", f"last time {times[-1]} exceeds t_max = {config.train.t_max}")
    if config.init.weights is not None and config.simulation.seeds > 1:
        raise ConfigError(src, "simulation.seeds",
                          "a weights file gives one initial condition: use seeds = 0 or 1")
    if config.train.rule == "sanger" and not config.model.tied:
        raise ConfigError(src, "train.rule", "Sanger's rule needs tied weights (model.tied = true)")
    with _blame(src, "model.activation"):  # the other arguments are validated above
        _model(config)


def _model(config: Config):
    from .model import Autoencoder

    m = config.model
    return Autoencoder(K=m.K, activation=m.activation, tied=m.tied, bias=m.bias,
                       rule=config.train.rule)


@contextlib.contextmanager
def _blame(source, key):
    """Re-raise a ``ValueError`` raised inside the block as a :class:`ConfigError` on ``key``."""
    try:
        yield
    except ConfigError:
        raise
    except ValueError as exc:
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


# --- from configuration to the objects of the pipeline ------------------------------
def time_grid(t_max: float, n_times: int, D: int) -> np.ndarray:
    """Default recording times: 0, then log-spaced times from ``t_max/1000`` to ``t_max``.

    Times are rounded to whole SGD steps (multiples of 1/D) so that the theory and the
    simulation are recorded at exactly the same times; duplicates are dropped.

    >>> time_grid(10.0, 5, D=100)
    array([ 0.  ,  0.01,  0.1 ,  1.  , 10.  ])
    """
    first = max(t_max / 1000.0, 1.0 / D)
    t = np.geomspace(first, t_max, n_times - 1) if first < t_max else np.array([t_max])
    return np.unique(np.concatenate([[0.0], np.round(t * D) / D]))


@dataclass(frozen=True, eq=False)
class Problem:
    """Everything a run needs, built from a :class:`Config` by :func:`build_problem`.

    Attributes
    ----------
    config : Config
    model : odesolve.model.Autoencoder
    spectrum : odesolve.data.Spectrum
        Covariance of the data the simulator samples from.
    theory_spectrum : odesolve.data.Spectrum
        The spectrum the theory integrates: ``spectrum`` in the closure,
        ``spectrum.all_modes()`` otherwise.
    times : ndarray
        Recording times (multiples of 1/D).
    seeds : tuple of int
        Seeds of the runs.
    overlap_modes : ndarray of int
        Tracked modes whose overlaps are stored (the spikes; the 2K leading modes of a
        spectrum without bulk), in decreasing order of eigenvalue.
    samples : ndarray or None
        Offline samples (n, D) of an image data set, for the simulator.
    weights : tuple (W, V, m) or None
        Initial weights from ``init.weights``.
    """

    config: Config
    model: Any
    spectrum: Any
    theory_spectrum: Any
    times: np.ndarray
    seeds: tuple
    overlap_modes: np.ndarray
    samples: np.ndarray | None = None
    weights: tuple | None = None

    def initial_state(self, seed: int):
        """Initial :class:`~odesolve.state.State` of the theory for run ``seed``."""
        from .state import State

        if self.weights is not None:
            W, V, m = self.weights
            return State.from_weights(self.model, self.theory_spectrum, W, V, m)
        return State.random(self.model, self.theory_spectrum, self.config.init.scale,
                            seed=seed, bias=self.config.init.bias)


def build_problem(config: Config) -> Problem:
    """Build the model, the spectrum, the time grid and the initial data of a run.

    Errors raised by the data or model constructors are re-raised as :class:`ConfigError`
    naming the key responsible.
    """
    src = config.source
    spectrum, samples = _spectrum(config)
    D = spectrum.D
    if config.data.D is not None and config.data.D != D:
        raise ConfigError(src, "data.D", f"is {config.data.D} but the data have D = {D}")
    with _blame(src, "model.K"):
        model = _model(config)
        model.check_dimension(D)
    theory_spectrum = spectrum.all_modes() if not config.theory.closure else spectrum
    if config.train.times is not None:
        times = np.asarray(config.train.times)
        if not np.allclose(times * D, np.round(times * D), rtol=0.0, atol=1e-6):
            raise ConfigError(src, "train.times", f"times must be multiples of 1/D = 1/{D} "
                              "(whole SGD steps)")
    else:
        times = time_grid(config.train.t_max, config.train.n_times, D)
    order = np.argsort(-spectrum.eigenvalues, kind="stable")
    n_overlap = spectrum.n_tracked if spectrum.n_bulk else min(2 * model.K, spectrum.n_tracked)
    weights = _weights(config, model, D) if config.init.weights is not None else None
    return Problem(config=config, model=model, spectrum=spectrum, theory_spectrum=theory_spectrum,
                   times=times, seeds=config.seeds, overlap_modes=order[:n_overlap],
                   samples=samples, weights=weights)


def _spectrum(config: Config):
    """The data's :class:`~odesolve.data.Spectrum` and, for images, the samples."""
    from . import data as datamod

    src, d = config.source, config.data
    if d.kind == "spiked":
        with _blame(src, "data.spikes"):
            return datamod.spiked_covariance(d.D, d.spikes, d.bulk), None
    if d.kind == "sinusoidal":
        with _blame(src, "data.M"):
            return datamod.sinusoidal_spiked_covariance(d.D, d.M), None
    if d.kind == "spectrum":
        if d.eigenvalues is not None:
            with _blame(src, "data.eigenvalues"):
                return datamod.given_spectrum(d.eigenvalues, name="spectrum"), None
        with _blame(src, "data.file"):
            return _spectrum_file(d.file), None
    with _blame(src, "data.dataset"):
        dataset = _image_dataset(d)
    with _blame(src, "data.dataset"):
        return dataset.spectrum(), np.asarray(dataset.X, dtype=float)


def _spectrum_file(path):
    from . import data as datamod

    try:
        loaded = np.load(path)
    except FileNotFoundError:
        raise ValueError(f"no such file: {path}") from None
    name = Path(path).stem
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            if "eigenvalues" in loaded:
                vectors = loaded["eigenvectors"] if "eigenvectors" in loaded else None
                return datamod.given_spectrum(loaded["eigenvalues"], vectors, name=name)
            if "covariance" in loaded:
                return datamod.covariance_spectrum(loaded["covariance"], name=name)
            raise ValueError(f"{path} has neither 'eigenvalues' nor 'covariance' "
                             f"(arrays: {', '.join(loaded.files)})")
    if loaded.ndim == 1:
        return datamod.given_spectrum(loaded, name=name)
    return datamod.covariance_spectrum(loaded, name=name)


def _image_dataset(d: DataConfig):
    from simulations import datasets

    options = {} if d.size is None else {"size": d.size}
    if d.dataset == "digits":
        return datasets.digits(**options)
    if d.dataset == "patches":
        return datasets.photo_patches(**options)
    loader = getattr(datasets, d.dataset, None)
    if loader is None:
        raise ValueError(f"data set {d.dataset!r} is not available in simulations.datasets")
    return loader(d.path, **options)


def _weights(config: Config, model, D: int):
    src, path = config.source, config.init.weights
    try:
        with np.load(path) as npz:
            arrays = {name: np.asarray(npz[name], dtype=float) for name in npz.files}
    except FileNotFoundError:
        raise ConfigError(src, "init.weights", f"no such file: {path}") from None
    except ValueError as exc:
        raise ConfigError(src, "init.weights", f"cannot read {path}: {exc}") from None
    if "W" not in arrays:
        raise ConfigError(src, "init.weights", f"{path} has no array 'W'")
    W = arrays["W"]
    V = arrays.get("V")
    if V is None:
        if not model.tied:
            raise ConfigError(src, "init.weights", f"{path} has no array 'V' (untied model)")
        V = np.sqrt(D) * W
    m = arrays.get("m", np.full(model.K, config.init.bias if model.has_bias else 0.0))
    for name, array, shape in (("W", W, (model.K, D)), ("V", V, (model.K, D)), ("m", m, (model.K,))):
        if array.shape != shape:
            raise ConfigError(src, "init.weights",
                              f"array {name} in {path} has shape {array.shape}, expected {shape}")
        if not np.all(np.isfinite(array)):
            raise ConfigError(src, "init.weights", f"array {name} in {path} contains NaN or inf")
    return W, V, m


# --- documentation ------------------------------------------------------------------
def markdown_table() -> str:
    """The table of every configuration key (the body of ``docs/configuration.md``)."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, cls in _SECTIONS.items():
        for f in dataclasses.fields(cls):
            meta = f.metadata
            if meta["required"]:
                default = "required"
            elif meta["default"] is None:
                default = "—"
            else:
                default = f"`{_toml_value(meta['default'])}`"
            doc = meta["doc"]
            if meta["kinds"]:
                doc = "(" + ", ".join(f"`{k}`" for k in meta["kinds"]) + " only) " + doc
            rows.append(f"| `{name}.{f.name}` | {meta['types']} | {default} | {doc} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())

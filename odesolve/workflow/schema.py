"""The configuration schema: every TOML key, its type, default, check and meaning.

One frozen dataclass per section; each field is declared with :func:`_key`, whose
metadata is what the parser checks and what :func:`markdown_table` documents (the table
in the README and ``docs/configuration.md``).  Choice lists come from the stage that owns
them, so the configuration cannot drift from the code.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from .._checks import (check_integer, check_non_negative, check_positive, check_real,
                       check_seed, check_tolerance, message_of)
from ..integrator import BULK_MODES, METHODS
from ..protocols import SCHEDULE_KINDS
from ..spec.images import IMAGE_DATASETS
from ..spec.model import BIAS_MODES, RULES

__all__ = ["DataConfig", "ModelConfig", "TrainConfig", "ScheduleConfig", "InitConfig", "TheoryConfig",
           "SimulationConfig", "SECTIONS", "REQUIRED_SECTIONS", "DATA_KINDS", "BIAS_VALUES",
           "markdown_table", "plain_value", "toml_value"]

#: Data models (``[data] kind``).
DATA_KINDS = ("spiked", "sinusoidal", "spectrum", "images")
#: Spellings accepted by ``[model] bias`` (``True``/``False`` mean trained/none).
BIAS_VALUES = (True, False) + BIAS_MODES
# The other choice lists have one owner each, in the stage they belong to:
# IMAGE_DATASETS (odesolve.spec.images), RULES (odesolve.spec.model), METHODS and
# BULK_MODES (odesolve.integrator).

_REQUIRED = object()


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


# the checks of the Python API (odesolve._checks), worded without the name
def _positive(value):
    return message_of(check_positive, value)


def _non_negative(value):
    return message_of(check_non_negative, value)


def _finite(value):
    return message_of(check_real, value)


def _tolerance(value):
    return message_of(check_tolerance, value)


def _seed(value):
    return message_of(check_seed, value)


def _at_least(n):
    def check(value):
        return message_of(check_integer, value, n)
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
                           doc="`linear`, `erf` (g(x) = erf(x/√2)), `relu`, `sign`, `tanh`, `sigmoid`, "
                               "`softplus`, or a sympy expression in `x`, e.g. `\"tanh(2*x)\"` "
                               "or `\"relu(x - 0.3)\"` (functions also `sigmoid(u)`, "
                               "`softplus(u)`; `E**x` is exp(x)).")
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
    encoder_rate: float = _key(1.0, types="float", check=_positive,
                               doc="Multiple c_w of the encoder's rate η/D.")
    decoder_rate: float = _key(1.0, types="float", check=_positive,
                               doc="Multiple c_v of the decoder's rate η (on ∇_V ℓ).")
    bias_rate: float = _key(1.0, types="float", check=_positive,
                            doc="Multiple c_m of the trained bias's rate η/D.")
    encoder_decay: float = _key(0.0, types="float", check=_non_negative,
                                doc="Weight decay κ_w of the encoder: W ← W − c_w(η/D)(∇_W ℓ "
                                    "+ κ_w W), so the overlaps w·e_τ shrink at rate η c_w κ_w.")
    decoder_decay: float = _key(0.0, types="float", check=_non_negative,
                                doc="Weight decay κ_v of the decoder: V ← V − c_v η(∇_V ℓ + "
                                    "κ_v V/D), so the overlaps v·e_τ/√D shrink at rate "
                                    "η c_v κ_v. Tied weights take the encoder's rate and decay.")
    batch_size: int = _key(1, types="int", check=_at_least(1),
                           doc="Fresh samples per SGD step, B (one step on the mean of their "
                               "updates; time still counts samples, so the theory's drift is "
                               "that of rate η/B and recorded times are multiples of B/D).")


@dataclass(frozen=True)
class ScheduleConfig:
    """``[schedule]``: the learning rate as a function of time, η(t) = `train.lr`·factor(t)."""

    kind: str = _key("constant", types="string", choices=SCHEDULE_KINDS,
                     doc="`constant`, `piecewise` (factor `factors[i]` from `change_times[i-1]` "
                         "on), `power_law` (factor (1 + t/τ)^−β) or `exponential` "
                         "(factor exp(−t/τ)).")
    change_times: tuple | None = _key(None, types="list of float",
                                      doc="(`piecewise`) Times where the factor changes, "
                                          "strictly increasing, > 0.")
    factors: tuple | None = _key(None, types="list of float",
                                 doc="(`piecewise`) The factors, one more than `change_times` "
                                     "(the first holds from t = 0).")
    tau: float | None = _key(None, types="float", check=_positive,
                             doc="(`power_law`, `exponential`) Time scale τ.")
    beta: float = _key(1.0, types="float", check=_non_negative,
                       doc="(`power_law`) Exponent β.")


@dataclass(frozen=True)
class InitConfig:
    """``[init]``: the initial weights."""

    scale: float = _key(0.1, types="float", check=_non_negative,
                        doc="Standard deviation of the i.i.d. Gaussian initial weights.")
    seed: int = _key(0, types="int", check=_seed,
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

    solver: str = _key("auto", types="string", choices=METHODS,
                       doc="Integrator: `auto` (LSODA, stiff-aware, for up to 400 state variables; "
                           "CVODE for larger states), `CVODE` (SUNDIALS' BDF with matrix-free "
                           "GMRES: stiff flows of any size, README § Performance), scipy's "
                           "`LSODA`, `RK45`, `DOP853`, `Radau`, `BDF`, `RKC` (stabilised "
                           "explicit Runge–Kutta–Chebyshev), or fixed-step `euler` (dt = "
                           "`theory.dt`, the published scheme).")
    closure: bool = _key(True, types="bool",
                         doc="`true`: spikes + K×K bulk aggregates (the strict D → ∞ closure); "
                             "`false`: one equation per eigen-direction (all D modes, the "
                             "finite-D ODE). Data with no bulk (`spectrum`, `images`) always "
                             "track all modes. The result file records which ran "
                             "(`theory_mode`).")
    bulk: str = _key("limit", types="string", choices=BULK_MODES,
                     doc="Bulk flow in the closure: `limit` drops the bulk eigenvalue σ²/D "
                         "(strict D → ∞), `finite` keeps it (then the closure equals the "
                         "all-modes ODE at this D).")
    rtol: float = _key(1e-7, types="float", check=_tolerance,
                       doc="Relative tolerance of adaptive solvers, in (0, 1).")
    atol: float | None = _key(None, types="float", check=_positive,
                              doc="Absolute tolerance of adaptive solvers (default: 1e-8 × the "
                                  "root mean square of the initial overlaps, so it follows the "
                                  "scale of the state: 1e-9 at `init.scale` = 0.1).")
    dt: float | None = _key(None, types="float", check=_positive,
                            doc="Step of the `euler` solver (default 1/D).")
    finite_size: bool = _key(False, types="bool",
                             doc="Add the leading finite-D correction derived in docs/theory.md "
                                 "§9 (SGD's noise floor of the bulk decoder, O(η²/D), and the "
                                 "fluctuations of the tracked overlaps, using this D, the batch "
                                 "size and the rates; a few seconds per curve): untied vanilla "
                                 "SGD on spikes + bulk only.")


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


SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "schedule": ScheduleConfig,
    "init": InitConfig,
    "theory": TheoryConfig,
    "simulation": SimulationConfig,
}
REQUIRED_SECTIONS = ("data", "model", "train")


def plain_value(value):
    if isinstance(value, tuple):
        return list(value)
    return value


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


# --- documentation ------------------------------------------------------------------
def markdown_table() -> str:
    """The table of every configuration key (the body of ``docs/configuration.md``)."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            meta = f.metadata
            if meta["required"]:
                default = "required"
            elif meta["default"] is None:
                default = "—"
            else:
                default = f"`{toml_value(meta['default'])}`"
            doc = meta["doc"]
            if meta["kinds"]:
                doc = "(" + ", ".join(f"`{k}`" for k in meta["kinds"]) + " only) " + doc
            rows.append(f"| `{name}.{f.name}` | {meta['types']} | {default} | {doc} |")
    return "\n".join(rows)


if __name__ == "__main__":  # python -m odesolve.workflow.schema prints the README table
    print(markdown_table())

"""The one set of argument checks of the Python API (theory, simulator, limits).

Every public entry point validates its arguments here, before any work starts, so that
the same mistake gets the same one-line message everywhere: numbers are real, finite
and in range (strings such as ``"0.5"`` are refused, not coerced), counts are integers
(``True`` is not 1), a random generator is a :class:`numpy.random.Generator`.  Type
mistakes raise ``TypeError``, values out of range ``ValueError``.

>>> check_positive("learning rate", 0.5)
0.5
>>> check_positive("learning rate", "0.5")
Traceback (most recent call last):
...
TypeError: learning rate must be a real number, got '0.5' (str)
"""
from __future__ import annotations

import math
import numbers
import os
import warnings

import numpy as np

__all__ = ["check_real", "check_positive", "check_non_negative", "check_integer", "check_rng",
           "check_choice", "check_type", "check_bool", "check_vector", "check_matrix", "check_psd", "check_tolerance",
           "check_seed", "message_of", "check_cost", "memory_limit", "SECONDS_PER_FLOP", "psd_tolerance", "MAX_SECONDS",
           "ANNOUNCE_SECONDS", "as_real_array"]


def _real(name: str, value) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    return float(value)


def check_real(name: str, value) -> float:
    """A finite real number (not a bool or a string)."""
    value = _real(name, value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def check_positive(name: str, value) -> float:
    """A finite real number > 0."""
    value = _real(name, value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return value


def check_non_negative(name: str, value) -> float:
    """A finite real number >= 0."""
    value = _real(name, value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return value


def check_tolerance(name: str, value) -> float:
    """A relative tolerance: a real number in (0, 1)."""
    value = check_positive(name, value)
    if value >= 1:
        raise ValueError(f"{name} must be < 1, got {value!r}")
    return value


def check_seed(name: str, value, count: int = 1) -> int:
    """A seed: an integer with ``value, …, value + count − 1`` in [0, 2⁶³) (what numpy's
    generators and the int64 seed coordinate of results files hold)."""
    return check_integer(name, value, minimum=0, maximum=2**63 - count)


def message_of(check, value, *args) -> str | None:
    """The message of ``check("", value, *args)`` without the leading name, or None if the
    value passes: how the configuration reuses these checks (``"train.lr: must be > 0"``)."""
    try:
        check("", value, *args)
    except (TypeError, ValueError) as exc:
        return str(exc).strip()
    return None


def check_integer(name: str, value, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer (Python or numpy; integral floats are refused) within the bounds."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be an integer <= {maximum}, got {value}")
    return value


def check_bool(name: str, value) -> bool:
    """A bool (``"false"`` is a string, not a bool)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def check_rng(rng) -> np.random.Generator:
    """A :class:`numpy.random.Generator`."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")
    return rng


def check_type(name: str, value, cls, example: str):
    """An instance of ``cls``; ``example`` shows how to make one (``"spiked_covariance(D,
    spikes, bulk)"``), for a message that says what was expected instead of an
    AttributeError from deep inside."""
    if not isinstance(value, cls):
        raise TypeError(f"{name} must be an odesolve {cls.__name__} (e.g. {example}), got "
                        f"{type(value).__name__}")
    return value


def check_choice(name: str, value, choices) -> str:
    """One of ``choices`` (compared exactly)."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {name} {value!r}: expected one of {tuple(choices)}")
    return value


def as_real_array(name: str, values) -> np.ndarray:
    """``values`` as a float array; strings and booleans are refused, not converted."""
    try:
        raw = np.asarray(values)
        complex_values = raw.dtype.kind == "c" or (raw.dtype.kind == "O" and any(
            isinstance(v, (complex, np.complexfloating)) for v in raw.ravel()))
        if not complex_values and (raw.dtype.kind in "USVb" or (raw.dtype.kind == "O" and any(
                isinstance(v, (str, bytes, bool)) for v in raw.ravel()))):
            raise TypeError
        converted = None if complex_values else raw.astype(float)
    except OverflowError:       # Python integers beyond 1.8e308
        raise ValueError(f"{name} has entries beyond the range of floating point "
                         f"(±1.8e308)") from None
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be numbers, got {values!r}"[:200]) from None
    if complex_values:
        # astype(float) would drop the imaginary part with only numpy's warning; said
        # apart from other non-numbers, since a complex array can look like a real one
        raise TypeError(f"{name} must be real numbers, got complex values")
    return converted


def check_vector(name: str, values) -> np.ndarray:
    """A finite 1-d float array (a list of numbers)."""
    v = as_real_array(name, values)
    if v.ndim != 1:
        raise ValueError(f"{name} must be a 1-d list of numbers, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(_not_finite(name, v))
    return v


def _not_finite(name: str, values: np.ndarray) -> str:
    """The message for an array with a NaN or inf: where the first one is, and its value
    (a long array shown whole would be cut before it)."""
    index = np.unravel_index(np.flatnonzero(~np.isfinite(values))[0], values.shape)
    where = index[0] if len(index) == 1 else tuple(int(i) for i in index)
    return f"{name} must be finite (no NaN or inf), got {values[index]} at index {where}"


def check_matrix(name: str, X, shape: tuple | None = None) -> np.ndarray:
    """A finite 2-D float array, of ``shape`` if given."""
    X = as_real_array(name, X)
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {X.shape}")
    if shape is not None and X.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError(_not_finite(name, X))
    return X


def psd_tolerance(X: np.ndarray, dtype=None) -> float:
    """Round-off scale of the eigenvalues of a symmetric matrix stored as ``dtype``:
    ``n · eps(dtype) · ‖X‖`` (a float32 covariance has eigenvalue noise ~1e-7 ‖X‖)."""
    eps = np.finfo(dtype if dtype is not None and np.issubdtype(dtype, np.floating)
                   else np.float64).eps
    norm = float(np.max(np.abs(X))) if X.size else 0.0
    return 10.0 * X.shape[0] * eps * max(norm, np.finfo(float).tiny)


def check_psd(name: str, X, dtype=None) -> np.ndarray:
    """A symmetric positive semi-definite matrix up to the round-off of its ``dtype``;
    returns its symmetric part."""
    X = check_matrix(name, X)
    if X.shape[0] != X.shape[1]:
        raise ValueError(f"{name} must be square, got shape {X.shape}")
    tol = psd_tolerance(X, dtype)
    if not np.allclose(X, X.T, rtol=0, atol=tol):
        raise ValueError(f"{name} must be symmetric")
    X = 0.5 * (X + X.T)
    smallest = float(np.linalg.eigvalsh(X)[0]) if X.size else 0.0
    if smallest < -tol:
        raise ValueError(f"{name} is not positive semi-definite (smallest eigenvalue {smallest:.3g}, "
                         f"round-off tolerance {tol:.2g})")
    return X


#: Requests estimated above this many seconds are refused (a day: nothing the package is
#: for takes that long, a typo such as t_max = 1e11 does).
MAX_SECONDS = 86400.0
#: Requests estimated above this many seconds are announced with their estimate.
ANNOUNCE_SECONDS = 60.0
#: Seconds per floating-point operation of a dense product or eigendecomposition (one
#: BLAS thread, the 2-core CI machine), for the cost estimates made before a request.
SECONDS_PER_FLOP = 1e-10


def memory_limit() -> float:
    """Bytes a single request may hold: half of the physical memory."""
    try:
        return 0.5 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not a POSIX system
        return 8.0 * 2**30


def _duration(seconds: float) -> str:
    for unit, size in (("years", 3.15e7), ("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.2g} s"


def check_cost(what: str, *, seconds: float = 0.0, nbytes: float = 0.0,
               announce: bool = True) -> None:
    """Refuse a request whose estimated cost is out of reach, announce a long one.

    Parameters
    ----------
    what : str
        The request, with the sizes behind the estimate (``"online SGD: 1e14 steps at
        K = 3, D = 1000"``).
    seconds, nbytes : float
        Estimated run time and memory.
    announce : bool
        Whether a long request is announced here (False where the work announces itself
        when it starts).

    Raises
    ------
    ValueError
        If ``nbytes`` exceeds :func:`memory_limit` or ``seconds`` exceeds
        :data:`MAX_SECONDS` — before any work, with the estimate.

    Warns
    -----
    CostWarning
        If ``seconds`` exceeds :data:`ANNOUNCE_SECONDS` (the run goes on, with a progress
        bar on a terminal).
    """
    from .errors import CostWarning

    if nbytes > memory_limit():
        raise ValueError(f"{what}: needs an estimated {nbytes / 2**30:.3g} GiB of memory, more "
                         f"than the {memory_limit() / 2**30:.3g} GiB allowed (half of this "
                         "machine's)")
    if seconds > MAX_SECONDS:
        raise ValueError(f"{what}: estimated {_duration(seconds)} of computation, more than "
                         f"the {_duration(MAX_SECONDS)} allowed")
    if announce and seconds > ANNOUNCE_SECONDS:
        warnings.warn(CostWarning(f"{what}: estimated {_duration(seconds)} of computation"),
                      stacklevel=3)

"""From a configuration to the objects of the pipeline: spectrum, model, initial states.

:func:`build_problem` turns a validated :class:`~odesolve.workflow.config.Config` into a
:class:`Problem` (spectrum, model, recording times, initial weights of each seed), the
one place where files named in a configuration are read.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..integrator import time_grid
from ..protocols import Protocol, noise_floor
from ..spec import images
from ..spec import spectra
from ..state import State
from .config import Config, autoencoder_of, blame, protocol_of

__all__ = ["Problem", "build_problem"]


@dataclass(frozen=True, eq=False)
class Problem:
    """Everything a run needs, built from a :class:`Config` by :func:`build_problem`.

    Attributes
    ----------
    config : Config
    model : odesolve.spec.model.Autoencoder
    spectrum : odesolve.spec.spectra.Spectrum
        Covariance of the data the simulator samples from.
    theory_spectrum : odesolve.spec.spectra.Spectrum
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
    protocol : odesolve.protocols.Protocol
        Schedule, rates, decay and batch size (``[train]``, ``[schedule]``).
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
    protocol: Protocol = field(default_factory=Protocol)

    def initial_state(self, seed: int):
        """Initial :class:`~odesolve.state.State` of the theory for run ``seed``."""
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
    with blame(src, "model.K"):
        model = autoencoder_of(config)
        model.check_dimension(D)
    theory_spectrum = spectrum.all_modes() if not config.theory.closure else spectrum
    protocol = protocol_of(config)
    if config.theory.finite_size:
        with blame(src, "theory.finite_size"):
            noise_floor(model, theory_spectrum, protocol)
    batch = protocol.batch_size   # a step takes B samples: record after whole steps
    if batch > config.train.t_max * D:
        raise ConfigError(src, "train.batch_size", f"{batch} samples per SGD step is more than "
                          f"the t_max·D = {config.train.t_max * D:g} samples of the run")
    if config.train.times is not None:
        times = np.asarray(config.train.times)
        steps = times * D / batch
        if not np.allclose(steps, np.round(steps), rtol=0.0, atol=1e-6):
            unit = f"1/D = 1/{D}" if batch == 1 else f"B/D = {batch}/{D}"
            raise ConfigError(src, "train.times", f"times must be multiples of {unit} "
                              "(whole SGD steps)")
        if np.any(np.diff(np.round(steps)) <= 0):
            # e.g. 1e-300, within the tolerance above of step 0: recorded twice by SGD
            raise ConfigError(src, "train.times", f"times {list(config.train.times)} fall "
                              "on the same SGD step twice")
    else:
        times = time_grid(config.train.t_max, config.train.n_times, D / batch)
    order = np.argsort(-spectrum.eigenvalues, kind="stable")
    n_overlap = spectrum.n_tracked if spectrum.n_bulk else min(2 * model.K, spectrum.n_tracked)
    weights = _weights(config, model, D) if config.init.weights is not None else None
    return Problem(config=config, model=model, spectrum=spectrum, theory_spectrum=theory_spectrum,
                   times=times, seeds=config.seeds, overlap_modes=order[:n_overlap],
                   samples=samples, weights=weights, protocol=protocol)


def _spectrum(config: Config):
    """The data's :class:`~odesolve.spec.spectra.Spectrum` and, for images, the samples."""
    src, d = config.source, config.data
    if d.kind == "spiked":
        with blame(src, "data.spikes"):
            return spectra.spiked_covariance(d.D, d.spikes, d.bulk), None
    if d.kind == "sinusoidal":
        with blame(src, "data.M"):
            return spectra.sinusoidal_spiked_covariance(d.D, d.M), None
    if d.kind == "spectrum":
        if d.eigenvalues is not None:
            with blame(src, "data.eigenvalues"):
                return spectra.given_spectrum(d.eigenvalues, name="spectrum"), None
        with blame(src, "data.file"):
            return _spectrum_file(d.file), None
    with blame(src, "data.dataset"):
        dataset = images.load_image_dataset(d.dataset, d.path, d.size)
    with blame(src, "data.dataset"):
        return dataset.spectrum(), np.asarray(dataset.X, dtype=float)


def _load_arrays(path, expected: str) -> dict:
    """The arrays of a ``.npy`` (key ``""``) or ``.npz`` file, as finite-or-not float arrays;
    ValueError with one line for every way the file can be wrong (missing, a folder, not a
    numpy file, pickled objects, text)."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"no such file: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a directory, expected {expected}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                raw = {name: loaded[name] for name in loaded.files}
        else:
            raw = {"": loaded}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        reason = "it holds pickled Python objects" if "pickle" in str(exc) else \
            " ".join(str(exc).split())[:120]
        raise ValueError(f"cannot read {path} as {expected}: {reason}") from None
    arrays = {}
    for name, array in raw.items():
        if array.dtype.kind not in "iuf":
            shown = f"array {name!r}" if name else "its array"
            raise ValueError(f"{shown} in {path} holds {array.dtype} values, not numbers")
        arrays[name] = np.asarray(array, dtype=float)
    return arrays


def _spectrum_file(path):
    arrays = _load_arrays(path, "eigenvalues or a covariance (.npy or .npz)")
    name = Path(path).stem
    if "" in arrays:
        loaded = arrays[""]
        if loaded.ndim == 1:
            return spectra.given_spectrum(loaded, name=name)
        if loaded.ndim == 2:
            return spectra.covariance_spectrum(loaded, name=name)
        raise ValueError(f"{path} holds an array of shape {loaded.shape}: expected the D "
                         "eigenvalues (1-d) or the D×D covariance (2-d)")
    if "eigenvalues" in arrays:
        return spectra.given_spectrum(arrays["eigenvalues"], arrays.get("eigenvectors"), name=name)
    if "covariance" in arrays:
        return spectra.covariance_spectrum(arrays["covariance"], name=name)
    raise ValueError(f"{path} has neither 'eigenvalues' nor 'covariance' "
                     f"(arrays: {', '.join(arrays)})")


def _weights(config: Config, model, D: int):
    src, path = config.source, config.init.weights
    with blame(src, "init.weights"):
        arrays = _load_arrays(path, "weights (.npz with arrays W, V and optionally m)")
    if "" in arrays:
        raise ConfigError(src, "init.weights", f"{path} is a .npy file with one array: save the "
                          "weights with numpy.savez(path, W=W, V=V)")
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

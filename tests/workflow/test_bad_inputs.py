"""Every input gets a clear answer (issue 11): a corpus of bad inputs, each with its outcome.

Outcome classes:

* ``error``   — a one-line ``ValueError``/``TypeError`` (``ConfigError`` in the workflow)
  raised from odesolve's own code before any work; on the command line: exit status 2
  and exactly one line on stderr (``odesolve: error: ...``), never a traceback;
* ``warning`` — the run completes and a warning carrying the number that says why is
  issued (``RegimeWarning``/``CostWarning``), in the result file and on stderr;
* ``ok``      — a correct result (checked against a number the theory predicts).

Each case has a hang guard (``_deadline``): a hang fails the test instead of the suite.
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import odesolve
import simulations
from odesolve import limits

from odesolve.workflow import cli as _cli
from odesolve.workflow.config import ConfigError, load_config
from odesolve.workflow.results import load_results
from odesolve.workflow.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[2]
#: Libraries whose frames must never be where an error of ours is raised.
FOREIGN = ("numpy", "scipy", "sympy", "xarray", "numba", "h5netcdf", "h5py", "distributed",
           "dask", "skimage", "sklearn", "matplotlib")

SMALL = """
[data]
kind = "spiked"
D = 50
spikes = [1.5, 0.6]
bulk = 0.05
[model]
K = 2
activation = "linear"
[train]
lr = 1.0
t_max = 5.0
n_times = 8
"""


# --------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def _deadline(seconds: float):
    """Fail (instead of hanging) when the block runs longer than ``seconds``."""
    def expire(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s: the input hangs")
    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def cli(capsys, *args, seconds: float = 30):
    """``odesolve ARGS`` in this process: ``(status, stdout, stderr)``."""
    with _deadline(seconds):
        try:
            status = _cli.main([str(a) for a in args])
        except SystemExit as exc:  # argparse
            status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


def assert_cli_error(capsys, fragment, *args, seconds: float = 30):
    status, out, err = cli(capsys, *args, seconds=seconds)
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2, (status, err)
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith("odesolve: error:"), err
    assert fragment.lower() in lines[0].lower(), (fragment, lines[0])
    return lines[0]


def assert_api_error(fragment, call, *, types=(ValueError, TypeError), seconds: float = 20):
    """``call()`` raises one of ``types`` from odesolve's code, one line naming ``fragment``."""
    with _deadline(seconds), pytest.raises(types) as info:
        call()
    message = str(info.value)
    assert "\n" not in message.strip(), message
    assert fragment.lower() in message.lower(), (fragment, message)
    raiser = Path(info.traceback[-1].path).parts
    assert not any(part in FOREIGN for part in raiser), f"raised inside {info.traceback[-1].path}"
    return message


def config_file(tmp_path, text=SMALL, name="c.toml", **sections) -> Path:
    """A TOML file: ``text`` with extra ``key = value`` lines appended to sections."""
    body = text
    for section, lines in sections.items():
        body += f"\n[{section}]\n" + "\n".join(lines) + "\n"
    path = tmp_path / name
    path.write_text(body)
    return path


SPEC = odesolve.spiked_covariance(D=200, spikes=[1.5, 0.6], bulk=0.05)
LINEAR = odesolve.Autoencoder(K=2, activation="linear")


@pytest.fixture(scope="module")
def state():
    return odesolve.State.random(LINEAR, SPEC, scale=0.1, seed=0)


# ===================================================================== 1. installed figures
def test_examples_and_figures_ship_inside_the_package():
    """A non-editable install only has what lives in the package: the figures' example
    configurations must be package data, not a source-tree folder (the install itself is
    tested by tests/workflow/test_install.py)."""
    import importlib.resources as resources
    examples = resources.files("odesolve.examples")
    assert examples.joinpath("sequential_pcs.toml").is_file()
    from odesolve import figures  # noqa: F401  (installed as odesolve.figures)


def test_figure_list_from_any_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, err = cli(capsys, "figure", "list")
    assert status == 0 and "sequential-pcs" in out


# ===================================================================== 2. code through strings
MARK = "odesolve_pwned_marker"

CODE_STRINGS = [
    "__import__('os').system('touch {m}') or x",
    "x.__class__",
    "(lambda: x)()",
    "exec('open(\"{m}\", \"w\")') or x",
    "[x for x in ()]",
    "getattr(x, '__class__')",
    "x if open('{m}', 'w') else x",
    "eval('1') + x",
    "x + __builtins__",
    "Symbol('__import__')(x)",
]


@pytest.mark.parametrize("text", CODE_STRINGS)
@pytest.mark.parametrize("entry", ["Activation", "Autoencoder", "resolve_activation"])
def test_strings_never_run_code(text, entry, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = text.format(m=MARK)
    call = {"Activation": lambda: odesolve.Activation("g", text),
            "Autoencoder": lambda: odesolve.Autoencoder(K=1, activation=text),
            "resolve_activation": lambda: odesolve.resolve_activation(text)}[entry]
    assert_api_error("activation", call)
    assert not (tmp_path / MARK).exists()


def test_strings_in_limits_never_run_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_api_error("activation", lambda: limits.activation_kernels(
        np.eye(2), f"__import__('os').system('touch {MARK}') or x"))
    assert not (tmp_path / MARK).exists()


def test_strings_in_toml_never_run_code(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = config_file(tmp_path)
    assert_cli_error(capsys, "model.activation", "run", path, "--set",
                     f"""activation="__import__('os').system('touch {MARK}') or x" """)
    assert not (tmp_path / MARK).exists()


@pytest.mark.parametrize("text, value", [("x + x**3/10", 2.0 + 0.8), ("tanh(2*x)", np.tanh(4.0)),
                                         ("Max(0, x)", 2.0), ("x^2 + x", 6.0)])
def test_safe_parser_still_reads_expressions(text, value):
    g = odesolve.Activation("g", text)
    assert float(g.numpy(2.0)) == pytest.approx(value)


# ===================================================================== 3. unbounded cost
HANGING_EXPRESSIONS = [
    "x*9**9**9",
    "x**(10**10)",
    "9**9**9**9 + x",
    "(x + 1)**100000",
    "exp(x)**(2**64)",
    "x*10**10**10",
    "(" * 400 + "x" + ")" * 400,
    "x" + "+x" * 5000,
    "Integer(10)**(10**9)*x",
    "Rational(1, 10**10**10)*x",
    "3**64*x",          # a computed constant past 10¹⁵: the theory's integration crawled
    "1e15*1e15*x",
]


@pytest.mark.parametrize("text", HANGING_EXPRESSIONS)
def test_expensive_expressions_rejected_at_once(text):
    assert_api_error("activation", lambda: odesolve.resolve_activation(text), seconds=2)


@pytest.mark.parametrize("text", HANGING_EXPRESSIONS[:3])
def test_expensive_expressions_rejected_from_the_command_line(text, tmp_path, capsys):
    assert_cli_error(capsys, "model.activation", "run", config_file(tmp_path),
                     "--set", f'activation="{text}"', seconds=5)


@pytest.mark.parametrize("text", ["tan(x)", "1/x", "exp(x**2)"])
def test_activation_without_a_theory_is_blamed_on_its_key(text, tmp_path, capsys):
    line = assert_cli_error(capsys, "model.activation", "run", config_file(tmp_path),
                            "--set", f'activation="{text}"', seconds=10)
    assert "does not exist" in line


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_activation_is_named_empty(text, tmp_path, capsys):
    line = assert_cli_error(capsys, "model.activation", "run", config_file(tmp_path),
                            "--set", f'activation="{text}"', seconds=5)
    assert "non-empty string" in line


@pytest.mark.parametrize("overrides, fragment", [
    (["D=1000", "t_max=1e11", "seeds=1"], "SGD"),                 # 10^14 SGD steps
    (["D=1000000000000"], "D"),                                    # 10^12 dimensions
    (["seeds=1000000000"], "simulation.seeds"),
    (["n_test=1000000000000", "seeds=1"], "simulation.n_test"),
    (["n_times=1000000000"], "train.n_times"),
    (["D=100000000", "closure=false"], "all modes"),                # 10^8 tracked modes
])
def test_enormous_runs_refused_up_front(overrides, fragment, tmp_path, capsys):
    args = [a for o in overrides for a in ("--set", o)]
    line = assert_cli_error(capsys, fragment, "run", config_file(tmp_path), *args,
                            "--out", tmp_path / "o", seconds=5)
    assert "estimate" in line.lower() or "memory" in line.lower() or "GiB" in line


def test_enormous_images_refused_up_front(tmp_path, capsys):
    text = ('[data]\nkind = "images"\ndataset = "digits"\nsize = 1000\n'
            '[model]\nK = 2\n[train]\nlr = 1.0\nt_max = 1.0\n')
    assert_cli_error(capsys, "data.size", "run", config_file(tmp_path, text),
                     "--out", tmp_path / "o", seconds=5)


def test_enormous_limits_refused_up_front():
    rng = np.random.default_rng(0)
    assert_api_error("memory", lambda: limits.tight_frame_encoder(10**6, 1.0, rng), seconds=2)
    assert_api_error("steps", lambda: limits.train_population_gd(
        200, 0.5, steps=10**13, lr=0.1, rng=rng), seconds=2)


def test_long_euler_warns_with_its_estimate_and_stops_on_ctrl_c(state):
    """An Euler step of 1e-9 on t = 20 is 2·10^10 steps: announced with its cost, and
    interruptible (a SIGINT half a second in stops it within a second)."""
    odesolve.integrate(state, 1.0, 1.0, method="euler")       # compile first
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with pytest.warns(odesolve.CostWarning, match=r"\d"):
        start = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, 0)
        timer = __import__("threading").Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            odesolve.integrate(state, 1.0, 20.0, method="euler", dt=1e-9)
    assert time.perf_counter() - start < 1.5


# ===================================================================== 4. checks before the work
def test_out_is_an_existing_file(tmp_path, capsys):
    (tmp_path / "README.md").write_text("keep me")
    assert_cli_error(capsys, "README.md", "run", config_file(tmp_path), "--out",
                     tmp_path / "README.md", seconds=5)
    assert (tmp_path / "README.md").read_text() == "keep me"


@pytest.mark.parametrize("out", ["{tmp}/README.md/sub", "/proc/odesolve-out", "/dev/null"])
def test_out_cannot_be_created(out, tmp_path, capsys):
    (tmp_path / "README.md").write_text("x")
    assert_cli_error(capsys, "out", "run", config_file(tmp_path), "--out",
                     out.format(tmp=tmp_path), seconds=5)


@pytest.mark.parametrize("command, name", [("run", "result.nc"), ("run", "result.png"),
                                           ("sweep", "sweep.nc"), ("sweep", "sweep.png")])
def test_an_output_file_that_is_a_folder_is_refused_before_the_work(command, name, tmp_path,
                                                                     capsys):
    """It was found only when the outputs were written, after the work, leaving the
    staging files of the atomic write behind."""
    (tmp_path / "o" / name).mkdir(parents=True)
    grid = ["--grid", "lr=0.5,1"] if command == "sweep" else []
    assert_cli_error(capsys, f"{name} exists and is not a file", command, config_file(tmp_path),
                     *grid, "--out", tmp_path / "o", seconds=5)
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [name]


def test_a_batch_larger_than_the_run_is_blamed_on_its_key(tmp_path, capsys):
    """It surfaced as 't_span must satisfy 0 <= t0 < t1, got (0, 0)', naming no key."""
    assert_cli_error(capsys, "train.batch_size", "run", config_file(tmp_path), "--set",
                     "batch_size=100000", "--out", tmp_path / "o", seconds=5)


def test_plot_out_is_a_directory(tmp_path, capsys):
    result = tmp_path / "r.nc"
    result.write_text("not netcdf")
    assert_cli_error(capsys, "directory", "plot", result, "--out", tmp_path, seconds=5)


@pytest.mark.parametrize("grid", [
    ["lr=0.1,1", "train.lr=0.5"],
    ["K=1,2", "model.K=1"],
    ["lr=0.1,1", " lr =0.5"],
    ["model.K=1", "K=2"],
])
def test_sweep_keys_given_twice_in_any_spelling(grid, tmp_path, capsys):
    args = [a for g in grid for a in ("--grid", g)]
    assert_cli_error(capsys, "twice", "sweep", config_file(tmp_path), *args,
                     "--out", tmp_path / "s", seconds=5)


@pytest.mark.parametrize("args, fragment", [
    (["--scheduler", "tcp://127.0.0.1:1", "--workers", "2"], "--workers"),
    (["--workers", "0"], "--workers"),
    (["--workers", "-3"], "--workers"),
    (["--scheduler", "not an address"], "--scheduler"),
])
def test_sweep_options_checked_before_the_cluster(args, fragment, tmp_path, capsys):
    assert_cli_error(capsys, fragment, "sweep", config_file(tmp_path), "--grid", "lr=0.5,1",
                     *args, "--out", tmp_path / "s", seconds=10)


def test_sweep_out_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert_cli_error(capsys, "out", "sweep", config_file(tmp_path), "--grid", "lr=0.5,1",
                     "--out", tmp_path / "f", seconds=5)


@pytest.mark.parametrize("seed, seeds", [(2**63 - 1, 2), (2**64, 1), (2**100, 0)])
def test_seed_ranges_checked_before_the_work(seed, seeds, tmp_path, capsys):
    assert_cli_error(capsys, "init.seed", "run", config_file(tmp_path), "--set", f"seed={seed}",
                     "--set", f"seeds={seeds}", "--out", tmp_path / "o", seconds=5)


# ===================================================================== 5. ordinary mistakes
def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _text(path, text):
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return path


@pytest.mark.parametrize("make, fragment", [
    (lambda t: t, "directory"),                                          # odesolve run .
    (lambda t: _text(t / "x.toml", b"\xff\xfe[data]\n"), "UTF-8"),
    (lambda t: t / "missing.toml", "no such file"),
    (lambda t: _text(t / "e.toml", ""), "missing section"),
    (lambda t: _text(t / "r.md", "# readme\n* item"), "invalid TOML"),
    (lambda t: _text(t / "b.toml", b"[data]\nD = 1\x00\n"), "TOML"),
])
def test_run_bad_config_files(make, fragment, tmp_path, capsys):
    assert_cli_error(capsys, fragment, "run", make(tmp_path), "--out", tmp_path / "o", seconds=5)


@pytest.mark.parametrize("make, fragment", [
    (lambda t: _text(t / "README.md", "# x"), "README.md"),
    (lambda t: t / "missing.nc", "missing.nc"),
    (lambda t: t, "directory"),
    (lambda t: _text(t / "e.nc", b""), "e.nc"),
    (lambda t: _write_foreign_netcdf(t / "f.nc"), "not an odesolve results file"),
    (lambda t: _truncated_result(t), "r.nc"),
])
def test_plot_bad_result_files(make, fragment, tmp_path, capsys):
    assert_cli_error(capsys, fragment, "plot", make(tmp_path), "--out", tmp_path / "p.png",
                     seconds=10)


def _write_foreign_netcdf(path):
    import xarray as xr
    xr.Dataset({"a": ("x", np.arange(3.0))}).to_netcdf(path, engine="h5netcdf")
    return path


def _truncated_result(tmp_path):
    _write_foreign_netcdf(tmp_path / "r.nc")
    data = (tmp_path / "r.nc").read_bytes()
    (tmp_path / "r.nc").write_bytes(data[: len(data) // 2])
    return tmp_path / "r.nc"


@pytest.mark.parametrize("make, fragment", [
    (lambda t: np.save(t / "w.npy", np.zeros((2, 50))) or "w.npy", "init.weights"),
    (lambda t: "missing.npz", "no such file"),
    (lambda t: _npz(t / "w.npz", V=np.zeros((2, 50))).name, "'W'"),
    (lambda t: _npz(t / "w.npz", W=np.zeros((3, 50)), V=np.zeros((3, 50))).name, "shape"),
    (lambda t: _npz(t / "w.npz", W=np.full((2, 50), np.nan), V=np.zeros((2, 50))).name, "NaN"),
    (lambda t: _npz(t / "w.npz", W=np.array([None] * 100, dtype=object).reshape(2, 50),
                    V=np.zeros((2, 50))).name, "init.weights"),
    (lambda t: _text(t / "w.npz", "text").name, "init.weights"),
    (lambda t: _npz(t / "w.npz", W=np.array([["a"] * 50] * 2), V=np.zeros((2, 50))).name,
     "init.weights"),
    (lambda t: ".", "init.weights"),
])
def test_bad_weights_files(make, fragment, tmp_path, capsys):
    name = make(tmp_path)
    path = config_file(tmp_path, init=[f'weights = "{name}"'])
    assert_cli_error(capsys, fragment, "run", path, "--out", tmp_path / "o", seconds=10)


SPECTRUM = '[data]\nkind = "spectrum"\nfile = "{f}"\n[model]\nK = 2\n[train]\nlr = 1.0\nt_max = 1.0\n'


@pytest.mark.parametrize("make, fragment", [
    (lambda t: _text(t / "s.txt", "1 2 3").name, "data.file"),
    (lambda t: np.save(t / "s.npy", np.ones((3, 3, 3))) or "s.npy", "data.file"),
    (lambda t: "missing.npy", "no such file"),
    (lambda t: _npz(t / "s.npz", values=np.ones(5)).name, "eigenvalues"),
    (lambda t: np.save(t / "s.npy", np.array([[1.0, 2.0], [0.0, 1.0]])) or "s.npy", "symmetric"),
    (lambda t: np.save(t / "s.npy", np.array([1.0, np.nan, 2.0])) or "s.npy", "finite"),
    (lambda t: np.save(t / "s.npy", np.array([1.0, -1.0, 2.0])) or "s.npy", "semi-definite"),
    (lambda t: np.save(t / "s.npy", np.array([{"a": 1}], dtype=object),
                       allow_pickle=True) or "s.npy", "data.file"),
    (lambda t: np.save(t / "s.npy", np.array(["a", "b", "c"])) or "s.npy", "data.file"),
    (lambda t: ".", "data.file"),
])
def test_bad_spectrum_files(make, fragment, tmp_path, capsys):
    name = make(tmp_path)
    path = config_file(tmp_path, SPECTRUM.format(f=name))
    assert_cli_error(capsys, fragment, "run", path, "--out", tmp_path / "o", seconds=10)


@pytest.mark.parametrize("args, fragment", [
    (["figure", "nope"], "nope"),
    (["frobnicate"], "frobnicate"),
    ([], "command"),
    (["run"], "config"),
    (["run", "{cfg}", "--set", "lr"], "KEY=VALUE"),
    (["run", "{cfg}", "--set", "lrr=1"], "did you mean"),
    (["run", "{cfg}", "--set", "model.k=3"], "did you mean 'K'"),
    (["run", "{cfg}", "--set", "bias=1"], "ambiguous"),
    (["run", "{cfg}", "--bogus"], "--bogus"),
    (["sweep", "{cfg}"], "--grid"),
    (["sweep", "{cfg}", "--grid", "lr="], "KEY=VALUE"),
    (["sweep", "{cfg}", "--grid", "lr=a,b"], "train.lr"),
    (["sweep", "{cfg}", "--grid", "K=100,200"], "K < D"),
    (["sweep", "{cfg}", "--grid", "nope=1,2"], "unknown key"),
    (["sweep", "{cfg}", "--grid", "lr=1,1"], "twice"),
    (["sweep", "{cfg}", "--grid", "lr=[1,2"], "lr"),
    (["limits", "--bogus"], "--bogus"),
])
def test_command_line_mistakes(args, fragment, tmp_path, capsys):
    cfg = config_file(tmp_path)
    args = [a.format(cfg=cfg) for a in args]
    if args and args[0] in ("run", "sweep"):
        args += ["--out", str(tmp_path / "o")]
    assert_cli_error(capsys, fragment, *args, seconds=10)


@pytest.mark.slow
def test_entry_point_prints_one_line_and_no_traceback(tmp_path):
    """The installed command, in a subprocess (what a user sees)."""
    done = subprocess.run([sys.executable, "-m", "odesolve", "run", str(tmp_path)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


# ===================================================================== TOML values
BAD_TOML = [
    ("data", "D = 1", "data.D"),
    ("data", "D = 50.5", "data.D"),
    ("data", "D = true", "data.D"),
    ("data", 'D = "50"', "data.D"),
    ("data", "spikes = []", "data.spikes"),
    ("data", "spikes = [1.0, -1.0]", "data.spikes"),
    ("data", "spikes = [nan]", "data.spikes"),
    ("data", "spikes = [inf]", "data.spikes"),
    ("data", 'spikes = ["a"]', "data.spikes"),
    ("data", "bulk = -0.1", "data.bulk"),
    ("data", "bulk = nan", "data.bulk"),
    ("data", 'kind = "gaussian"', "data.kind"),
    ("model", "K = 0", "model.K"),
    ("model", "K = 50", "model.K"),
    ("model", "K = 2.0", "model.K"),
    ("model", 'activation = ""', "model.activation"),
    ("model", 'activation = "softplux"', "model.activation"),
    ("model", 'activation = "x*y"', "model.activation"),
    ("model", 'activation = "1"', "model.activation"),
    ("model", 'activation = "log(x)"', "model.activation"),
    ("model", 'tied = "false"', "model.tied"),
    ("model", 'bias = "yes"', "model.bias"),
    ("train", "lr = 0", "train.lr"),
    ("train", "lr = nan", "train.lr"),
    ("train", "lr = inf", "train.lr"),
    ("train", "t_max = -1", "train.t_max"),
    ("train", "t_max = 0.0001", "train.t_max"),              # below one SGD step at D = 50
    ("train", "times = [0.0, 1.0, 0.5]", "train.times"),
    ("train", "times = [0.0, 100.0]", "train.times"),
    ("train", "times = [0.0, 0.013]", "train.times"),         # not whole steps at D = 50
    ("train", "times = [0.0, 1e-300, 1.0]", "train.times"),   # step 0 twice
    ("train", "times = [0.0, 1e-9, 1.0]", "train.times"),
    ("train", "n_times = 1", "train.n_times"),
    ("train", 'rule = "sanger"', "train.rule"),
    ("init", "scale = -0.1", "init.scale"),
    ("init", "scale = inf", "init.scale"),
    ("init", "seed = -1", "init.seed"),
    ("init", "bias = nan", "init.bias"),
    ("theory", 'solver = "lsoda"', "theory.solver"),
    ("theory", "rtol = 0", "theory.rtol"),
    ("theory", "rtol = 1.5", "theory.rtol"),
    ("theory", "atol = nan", "theory.atol"),
    ("theory", "atol = -1e-9", "theory.atol"),
    ("theory", "dt = 0", "theory.dt"),
    ("theory", "dt = inf", "theory.dt"),
    ("theory", "dt = 10.0", "theory.dt"),                    # beyond t_max
    ("theory", "dt = 0.01", "theory.dt"),                    # was ignored by solver auto
    ("theory", 'bulk = "Limit"', "theory.bulk"),
    ("simulation", "seeds = -1", "simulation.seeds"),
    ("simulation", "n_test = 0", "simulation.n_test"),
    ("simulation", "eigenbasis = 1", "simulation.eigenbasis"),
    ("nonsense", "a = 1", "nonsense"),
]


@pytest.mark.parametrize("section, line, key", BAD_TOML, ids=[f"{s}:{l}" for s, l, _ in BAD_TOML])
def test_bad_toml_values(section, line, key, tmp_path, capsys):
    text = SMALL.replace(f"[{section}]\n", f"[{section}]\n{line}\n") if f"[{section}]" in SMALL \
        else SMALL + f"\n[{section}]\n{line}\n"
    # the line replaces a key of the same name when SMALL has it
    name = line.split("=")[0].strip()
    text = "\n".join(l for l in text.splitlines()
                     if not (l.startswith(f"{name} =") and l != line)) + "\n"
    assert_cli_error(capsys, key, "run", config_file(tmp_path, text), "--out", tmp_path / "o",
                     seconds=10)


# ===================================================================== 6. solver options
BAD_SOLVER_OPTIONS = [
    (dict(atol=float("nan")), "atol"),
    (dict(atol=-1e-9), "atol"),
    (dict(atol=float("inf")), "atol"),
    (dict(atol="1e-9"), "atol"),
    (dict(rtol=float("nan")), "rtol"),
    (dict(rtol=0.0), "rtol"),
    (dict(rtol=-1.0), "rtol"),
    (dict(rtol=1.5), "rtol"),
    (dict(method="euler", dt=float("nan")), "dt"),
    (dict(method="euler", dt=0.0), "dt"),
    (dict(method="euler", dt=-1.0), "dt"),
    (dict(method="euler", dt=100.0), "dt"),
    (dict(dt=0.01), "dt is the step of method='euler'"),           # was ignored
    (dict(method="RKC", dt=0.01), "dt is the step of method='euler'"),
    (dict(n_points=2.5), "n_points"),
    (dict(n_points=True), "n_points"),
    (dict(n_points=1), "n_points"),
    (dict(t_eval=[0.0, float("nan")]), "t_eval"),
    (dict(t_eval=[0.0, 2.0, 1.0]), "t_eval"),
    (dict(t_eval=[0.0, 20.0]), "t_eval"),
    # LSODA failed with "illegal input", blamed on a runaway flow (found by attacking)
    (dict(t_eval=[0.0, 1e-300, 1.0]), "within 1e-140 of t0"),
    (dict(t_eval=[1e-160, 10.0]), "within 1e-140 of t0"),
    (dict(method="lsoda"), "method"),
    (dict(bulk="Limit"), "bulk"),
    (dict(method=None), "method"),
]


@pytest.mark.parametrize("options, fragment", BAD_SOLVER_OPTIONS,
                         ids=[repr(o) for o, _ in BAD_SOLVER_OPTIONS])
def test_bad_solver_options(options, fragment, state):
    assert_api_error(fragment, lambda: odesolve.integrate(state, 1.0, 10.0, **options))


@pytest.mark.parametrize("lr, t_span, fragment", [
    ("1", 10.0, "learning rate"), (True, 10.0, "learning rate"),
    (float("nan"), 10.0, "learning rate"), (-1.0, 10.0, "learning rate"),
    (1.0, "10", "t_span"), (1.0, float("nan"), "t_span"), (1.0, (5.0, 1.0), "t_span"),
    (1.0, (0.0, 1.0, 2.0), "t_span"), (1.0, -1.0, "t_span"), (1.0, None, "t_span"),
    (1.0, 1e-300, "shorter than 1e-140"), (1.0, (1e-300, 2e-300), "shorter than 1e-140"),
])
def test_bad_lr_and_time_span(lr, t_span, fragment, state):
    assert_api_error(fragment, lambda: odesolve.integrate(state, lr, t_span))


def _with_g(state, change):
    G = state.G.copy()
    change(G)
    return odesolve.State(state.model, state.spectrum, state.Y.copy(), G, state.m.copy())


@pytest.mark.parametrize("change", [
    lambda G: G.__setitem__((0, 1), G[0, 1] + 1e-3),                 # one entry off
    lambda G: G.__setitem__((slice(None), slice(None)), np.triu(G)),  # a triangle only
    lambda G: G.__setitem__((1, 0), G[1, 0] * (1 + 1e-9)),            # relative 1e-9
])
@pytest.mark.parametrize("method", ["auto", "LSODA", "CVODE", "RK45"])
def test_a_state_whose_g_is_not_symmetric_is_refused(change, method, state):
    """Found by attacking CVODE's packed state: G ≠ Gᵀ (a raw or perturbed State) gave
    CVODE, which integrates G's lower triangle, another curve than LSODA (ε off by 3e-5);
    the flow is derived for a symmetric G, so every method refuses it, batches too."""
    bad = _with_g(state, change)
    assert_api_error("not symmetric", lambda: odesolve.integrate(bad, 1.0, 10.0, method=method))
    assert_api_error("not symmetric",
                     lambda: odesolve.integrate_batch([state, bad], 1.0, 10.0, method=method))


def test_g_symmetric_to_rounding_is_integrated(state):
    """Rounding-level asymmetry (10⁻¹⁵ relative) and a record's state are accepted."""
    near = _with_g(state, lambda G: G.__setitem__((1, 0), G[1, 0] * (1 + 1e-15)))
    assert odesolve.integrate(near, 1.0, 10.0, method="CVODE").error[-1] > 0
    record = odesolve.integrate(state, 1.0, 10.0, method="LSODA").state(-1)
    assert odesolve.integrate(record, 1.0, 10.0, method="CVODE").error[-1] > 0


def test_api_and_config_reject_the_same_solver_options_alike(tmp_path):
    """One check, one message: the API's message is the config's after the key."""
    api = assert_api_error("atol", lambda: odesolve.integrate(
        odesolve.State.random(LINEAR, SPEC), 1.0, 1.0, atol=-1e-9))
    with pytest.raises(ConfigError) as info:
        load_config(config_file(tmp_path, theory=["atol = -1e-9"]))
    assert info.value.reason.split(", got")[0] in api


# ===================================================================== 7. divergence reports
@pytest.mark.parametrize("sets", [
    ["model.bias=\"trained\"", "init.bias=1e300"],
    ["init.scale=1e200"],
    ["model.bias=\"fixed\"", "init.bias=1e300"],
])
def test_divergence_at_start_reported_at_t0(sets, tmp_path, capsys):
    args = [a for s in sets for a in ("--set", s)]
    status, out, err = cli(capsys, "run", config_file(tmp_path), *args, "--out", tmp_path / "o",
                           "--no-plot", seconds=60)
    assert status in (1, 2), err
    assert "t = 0" in err and "smaller learning rate" not in err
    assert "Traceback" not in err


def test_ode_divergence_names_the_likely_cause_not_the_learning_rate():
    model = odesolve.Autoencoder(K=1, activation="linear", bias="trained")
    start = odesolve.State.random(model, SPEC, scale=0.1, seed=0, bias=1e300)
    with pytest.raises(odesolve.DivergenceError) as info:
        odesolve.integrate(start, 1.0, 10.0)
    assert info.value.time == 0.0
    assert "smaller learning rate" not in str(info.value)


def test_euler_blow_up_blames_the_step(state):
    with pytest.raises(odesolve.DivergenceError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        odesolve.integrate(state, 50.0, 200.0, method="euler", dt=1.0)
    assert "dt" in str(info.value) and "smaller learning rate" not in str(info.value)


def test_sgd_divergence_keeps_its_advice():
    with pytest.raises(odesolve.DivergenceError, match="learning rate"):
        simulations.simulate(LINEAR, SPEC, lr=1e4, t_max=5.0, n_test=100)


# ===================================================================== 8. regime warnings
@pytest.mark.parametrize("sets, number", [
    (["D=100", "t_max=20", "lr=50", "seeds=1"], "η/D = 0.5"),
    (["D=50", "data.bulk=1.0", "t_max=200", "seeds=0"], "σ²"),
    (["solver=\"euler\"", "theory.dt=0.5", "lr=5", "seeds=0"], "dt"),
    # a protocol's own steps: per-layer rate, decay per step (each once silent)
    (["D=200", "t_max=5", "encoder_rate=1000.0", "seeds=0"], "η(t)·c/D of the protocol is 5 "),
    (["D=200", "t_max=5", "decoder_decay=300", "seeds=0"], "η(t)·c·κ/D of the protocol is 1.5 "),
])
def test_runs_outside_the_exact_regime_warn_with_the_number(sets, number, tmp_path, capsys):
    args = [a for s in sets for a in ("--set", s)]
    status, out, err = cli(capsys, "run", config_file(tmp_path), *args, "--out", tmp_path / "o",
                           "--no-plot", seconds=120)
    assert status in (0, 1), err
    warned = [l for l in err.splitlines() if l.startswith("odesolve: warning:")]
    assert any(number in l for l in warned), err
    assert number in load_results(tmp_path / "o" / "result.nc").attrs["warnings"]


def test_runs_inside_the_regime_do_not_warn(tmp_path, capsys):
    status, out, err = cli(capsys, "run", config_file(tmp_path), "--set", "seeds=1",
                           "--out", tmp_path / "o", "--no-plot", seconds=120)
    assert status == 0 and "warning" not in err


@pytest.mark.parametrize("spikes, lr, t_max, number", [
    ([100.0, 60.0], 1.0, 4.0, "η·s_max/D = 0.5"),     # SGD 67% off at 0.1 (integrator/regime.py)
    ([1.5, 0.6], 50.0, 1.0, "η/D = 0.25"),
    ([1.5, 0.6], 1.0, 5000.0, "η·σ²·t/D = 1.25"),
])
def test_integrate_warns_outside_the_exact_regime(spikes, lr, t_max, number):
    """A theory-only run gets the regime notes of the workflow (it was silent at
    η/D = 1000), before any work: the same function writes both."""
    state = odesolve.State.random(LINEAR, odesolve.spiked_covariance(200, spikes, 0.05), 0.1, seed=0)
    with pytest.warns(odesolve.RegimeWarning, match=re.escape(number)):
        odesolve.integrate(state, lr, t_max)


def test_integrate_inside_the_regime_does_not_warn(state):
    with warnings.catch_warnings():
        warnings.simplefilter("error", odesolve.RegimeWarning)
        odesolve.integrate(state, 1.0, 10.0)


def test_integrate_refuses_a_trajectory_beyond_memory(state):
    with pytest.raises(ValueError, match="output times .* GiB of memory"):
        odesolve.integrate(state, 1.0, 10.0, n_points=10**10)


def test_each_warning_is_printed_once(tmp_path, capsys, monkeypatch):
    """An Euler run's cost was announced twice (the configuration's estimate, then
    integrate's), and a run's warning would repeat per seed: with every cost announced, no
    warning line repeats."""
    monkeypatch.setattr("odesolve._checks.ANNOUNCE_SECONDS", 0.0)
    status, out, err = cli(capsys, "run", config_file(tmp_path), "--set", 'solver="euler"',
                           "--set", "seeds=2", "--out", tmp_path / "o", "--no-plot", seconds=120)
    warned = [line for line in err.splitlines() if line.startswith("odesolve: warning:")]
    assert status == 0 and any("Euler" in line for line in warned), err
    assert len(warned) == len(set(warned)), err


def test_euler_beyond_stability_warns_in_the_api(state):
    with pytest.warns(odesolve.RegimeWarning, match=r"dt.*\d"), contextlib.suppress(
            odesolve.DivergenceError):
        odesolve.integrate(state, 10.0, 5.0, method="euler", dt=0.5)


# ===================================================================== 11. time grids
@pytest.mark.parametrize("t_max, seeds", [(10.0007, 1), (10.0004, 0), (3.14159, 0), (0.0015, 1)])
def test_t_max_not_a_multiple_of_one_over_D(t_max, seeds, tmp_path, capsys):
    status, out, err = cli(capsys, "run", config_file(tmp_path), "--set", "D=1000",
                           "--set", f"t_max={t_max}", "--set", f"seeds={seeds}", "--set", "n_test=50",
                           "--out", tmp_path / "o", "--no-plot", seconds=120)
    assert status == 0, err
    t = load_results(tmp_path / "o" / "result.nc")["time"].values
    # whole SGD steps, the last one not past t_max
    assert np.allclose(t * 1000, np.round(t * 1000)) and t[-1] == np.floor(t_max * 1000) / 1000


# ===================================================================== 12. learning times
@pytest.mark.parametrize("method", ["LSODA", "CVODE", "RK45", "DOP853", "euler"])
def test_learning_times_from_below_every_level_are_the_start(method):
    """Started at the PCA solution the error is below every plateau level at t0:
    every learning time is t0, for every method."""
    D = 200
    W = np.zeros((2, D))
    W[0, 0] = W[1, 1] = 1.0
    start = odesolve.State.from_weights(LINEAR, SPEC, W, np.sqrt(D) * W)
    traj = odesolve.integrate(start, 1.0, (0.5, 10.0), method=method)
    assert np.all(traj.learning_times == 0.5)


def test_learning_times_agree_across_methods():
    start = odesolve.State.random(LINEAR, SPEC, scale=0.1, seed=0)
    times = [odesolve.integrate(start, 1.0, 60.0, method=m, dt=1e-3 if m == "euler" else None)
             .learning_times for m in ("LSODA", "RK45", "euler", "CVODE")]
    assert np.allclose(times[0], times[1], rtol=1e-4) and np.allclose(times[0], times[2], rtol=1e-2)
    assert np.allclose(times[0], times[3], rtol=1e-4)


# ===================================================================== 13. tolerances vs scale
@pytest.mark.parametrize("scale", [1e-12, 1e-6, 1e-3])
def test_default_tolerances_follow_the_scale_of_the_state(scale):
    erf = odesolve.Autoencoder(K=2, activation="erf")
    spec = odesolve.spiked_covariance(D=500, spikes=[1.5, 0.6], bulk=0.05)
    start = odesolve.State.random(erf, spec, scale=scale, seed=0)
    default = odesolve.integrate(start, 1.0, 100.0).learning_times
    tight = odesolve.integrate(start, 1.0, 100.0, rtol=1e-10, atol=1e-14 * scale).learning_times
    assert np.allclose(default, tight, rtol=1e-3), (default, tight)


# ===================================================================== 14. round-off is not bad input
def _rotated(eigenvalues, dtype, seed=0):
    d = len(eigenvalues)
    q = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))[0]
    c = (q * eigenvalues) @ q.T
    return ((c + c.T) / 2).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_low_precision_covariance_with_round_off_is_accepted(dtype):
    c = _rotated(np.r_[np.linspace(5, 1, 40), np.zeros(10)], dtype)
    assert np.linalg.eigvalsh(c.astype(float)).min() < 0
    spec = odesolve.covariance_spectrum(c)
    assert spec.D == 50 and spec.eigenvalues.min() >= 0


def test_round_off_in_given_eigenvalues_is_accepted():
    assert odesolve.given_spectrum(np.r_[np.ones(10), -1e-17]).eigenvalues.min() == 0.0


def test_round_off_in_limits_covariance_is_accepted():
    c = _rotated(np.r_[np.linspace(2, 1, 15), np.zeros(5)], np.float32)
    K, H = limits.activation_kernels(np.eye(20)[:5], "sign", covariance=c)
    assert np.all(np.isfinite(K))


@pytest.mark.parametrize("eigenvalues", [np.r_[np.ones(10), -0.1], np.r_[np.ones(10), -1e-7]])
def test_real_negative_eigenvalues_are_still_rejected(eigenvalues):
    assert_api_error("semi-definite",
                     lambda: odesolve.covariance_spectrum(_rotated(eigenvalues, np.float64)))


# ===================================================================== 15. sweep in a script
@pytest.mark.slow
@pytest.mark.parametrize("workers, refused", [(1, True), (None, False)])
def test_sweep_at_the_top_level_of_a_script(tmp_path, workers, refused):
    """A local cluster's workers import the script again: refused at once without the
    main guard.  A theory-only sweep without workers runs in the process: no guard needed."""
    script = tmp_path / "myscript.py"
    script.write_text(textwrap.dedent(f"""
        from odesolve.workflow.config import load_config
        from odesolve.workflow.sweep import run_sweep
        run_sweep(load_config({str(config_file(tmp_path))!r}), {{"lr": [0.5, 1.0]}},
                  {str(tmp_path / 's')!r}, n_workers={workers!r})
    """))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if refused:
        assert done.returncode != 0
        assert 'if __name__ == "__main__":' in done.stderr.strip().splitlines()[-1]
        assert "Nanny" not in done.stderr
    else:
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "s" / "sweep.nc").exists()
    assert time.perf_counter() - start < 60


# ===================================================================== 17. types in the API
@pytest.mark.parametrize("kwargs, fragment", [
    (dict(K=2, tied="false"), "tied"),
    (dict(K=2, tied="true"), "tied"),
    (dict(K=2, tied=None), "tied"),
    (dict(K=2, tied=1.0), "tied"),
    (dict(K="2"), "K"),
    (dict(K=2.5), "K"),
    (dict(K=True), "K"),
    (dict(K=0), "K"),
    (dict(K=float("nan")), "K"),
    (dict(K=[2]), "K"),
    (dict(K=2, activation=3), "activation"),
    (dict(K=2, activation=None), "activation"),
    (dict(K=2, rule=["sgd"]), "rule"),
    (dict(K=2, rule="SGD"), "rule"),
    (dict(K=2, bias=1), "bias"),
    (dict(K=2, bias="yes"), "bias"),
])
def test_autoencoder_arguments(kwargs, fragment):
    assert_api_error(fragment, lambda: odesolve.Autoencoder(**kwargs))


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(bias=float("nan")), "bias"),
    (dict(bias=float("inf")), "bias"),
    (dict(bias="0.1"), "bias"),
    (dict(scale="0.1"), "scale"),
    (dict(scale=-1.0), "scale"),
    (dict(scale=float("nan")), "scale"),
    (dict(seed=-1), "seed"),
    (dict(seed=1.5), "seed"),
    (dict(seed="0"), "seed"),
])
def test_random_state_arguments(kwargs, fragment):
    model = odesolve.Autoencoder(K=2, activation="linear", bias="trained")
    assert_api_error(fragment, lambda: odesolve.State.random(model, SPEC, **kwargs))


@pytest.mark.parametrize("call, fragment", [
    (lambda: odesolve.spiked_covariance(D="500", spikes=[1.0]), "D"),
    (lambda: odesolve.spiked_covariance(D=500.5, spikes=[1.0]), "D"),
    (lambda: odesolve.spiked_covariance(D=500, spikes=[1.0], bulk="0.1"), "bulk"),
    (lambda: odesolve.spiked_covariance(D=500, spikes=[1.0, "a"]), "spikes"),
    (lambda: odesolve.spiked_covariance(D=500, spikes=1.0), "spikes"),
    (lambda: odesolve.given_spectrum([[1.0, 2.0]]), "eigenvalues"),
    (lambda: odesolve.given_spectrum(["a", "b"]), "eigenvalues"),
    (lambda: odesolve.covariance_spectrum(np.ones((3, 4))), "square"),
    (lambda: odesolve.State.from_weights(LINEAR, SPEC, np.zeros((2, 10)), np.zeros((2, 10))),
     "shape"),
    (lambda: odesolve.State.from_weights(LINEAR, SPEC, np.zeros((2, 200)), np.zeros((2, 200)),
                                         m=[np.nan, 0.0]), "m"),
    (lambda: simulations.simulate(LINEAR, SPEC, lr="1", t_max=1.0), "learning rate"),
    (lambda: simulations.simulate(LINEAR, SPEC, lr=1.0, t_max=1.0, seed=-2), "seed"),
    (lambda: simulations.simulate(LINEAR, SPEC, lr=1.0, t_max=1.0, n_test=0), "n_test"),
    (lambda: simulations.simulate(LINEAR, SPEC, lr=1.0, t_max=1.0, scale="big"), "scale"),
    (lambda: simulations.simulate(LINEAR, SPEC, lr=1.0, t_max=1.0, bias=float("nan")), "bias"),
    (lambda: simulations.simulate(LINEAR, SPEC, lr=1.0, t_max=1e-5), "t_max"),
    (lambda: simulations.simulate("model", SPEC, lr=1.0, t_max=1.0), "model"),
])
def test_constructor_and_simulator_arguments(call, fragment):
    assert_api_error(fragment, call)


def test_integer_like_arguments_still_work():
    assert odesolve.Autoencoder(K=np.int64(2)).K == 2
    assert odesolve.spiked_covariance(D=np.int32(50), spikes=[1.0]).D == 50


# ===================================================================== limits API
@pytest.mark.parametrize("call, fragment", [
    (lambda: limits.train_population_gd(20.0, 0.5, 10, 0.1, np.random.default_rng(0)), "d"),
    (lambda: limits.train_population_gd(20, 0.5, 10, 0.1, 0), "rng"),
    (lambda: limits.train_population_gd(20, 0.33, 10, 0.1, np.random.default_rng(0)), "r·d"),
    (lambda: limits.train_population_gd(20, 0.5, 10, float("nan"), np.random.default_rng(0)), "lr"),
    (lambda: limits.train_population_gd(20, 0.5, -1, 0.1, np.random.default_rng(0)), "steps"),
    (lambda: limits.train_sgd(20, 0.5, 10, 0.1, np.random.default_rng(0), method="adam"), "method"),
    (lambda: limits.train_sgd(20, 0.5, 10, 0.1, np.random.default_rng(0), batch_size=0), "batch"),
    (lambda: limits.sign_risk_lower_bound(float("nan")), "rate"),
    (lambda: limits.sign_risk_lower_bound("1"), "rate"),
    (lambda: limits.pca_risk(0.5, eigenvalues=[1.0, -1.0]), "eigenvalues"),
    (lambda: limits.waterfilling_allocation([1.0, 1.0], 2.5), "n"),
    (lambda: limits.activation_kernels(np.zeros((2, 3)), "sign"), "zero"),
    (lambda: limits.activation_kernels(np.eye(2), "Sgn"), "activation"),
    (lambda: limits.activation_kernels(np.eye(2), "sign", covariance=np.eye(3)), "covariance"),
    (lambda: limits.optimal_risk(np.full((2, 2), np.nan)), "NaN"),
    (lambda: limits.compare_image_data([0.5], np.random.default_rng(0), dataset="mnist"), "mnist"),
])
def test_limits_arguments(call, fragment):
    assert_api_error(fragment, call)


# ===================================================================== 18. claims the code keeps
@pytest.mark.slow
def test_reduced_equations_of_relu_with_trained_bias_are_numeric():
    """The Jacobian of a flow with quadrature averages is numeric and is the derivative of
    the flow; for a flow with closed forms the same finite differences match sympy's."""
    from odesolve.analysis import reduced_equations
    for model, spikes in ((odesolve.Autoencoder(K=2, activation="relu", bias="trained"),
                           [1.5, 0.6]),
                          (odesolve.Autoencoder(K=1, activation="erf"), [1.5])):
        reduced = reduced_equations(model, spikes)
        flow, jacobian, error = reduced.lambdified()
        y = np.linspace(0.2, 0.5, len(reduced.variables))
        J = jacobian(y)
        assert np.all(np.isfinite(flow(y))) and np.all(np.isfinite(J)) and np.isfinite(error(y))
        for i in range(len(y)):
            step = np.zeros_like(y)
            step[i] = 1e-4
            assert np.allclose((flow(y + step) - flow(y - step)) / 2e-4, J[:, i], atol=1e-6)


# ===================================================================== 9. interrupted runs
KILL_AT_REPLACE = """
import os, signal, sys
target = int(sys.argv[1])
real = os.replace
count = [0]
def replace(src, dst):
    count[0] += 1
    if count[0] == target:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst)
os.replace = replace
from odesolve.workflow.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _output_set(out: Path):
    """``(run id of result.nc, run id of result.png)``, or None when the set is absent."""
    from PIL import Image
    from odesolve.workflow.results import load_results
    if not (out / "result.nc").exists() and not (out / "result.png").exists():
        return None
    return (load_results(out / "result.nc").attrs["run_id"],
            Image.open(out / "result.png").info.get("odesolve_run_id"))


@pytest.mark.slow
@pytest.mark.parametrize("kill_at, survivor", [(1, "old"), (2, "new"), (3, "new"), (4, "new")])
def test_sigkill_while_saving_leaves_old_or_new_set(kill_at, survivor, tmp_path, capsys,
                                                   subprocess_env):
    """``odesolve run`` killed (SIGKILL) at the k-th rename of its save: before the commit
    (k = 1) the old set survives, after it (k = 2, 3: between the renames of result.nc and
    result.png) the next command completes the new set; k = 4 is a save that finished.
    Never a mixed set, never a temporary file left behind."""
    out = tmp_path / "o"
    config = config_file(tmp_path)
    assert cli(capsys, "run", config, "--out", out, seconds=120)[0] == 0
    old = _output_set(out)
    assert old[0] == old[1]
    script = tmp_path / "kill.py"
    script.write_text(KILL_AT_REPLACE)
    done = subprocess.run([sys.executable, str(script), str(kill_at), "run", str(config),
                           "--out", str(out), "--set", "lr=0.5"],
                          capture_output=True, text=True, timeout=300, env=subprocess_env)
    assert done.returncode == (0 if kill_at == 4 else -signal.SIGKILL), done.stderr[-2000:]
    # the next command that reads the folder completes or discards the interrupted save
    now = _output_set(out)
    assert now[0] == now[1], "result.nc and result.png come from different runs"
    assert (now == old) == (survivor == "old")
    assert sorted(p.name for p in out.iterdir()) == ["result.nc", "result.png"]


@pytest.mark.slow
def test_ctrl_c_stops_a_long_euler_run_within_a_second(tmp_path, subprocess_env):
    config = config_file(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "odesolve", "run", str(config), "--out", str(tmp_path / "o"),
         "--set", "solver=\"euler\"", "--set", "theory.dt=1e-7", "--set", "t_max=100"],
        stderr=subprocess.PIPE, text=True, env=subprocess_env)
    # the integrator announces its cost once the equations are compiled: Euler is running
    for line in process.stderr:
        if line.startswith("odesolve: warning: Euler"):
            break
    time.sleep(2.0)
    assert process.poll() is None
    process.send_signal(signal.SIGINT)
    start = time.perf_counter()
    process.wait(timeout=30)
    assert time.perf_counter() - start < 1.0
    assert process.returncode == 130
    assert "interrupted" in process.stderr.read()
    assert not any((tmp_path / "o").iterdir())


# ===================================================================== 10. caches
@pytest.mark.slow
def test_sweep_cache_follows_the_contents_of_data_files(tmp_path):
    np.save(tmp_path / "s.npy", np.r_[5.0, 2.0, np.full(18, 0.1)])
    config = load_config(config_file(tmp_path, SPECTRUM.format(f="s.npy")))
    first, _ = run_sweep(config, {"lr": [1.0]}, tmp_path / "sw", n_workers=1)
    np.save(tmp_path / "s.npy", np.r_[9.0, 2.0, np.full(18, 0.1)])
    second, summary = run_sweep(config, {"lr": [1.0]}, tmp_path / "sw", n_workers=1)
    assert summary["computed"] == 1
    assert second["pca_error"].values.ravel()[0] != first["pca_error"].values.ravel()[0]


@pytest.mark.slow
def test_damaged_sweep_point_is_recomputed(tmp_path):
    config = load_config(config_file(tmp_path))
    run_sweep(config, {"lr": [1.0]}, tmp_path / "sw", n_workers=1)
    point = next((tmp_path / "sw" / "points").glob("*.nc"))
    point.write_bytes(point.read_bytes()[:100])
    _, summary = run_sweep(config, {"lr": [1.0]}, tmp_path / "sw", n_workers=1)
    assert summary["computed"] == 1


@pytest.mark.slow
def test_damaged_compiled_module_is_rebuilt(tmp_path):
    """An empty or truncated generated module in the compile cache is detected and rebuilt."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ODESOLVE_CACHE": str(tmp_path)}
    code = ("import odesolve; c = odesolve.compile_model(odesolve.Autoencoder(K=1, "
            "activation='linear')); print(c.path)")
    path = Path(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                               text=True, timeout=300, check=True).stdout.strip())
    for damage in (b"", path.read_bytes()[:200]):
        path.write_bytes(damage)
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-1000:]

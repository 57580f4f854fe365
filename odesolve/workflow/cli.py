"""Command line: ``odesolve run | plot | sweep | figure | limits``.

::

    odesolve run examples/sequential_pcs.toml            # → results/sequential_pcs/result.{nc,png}
    odesolve run CONFIG.toml --out DIR --set simulation.seeds=0
    odesolve plot DIR/result.nc                           # replot without recomputing
    odesolve sweep CONFIG.toml --grid lr=0.1,0.5,1 --grid K=2,4 [--scheduler tcp://HOST:8786]
    odesolve figure sequential-pcs [--quick]              # or 1…5; `odesolve figure list`
    odesolve limits                                       # the fundamental-limits figure

Progress bars are shown on a terminal unless ``--quiet``.  Exit status: 0 on success,
1 when the dynamics diverged or a sweep point failed, 2 for invalid input.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from pathlib import Path

from .. import __version__
from ..errors import ConfigError, CostWarning, DivergenceError, RegimeWarning, SweepError
from .config import load_config, parse_value
from .experiment import run_experiment
from .outputs import write_outputs
from .plotting import plot_result, plot_sweep, png_writer
from .results import load_results, netcdf_writer
from .sweep import parse_grid, run_sweep

__all__ = ["main", "entry_point", "FIGURES"]

#: ``odesolve figure NAME``: name → (module of :mod:`odesolve.figures`, description).
FIGURES = {
    "sequential-pcs": ("odesolve.figures.sequential_pcs",
                       "1. erf untied: one error step per principal component, PCA levels marked"),
    "tied-untied": ("odesolve.figures.tied_vs_untied", "2. tied vs untied erf autoencoders"),
    "relu-bias": ("odesolve.figures.relu_bias", "3. ReLU autoencoders with and without a trained bias"),
    "exact-pcs": ("odesolve.figures.exact_pcs",
                  "4. truncated SGD learns the principal components, vanilla SGD their span"),
    "images": ("odesolve.figures.image_data", "5. real images: all-modes ODE vs SGD on the images"),
    "limits": ("odesolve.figures.fundamental_limits", "6. fundamental limits of sign autoencoders"),
    "protocols": ("odesolve.figures.protocols",
                  "7. training protocols: a learning-rate schedule, weight decay's end error"),
}
_FIGURE_NUMBERS = {str(i): name for i, name in enumerate(FIGURES, start=1)}


class _OneLineParser(argparse.ArgumentParser):
    """Usage mistakes in one line (``odesolve: error: ...``) and exit status 2."""

    def error(self, message):
        self.exit(2, f"odesolve: error: {message} (see `{self.prog} --help`)\n")


def _parser() -> argparse.ArgumentParser:

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    overrides = argparse.ArgumentParser(add_help=False)
    overrides.add_argument("--set", dest="overrides", action="append", default=[],
                           metavar="KEY=VALUE",
                           help="override a config key, e.g. --set train.lr=0.5 (repeatable)")

    parser = _OneLineParser(
        prog="odesolve", description="Exact D → ∞ theory of shallow autoencoders vs SGD.")
    parser.add_argument("--version", action="version", version=f"odesolve {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", parents=[common, overrides],
                         help="integrate the theory and simulate SGD for one config",
                         description="Integrate the theory for every seed, simulate SGD from the "
                                     "same initial weights, write DIR/result.nc and DIR/result.png.")
    run.add_argument("config", type=Path, help="TOML configuration")
    run.add_argument("--out", type=Path, help="output directory (default: results/CONFIG_STEM)")
    run.add_argument("--no-plot", action="store_true", help="do not write result.png")

    plot = sub.add_parser("plot", parents=[common], help="replot a results file",
                          description="Plot a results file without recomputing anything.")
    plot.add_argument("result", type=Path, help="a result.nc written by `odesolve run`")
    plot.add_argument("--out", type=Path, help="PNG path (default: RESULT with suffix .png)")

    sweep = sub.add_parser("sweep", parents=[common, overrides],
                           help="run a grid of configs in parallel on dask",
                           description="Run every grid point (theory and simulation) on a dask "
                                       "cluster; finished points are cached and not redone.")
    sweep.add_argument("config", type=Path, help="base TOML configuration")
    sweep.add_argument("--grid", action="append", required=True, metavar="KEY=V1,V2,...",
                       help="swept key and values, e.g. --grid lr=0.1,0.5,1 (repeatable)")
    sweep.add_argument("--out", type=Path, help="sweep directory (default: results/CONFIG_STEM-sweep)")
    sweep.add_argument("--scheduler", metavar="ADDRESS",
                       help="existing dask scheduler (default: start a local cluster)")
    sweep.add_argument("--workers", type=int, help="workers of the local cluster")

    figure = sub.add_parser("figure", parents=[common], help="make a paper figure",
                            description="Make a paper figure (from any directory). "
                                        "Names: " + "; ".join(f"{n} ({d})" for n, (_, d)
                                                               in FIGURES.items()))
    figure.add_argument("name", choices=[*FIGURES, *_FIGURE_NUMBERS, "list"], metavar="NAME",
                        help="figure name or number, or `list`")
    figure.add_argument("--out", type=Path, default=Path("results/figures"),
                        help="output directory (default: results/figures)")
    figure.add_argument("--quick", action="store_true",
                        help="reduced size (small D, few seeds): seconds instead of minutes")

    limits = sub.add_parser("limits", parents=[common], help="the fundamental-limits figure")
    limits.add_argument("--out", type=Path, default=Path("results/figures"),
                        help="output directory (default: results/figures)")
    limits.add_argument("--quick", action="store_true", help="reduced size")
    return parser


#: Errors a user can cause: one line on stderr, exit status 2.
_USER_ERRORS = (ConfigError, ValueError, TypeError, OSError)


def main(argv=None) -> int:
    """Entry point of the ``odesolve`` command; returns the exit status.

    Every error a user can cause (a bad file, key, value or option, an output that cannot
    be written) is one line ``odesolve: error: ...`` on stderr and status 2, reported
    before any computation; a run that diverged is status 1; Ctrl-C is status 130.
    Warnings (a run outside the regime where the theory is exact, a long run) are lines
    ``odesolve: warning: ...``.
    """
    args = _parser().parse_args(argv)
    handler = {"run": _run, "plot": _plot, "sweep": _sweep, "figure": _figure,
               "limits": _limits}[args.command]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", RegimeWarning)
            warnings.simplefilter("always", CostWarning)
            warnings.showwarning = _warning_printer()
            status = handler(args)
    except (DivergenceError, SweepError) as exc:
        print(f"odesolve: error: {exc}", file=sys.stderr)
        return 1
    except _USER_ERRORS as exc:
        print(f"odesolve: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("odesolve: interrupted", file=sys.stderr)
        return 130
    return status or 0


def entry_point() -> None:
    """The installed ``odesolve`` command: :func:`main`, then exit with its status.

    After Ctrl-C the run's own cleanup is done when :func:`main` returns, but the
    interpreter's shutdown (the exit handlers of dask, numba, …) took 7 s on the CI
    machine: the process then ends at once, so that Ctrl-C stops a run within a second.
    """
    status = main()
    if status == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return " ".join(str(exc).split()) or type(exc).__name__


def _warning_printer():
    """``warnings.showwarning`` of one command: package warnings as ``odesolve: warning:``
    lines, each text once (an Euler run's cost was announced by the configuration's check
    and again by ``integrate``, and a warning of one seed's run would repeat per seed)."""
    printed = set()

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, (RegimeWarning, CostWarning)):
            if str(message) not in printed:
                printed.add(str(message))
                print(f"odesolve: warning: {message}", file=sys.stderr)
        else:
            print(warnings.formatwarning(message, category, filename, lineno, line),
                  end="", file=sys.stderr)
    return show


def _load(args):
    config = load_config(args.config)
    overrides = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError("--set", item, "expected KEY=VALUE")
        overrides[key.strip()] = parse_value(value)
    return config.with_overrides(overrides) if overrides else config


def _output_folder(out: Path, names=()) -> Path:
    """Check, before any computation, that the output folder can be created and written,
    and that none of the output files ``names`` in it is something else (a folder)."""
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", None, f"{out} exists and is not a directory")
    for name in names:
        if (out / name).exists() and not (out / name).is_file():
            raise ConfigError("--out", None, f"{out / name} exists and is not a file, so the "
                              "result cannot replace it")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError("--out", None, f"cannot create {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError("--out", None, f"{out} is not writable")
    return out


def _run(args) -> int:
    config = _load(args)
    out = _output_folder(args.out or Path("results") / args.config.stem,
                         ["result.nc"] + ([] if args.no_plot else ["result.png"]))
    dataset = run_experiment(config, progress=not args.quiet)
    print(_summary(dataset))
    writers = {"result.nc": netcdf_writer(dataset)}
    if not args.no_plot:
        writers["result.png"] = png_writer(plot_result(dataset), run_id=dataset.attrs["run_id"])
    for path in write_outputs(out, writers).values():
        print(f"wrote {path}")
    diverged = [line for line in dataset.attrs["divergences"].split("\n") if line]
    for line in diverged:
        print(f"odesolve: warning: {line}", file=sys.stderr)
    return 1 if diverged else 0


def _summary(dataset) -> str:
    """One line per quantity: final errors and the PCA error of rank K."""
    K = dataset.sizes["unit"]
    t = float(dataset["time"][-1])
    lines = [f"theory ({dataset.attrs['theory_mode']}, {dataset.attrs['theory_solver']}): "
             f"ε(t = {t:g}) = {float(dataset['error_theory'][:, -1].mean()):.5g} "
             f"[{dataset.attrs['theory_wall_time']:.1f} s]"]
    if "error_simulation" in dataset:
        final = dataset["error_simulation"][:, -1]
        n = int(final.count())
        # one seed has no spread to quote (it printed "± nan")
        spread = f" ± {float(final.std(ddof=1)) / n**0.5:.2g}" if n > 1 else ""
        lines.append(f"simulation (D = {dataset.attrs['D']}, {n} seed{'s' * (n != 1)}): "
                     f"ε(t = {t:g}) = {float(final.mean()):.5g}{spread} "
                     f"[{dataset.attrs['simulation_wall_time']:.1f} s]")
    lines.append(f"PCA error of rank {K}: {float(dataset['pca_error'].sel(rank=K)):.5g}")
    return "\n".join(lines)


def _plot(args) -> None:
    path = args.out or args.result.with_suffix(".png")
    if path.is_dir():
        raise ConfigError("--out", None, f"{path} is a directory: give the PNG file to write")
    dataset = load_results(args.result)
    _output_folder(path.parent)
    (plot_sweep if "grid" in dataset.attrs else plot_result)(dataset, path)
    print(f"wrote {path}")


def _sweep(args) -> None:
    config = _load(args)
    grid = parse_grid(args.grid)
    out = _output_folder(args.out or Path("results") / f"{args.config.stem}-sweep",
                         ["sweep.nc", "sweep.png"])
    dataset, summary = run_sweep(config, grid, out, scheduler=args.scheduler,
                                 n_workers=args.workers, progress=not args.quiet, plot=True)
    print(f"{summary['computed']} points computed, {summary['cached']} from the cache "
          f"({out / 'points'})")
    print(f"wrote {summary['path']}")
    print(f"wrote {out / 'sweep.png'}")


def _make_figure(name: str, out: Path, quick: bool, quiet: bool) -> None:
    module = importlib.import_module(FIGURES[name][0])
    # the limits figure (another module) takes no progress option
    options = {} if name == "limits" else {"progress": not quiet}
    print(f"wrote {module.make_figure(out, quick=quick, **options)}")


def _figure(args) -> None:
    if args.name == "list":
        for number, (name, (_, description)) in enumerate(FIGURES.items(), start=1):
            print(f"{number}  {name:15s} {description}")
        return
    name = _FIGURE_NUMBERS.get(args.name, args.name)
    _make_figure(name, args.out, args.quick, args.quiet)


def _limits(args) -> None:
    _make_figure("limits", args.out, args.quick, args.quiet)


if __name__ == "__main__":
    entry_point()

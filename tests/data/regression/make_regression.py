"""Regression references from the CURRENT (baseline) engine.

Run with the baseline venv (/work/venv, editable install of /tmp/baseline):
    ODESOLVE_CACHE=/tmp/engine-cache python make_regression.py

Every case stores its exact inputs (model, spectrum eigenvalues, initial state vector,
lr, grid, solver, tolerances, bulk) so the new engine can be run on them without the
config or data loaders.  Integration uses DOP853 with rtol=1e-11, atol=1e-13 so that
the stored trajectories are the ODE solution to ~1e-10 (an LSODA run at the default
rtol=1e-7 cannot be reproduced to 1e-8 by any RHS that differs in the last bits).
Besides trajectories, every model variant stores the RHS at 3 random states for both
bulk treatments: an exact (solver-free) regression of the right-hand side.
"""
import json, sys, time
from pathlib import Path
import numpy as np
import odesolve
from odesolve import Autoencoder, State, integrate, spiked_covariance
from odesolve.config import load_config, build_problem
from odesolve.integrate import rhs_function
from odesolve.codegen import compile_model

OUT = Path(__file__).parent / "regression"
OUT.mkdir(exist_ok=True)
RTOL, ATOL, METHOD = 1e-11, 1e-13, "DOP853"
N_GRID = 30
manifest = {"engine": "baseline /tmp/baseline (odesolve %s)" % odesolve.__version__,
            "method": METHOD, "rtol": RTOL, "atol": ATOL, "cases": {}}


def grid(t_max):
    return np.concatenate([[0.0], np.geomspace(t_max / 1000, t_max, N_GRID - 1)])


def model_dict(m):
    return {"K": m.K, "activation": str(m.activation.name), "activation_expr": str(m.activation.expr),
            "tied": m.tied, "rule": m.rule, "bias": m.bias}


def save(name, model, state, lr, t, bulk, extra=None):
    t0 = time.perf_counter()
    traj = integrate(state, lr, (0.0, float(t[-1])), method=METHOD, t_eval=t, rtol=RTOL,
                     atol=ATOL, bulk=bulk)
    wall = time.perf_counter() - t0
    spec = state.spectrum
    arrays = dict(t=t, error=traj.error, Q=traj.Q, R=traj.R, T0=traj.T0, m=traj.m,
                  learning_times=traj.learning_times, y0=state.to_vector(),
                  eigenvalues=spec.eigenvalues, Y0=state.Y, G0=state.G, m0=state.m)
    if extra:
        arrays.update(extra)
    np.savez_compressed(OUT / f"{name}.npz", **arrays)
    manifest["cases"][name] = dict(model=model_dict(model), D=spec.D, n_tracked=spec.n_tracked,
                                   bulk_eigenvalue=spec.bulk, n_bulk=spec.n_bulk, lr=lr,
                                   t_max=float(t[-1]), bulk=bulk, mode=traj.mode,
                                   integrate_wall_s=round(wall, 3), **(extra_meta.pop(name, {})))
    print(f"{name}: {traj.mode} err {traj.error[0]:.5f} -> {traj.error[-1]:.6f} "
          f"lt {np.round(traj.learning_times, 3)} ({wall:.1f}s)", flush=True)


extra_meta = {}
which = sys.argv[1:] or ["examples", "variants"]

if "examples" in which:
    for path in sorted(Path("/tmp/baseline/examples").glob("*.toml")):
        cfg = load_config(path)
        problem = build_problem(cfg)
        seed = cfg.seeds[0] if cfg.seeds else cfg.init.seed
        state = problem.initial_state(cfg.init.seed)
        t_max = cfg.train.t_max
        name = f"example_{path.stem}"
        extra_meta[name] = {"config": str(path.name), "seed": cfg.init.seed,
                            "init_scale": cfg.init.scale, "init_bias": cfg.init.bias,
                            "config_t_max": t_max, "config_solver": cfg.theory.solver}
        save(name, problem.model, state, cfg.train.lr, grid(t_max), cfg.theory.bulk)

VARIANTS = []
for act in ("linear", "erf", "relu", "sign", "tanh", "x + 0.1*x**3", "Abs(x)"):
    for tied in (False, True):
        for rule in (("sgd", "truncated", "sanger") if tied else ("sgd", "truncated")):
            for bias in ("none", "trained", "fixed"):
                if rule == "sanger" and bias == "trained":
                    continue
                VARIANTS.append((act, tied, rule, bias))
# the test suite's families (tests/test_theory_rhs.py, test_theory_basics.py,
# test_simulations.py, test_phenomena.py) plus the user activations of test_activations
IN_SUITE = {v for v in VARIANTS if v[0] in ("linear", "erf", "relu", "tanh") and
            v[3] in ("none", "trained", "fixed")}
if "variants" in which:
    spec = spiked_covariance(400, spikes=[1.5, 0.8, 0.3], bulk=0.2)
    for (act, tied, rule, bias) in VARIANTS:
        if act in ("sign", "x + 0.1*x**3", "Abs(x)") and (bias != "none"):
            continue   # not in the suite; with means these need slow quadrature
        if act == "tanh" and bias != "none":
            continue
        for K in (1, 2, 3):
            # K = 2 everywhere; K = 3 where a third unit adds terms (truncated sums,
            # Sanger, the suite's K = 3 cases); K = 1 for the single-unit tests
            if K == 1 and not (act in ("linear", "erf", "relu") and rule == "sgd" and not tied):
                continue
            if K == 3 and not (rule != "sgd" or (act, tied, bias) in
                               {("erf", False, "none"), ("relu", False, "trained"),
                                ("erf", True, "none")}):
                continue
            model = Autoencoder(K=K, activation=act, tied=tied, rule=rule, bias=bias)
            tag = {"x + 0.1*x**3": "cubic", "Abs(x)": "abs"}.get(act, act)
            name = f"variant_{tag}_{'tied' if tied else 'untied'}_{rule}_{bias}_K{K}"
            state = State.random(model, spec, scale=0.3, seed=K, bias=0.2)
            # exact RHS at three random O(1) states, both bulk treatments
            rng = np.random.default_rng(100 + K)
            ys, rhs_l, rhs_f = [], [], []
            compiled = compile_model(model)
            for _ in range(3):
                W = rng.normal(0, 0.5, (K, spec.D)); V = rng.normal(0, 0.5, (K, spec.D))
                V[:, :3] *= np.sqrt(spec.D)
                m = rng.normal(0, 0.5, K) if model.has_bias else None
                st = State.from_weights(model, spec, W, None if tied else V, m)
                y = st.to_vector()
                ys.append(y)
                rhs_l.append(rhs_function(compiled, st, 0.7, "limit")(0.0, y))
                rhs_f.append(rhs_function(compiled, st, 0.7, "finite")(0.0, y))
            extra_meta[name] = {"seed": K, "init_scale": 0.3, "init_bias": 0.2,
                                "spikes": [1.5, 0.8, 0.3], "bulk_sigma2": 0.2, "rhs_lr": 0.7,
                                "in_test_suite": (act, tied, rule, bias) in IN_SUITE}
            save(name, model, state, 1.0, grid(60.0), "limit",
                 extra=dict(rhs_states=np.array(ys), rhs_limit=np.array(rhs_l),
                            rhs_finite=np.array(rhs_f)))

mf = OUT / "manifest.json"
old = json.loads(mf.read_text()) if mf.exists() else {"cases": {}}
old_cases = old["cases"]; old_cases.update(manifest["cases"]); manifest["cases"] = old_cases
mf.write_text(json.dumps(manifest, indent=1))

"""Example configurations (TOML), one per phenomenon, installed with the package so that
``odesolve figure`` works after a plain ``pip install .``; ``examples/`` at the top of the
repository points here."""

"""Paper figures, one module each, all with ``make_figure(out_dir, quick=False) -> path``.

Run one with ``odesolve figure NAME`` (from the repository root) or
``python -m odesolve.figures.NAME --out DIR [--quick]``.  The configurations are the example
files under ``examples/``; ``quick=True`` shrinks them (small D, two seeds) so that the
test suite can draw every figure in seconds.
"""

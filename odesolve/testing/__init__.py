"""Oracles shared by the tests, the validation scripts and the benchmarks.

:mod:`.reference_rhs` (the derived equations evaluated without generated code),
:mod:`.sgd_oracle` (an independent per-sample SGD step), :mod:`.published_scheme` (the
published fixed-step Euler scheme, re-implemented), :mod:`.tables` (markdown tables and
the machine description of benchmark and validation reports), :mod:`.layout` (what a
reader would flag in a figure's layout: cut texts, legends on the data).
"""

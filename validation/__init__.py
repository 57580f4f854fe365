"""Validation scripts of odesolve: theory vs simulation, vs Monte Carlo, vs itself.

``python validation/make_report.py`` regenerates ``validation/REPORT.md``; each script
(``finite_size``, ``rhs_monte_carlo``, ``euler_parity``, ``learning_times``) has a
``main(quick=False)`` returning its markdown section and can be run on its own.
"""

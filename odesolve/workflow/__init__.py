"""The workflow: TOML configurations → experiments (theory + simulation) → results files,
sweeps, plots and the ``odesolve`` command.

:mod:`.schema` declares every key; :mod:`.config` parses and validates a file;
:mod:`.problem` builds the pipeline's objects from it; :mod:`.experiment` runs theory and
simulator for every seed; :mod:`.results` writes and reads netCDF; :mod:`.sweep` runs grids
on dask; :mod:`.plotting` draws; :mod:`.cli` is the command line.
"""

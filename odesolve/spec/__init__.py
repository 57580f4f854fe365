"""Stage 1 of the pipeline: what is learnt.

:mod:`.spectra` (the input covariance: spiked, sinusoidal, given, a data set's),
:mod:`.images` (offline image data sets), :mod:`.activations` (built-in and user
activations, parsed safely) and :mod:`.model` (the autoencoder and its learning rule).
Each owns its choice lists (:data:`~.model.RULES`, :data:`~.model.BIAS_MODES`,
:data:`~.images.IMAGE_DATASETS`, :data:`~.activations.BUILTIN_ACTIVATIONS`).
"""

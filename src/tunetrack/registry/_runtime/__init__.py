"""The code a registered classifier carries: copied at log time into the model's ``code/``
folder as the top-level package ``tunetrack_runtime``, so MLflow loads and serves the model
where tunetrack is not installed.

Every module here imports nothing of tunetrack (numpy, pandas, Pillow, keras; the feature
families add scikit-image): siblings are reached by relative imports, and the packaged copy
also holds ``features.py`` (and ``classic_runtime.py`` when tunetrack has it) from
:mod:`tunetrack.models`. Inside tunetrack these files are templates; they run from the copy.
"""

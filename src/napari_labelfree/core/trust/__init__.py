"""Trust in a prediction: training-input statistics, out-of-distribution checks, uncertainty.

:mod:`.stats` summarizes what a network was trained on (a few dozen numbers in config.json);
:mod:`.ood` compares an image with them before prediction; :mod:`.builtin` computes them for
models trained on simulated data; :mod:`.calibration` measures how well an uncertainty map
points at the error.
"""

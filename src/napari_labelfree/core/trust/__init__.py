"""Trust in a prediction: training-input statistics, out-of-distribution checks, uncertainty.

:mod:`.stats` summarizes what a network was trained on (a few dozen numbers in config.json);
:mod:`.names` names the uncertainty outputs and combines models of one structure;
:mod:`.ood` compares an image with them at prediction; :mod:`.builtin` computes them for
models trained on simulated data; :mod:`.compare` scores a prediction against a real stain.
"""

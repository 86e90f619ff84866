"""Models made by other software: pytorch_fnet model files in, bioimage.io packages out and in.

Every reader here loads data only: JSON, YAML, safetensors, NumPy arrays and torch pickles read
with ``torch.load(weights_only=True)``, which refuses a file that needs code to be rebuilt.
"""

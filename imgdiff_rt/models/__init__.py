"""The model contract every layer reads: graph specs (``specs``) and the versioned bundle (``bundle``).

Nothing here imports export, runtime, Triton, bench or CLI code; they all import this.
"""

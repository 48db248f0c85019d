"""minirun — a small, readable Linux container runtime.

The public API lives in minirun.runtime (containers) and minirun.images (the image store).
"""

__version__ = "0.1.0"

"""An auto-graded deep-learning assignment kit: release, grade in a sandbox, host on JupyterHub."""

__version__ = "0.1.0"

"""Hosting: the local JupyterHub, the grade-on-submit service and production config."""

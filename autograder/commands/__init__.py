"""One module per ``course`` subcommand; each has ``register(subparsers)``."""

from autograder.commands import config_cmd, weights_cmd, data_cmd, grade_cmd, hub_cmd, demo_cmd, release_cmd, sandbox_cmd, export_cmd, new_cmd, dask_cmd

ALL_COMMANDS = (config_cmd, weights_cmd, data_cmd, grade_cmd, hub_cmd, demo_cmd, release_cmd, sandbox_cmd, export_cmd, new_cmd, dask_cmd)

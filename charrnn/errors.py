"""Errors that the command line turns into one clear line and an exit code."""


class CharrnnError(Exception):
    """A failure the user can act on; `str(err)` is the whole message.

    exit_code 1 is a runtime failure (data, checkpoint, disk); 2 is a usage or config error.
    """

    exit_code = 1


class ConfigError(CharrnnError):
    """The config file, a --set override or a command-line value is wrong."""

    exit_code = 2


class DataError(CharrnnError):
    """The training or evaluation text cannot be read or used."""


class CheckpointError(CharrnnError):
    """A checkpoint is missing, damaged, or does not fit what was asked of it."""

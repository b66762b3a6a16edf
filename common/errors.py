"""Errors a user can act on.

Every stage raises a `PipelineError` whose message names the file (or setting) and the
problem; the command-line entry points print that message on one line and exit non-zero.
Anything else that escapes is a bug and keeps its traceback.
"""


class PipelineError(Exception):
    """A failure with a one-line explanation for the user."""


class InputError(PipelineError, ValueError):
    """Bad input given by the user: a missing file, a corrupt video, an unknown config key..."""

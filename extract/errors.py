"""The one exception type for bad input that a user can fix.

Every stage raises `InputError` with a message that names the file and the problem; the
command-line entry points print that message on one line and exit non-zero. Anything else
that escapes is a bug and keeps its traceback.
"""


class InputError(ValueError):
    """Bad input given by the user: a missing file, a corrupt video, an unknown config key..."""

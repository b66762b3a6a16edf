"""Errors a user can act on.

Every stage raises a `PipelineError` whose message names the file (or setting) and the
problem; the command-line entry points print that message on one line and exit non-zero.
Anything else that escapes is a bug and keeps its traceback.
"""


class PipelineError(Exception):
    """A failure with a one-line explanation for the user. Line breaks that text from a file carried into
    the message (a config key, an id) are written as \\n, so the message stays one line."""

    def __init__(self, message: str = "", *args):
        super().__init__(str(message).replace("\r", "\\r").replace("\n", "\\n"), *args)


class InputError(PipelineError, ValueError):
    """Bad input given by the user: a missing file, a corrupt video, an unknown config key..."""


def first_line(error: BaseException, limit: int = 300) -> str:
    """What a library's exception says, for one of our one-line messages: its first non-empty line (torch.load's
    messages run to a dozen), at most `limit` characters, or its type where it says nothing. For an OSError its
    own words (FFmpeg's, through PyAV), without the errno and file name that its str() adds."""
    text = str(getattr(error, "strerror", None) or error)
    return next((line.strip()[:limit] for line in text.splitlines() if line.strip()), type(error).__name__)

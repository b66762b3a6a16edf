"""What every bin/ command shares: log lines on the terminal, one-line errors, exit codes."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from hscnet.common.errors import PipelineError


def run(main: Callable[[], object]) -> None:
    """Call `main`, then exit: 0 on success (or the int `main` returns), 2 with one line on a PipelineError,
    130 on Ctrl-C. Other exceptions are bugs and keep their traceback."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("hscnet")  # every module of ours logs beneath it
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        result = main()
        code = result if isinstance(result, int) and not isinstance(result, bool) else 0
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)

"""bin/: the entry points."""

from __future__ import annotations

import os
import sys

from conftest import REPO


def test_python_entry_points_use_this_interpreter():
    assert os.access(REPO / "bin" / "train", os.X_OK) and sys.executable

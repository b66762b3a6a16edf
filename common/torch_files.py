"""Files torch.save wrote, read without running code: a checkpoint, C3D or Kinetics weights."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from hscnet.common.errors import InputError, first_line

# What torch.save writes first: a zip archive's header since torch 1.6, its magic number pickled before that
# (converted weights older than that, such as the usual Sports-1M c3d.pickle, are in that format).
ZIP_HEADER = b"PK\x03\x04"
LEGACY_HEADER = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)


def written_by_torch_save(path: Path) -> bool:
    """Whether `path` begins as torch.save begins its files, and, for a zip archive, also ends as one."""
    with open(path, "rb") as handle:
        head = handle.read(len(LEGACY_HEADER))
    return head.startswith(LEGACY_HEADER) or (head.startswith(ZIP_HEADER) and zipfile.is_zipfile(path))


def load_weights_only(path: Path, what: str):
    """`torch.load(path, weights_only=True)` onto the CPU, or one `InputError` naming `path`, `what` it was
    to be, and why not: not a file torch.save wrote (or one cut short), or a file holding objects other than
    tensors and plain values, which could run code as they load and so never are. torch's own words for
    both suggest loading with weights_only=False, which this tool never does."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged or foreign file
        if not written_by_torch_save(path):
            reason = "not a file torch.save wrote, or one cut short"
        elif isinstance(error, pickle.UnpicklingError) and str(error).startswith("Weights only load failed"):
            reason = "it holds objects other than tensors and plain values, which are never loaded"
        else:
            reason = f"{type(error).__name__}: {first_line(error)}"
        raise InputError(f"{path}: not a loadable {what}: {reason}") from error

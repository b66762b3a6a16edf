"""Restricted unpickling of NumPy object arrays (the VPG paragraph `.npy` files).

`np.load(allow_pickle=True)` would run whatever code a file asks for; this reader allows only
NumPy's own array reconstruction and plain Python values, and refuses every other global.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
from pathlib import Path

import numpy as np

from hscnet.common.errors import InputError


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    # Protocol-2 pickles store an array's raw bytes as _codecs.encode(text, "latin1").
    if codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"refused: _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays of plain Python values and refuses every other global."""

    def find_class(self, module: str, name: str):
        if (module, name) in {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}:
            return np.ndarray.__reduce__(np.zeros(0))[0]  # NumPy's own _reconstruct, whatever its module
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        if (module, name) == ("_codecs", "encode"):
            return _latin1_bytes
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: only NumPy arrays of plain values are allowed")


def load_object_npy(path: str | os.PathLike) -> np.ndarray:
    """`np.load` for a pickled object array, without running any code the file asks for."""
    path = Path(path)
    with open(path, "rb") as handle:
        try:
            version = np.lib.format.read_magic(handle)
            header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = header(handle)
        except ValueError as error:
            raise InputError(f"{path}: not a NumPy .npy file ({error})") from error
        if dtype != np.dtype(object):
            handle.seek(0)
            return np.load(handle, allow_pickle=False)
        try:
            array = _ArrayOnlyUnpickler(io.BufferedReader(handle)).load()
        except pickle.UnpicklingError as error:
            raise InputError(f"{path}: {error}") from error
    if not isinstance(array, np.ndarray) or array.shape != shape:
        raise InputError(f"{path}: the pickled payload is not the array its header describes")
    return array

"""C3D (Tran et al., ICCV 2015), the backbone of the paper's features, from conv1 to fc7.

Weights: the standard converted Sports-1M state dict (`c3d.pickle`, layer names conv1, conv2,
conv3a, conv3b, conv4a, conv4b, conv5a, conv5b, fc6, fc7, fc8), loaded with
`torch.load(weights_only=True)` and checked key by key and shape by shape. Without it the
network is a seeded random initialisation, announced loudly and recorded as "random".

Input: the Caffe model was trained on frames decoded by OpenCV, so the converted conv1 weights
expect BGR channels, values in 0-255 minus the Sports-1M mean. The per-channel average of that
mean cube, BGR (90.25, 97.66, 101.41), stands in for the cube itself.

Features: fc6 (default, 4096-d), fc7 (4096-d) or pool5 (8192-d), after the ReLU, as Caffe's
in-place ReLU leaves the fc blobs the VPG features were read from.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hscnet.common.devices import resolve_device
from hscnet.common.errors import InputError
from hscnet.common.memory import keep_freed_memory
from hscnet.common.torch_files import load_weights_only
from hscnet.extract.backbones import C3D_LAYERS, warn_random_weights
from hscnet.extract.precision import choose_precision
from hscnet.extract.spec import RANDOM_WEIGHTS, file_identity

log = logging.getLogger(__name__)

BGR_MEAN = (90.25164677347574, 97.65700354418385, 101.4083346052324)


class C3D(nn.Module):
    """The C3D network with the parameter names of the converted Sports-1M weights."""

    def __init__(self):
        super().__init__()
        conv = lambda cin, cout: nn.Conv3d(cin, cout, kernel_size=3, padding=1)  # noqa: E731
        self.conv1, self.conv2 = conv(3, 64), conv(64, 128)
        self.conv3a, self.conv3b = conv(128, 256), conv(256, 256)
        self.conv4a, self.conv4b = conv(256, 512), conv(512, 512)
        self.conv5a, self.conv5b = conv(512, 512), conv(512, 512)
        self.pool1 = nn.MaxPool3d(kernel_size=(1, 2, 2), stride=(1, 2, 2))
        self.pool = nn.MaxPool3d(kernel_size=2, stride=2)
        self.pool5 = nn.MaxPool3d(kernel_size=2, stride=2, padding=(0, 1, 1))
        self.fc6, self.fc7, self.fc8 = nn.Linear(8192, 4096), nn.Linear(4096, 4096), nn.Linear(4096, 487)

    def forward(self, clips: torch.Tensor, layer: str = "fc6") -> torch.Tensor:
        """clips [N, 3, 16, 112, 112] (BGR, mean subtracted) -> features [N, C3D_LAYERS[layer]]."""
        # In-place ReLU: C3D only runs inference here, and a convolution's output is dead once
        # rectified, so this halves the transient memory of the large early layers.
        x = self.pool1(torch.relu_(self.conv1(clips)))
        x = self.pool(torch.relu_(self.conv2(x)))
        x = self.pool(torch.relu_(self.conv3b(torch.relu_(self.conv3a(x)))))
        x = self.pool(torch.relu_(self.conv4b(torch.relu_(self.conv4a(x)))))
        x = self.pool5(torch.relu_(self.conv5b(torch.relu_(self.conv5a(x)))))  # [N, 512, 1, 4, 4]
        x = x.flatten(1).to(self.fc6.weight.dtype)  # [N, 8192], at the fc layers' precision
        if layer == "pool5":
            return x
        x = torch.relu(self.fc6(x))
        return x if layer == "fc6" else torch.relu(self.fc7(x))


@dataclass(frozen=True)
class Projection:
    """A PCA projection of features: (x - mean) @ basis."""

    mean: np.ndarray  # [D]
    basis: np.ndarray  # [D, k]


def load_pca(path: str | os.PathLike, dims: int, input_dim: int) -> Projection:
    """The official ActivityNet PCA file (datasets data/U, data/S, data/x_mean): the mean [D]
    and the first `dims` principal directions [D, dims]."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: PCA file not found")
    try:
        with h5py.File(path, "r") as f:
            group = f.get("data", f)
            basis, mean = np.asarray(group["U"], np.float32), np.asarray(group["x_mean"], np.float32).reshape(-1)
    except (OSError, KeyError) as error:
        raise InputError(f"{path}: not a PCA file with data/U and data/x_mean ({error})") from error
    if basis.shape[0] != input_dim or mean.shape[0] != input_dim or basis.shape[1] < dims:
        raise InputError(
            f"{path}: U {basis.shape} and x_mean {mean.shape} do not project {input_dim}-d features to {dims}"
        )
    return Projection(mean, basis[:, :dims])


def load_c3d(weights: str | os.PathLike | None, seed: int = 0) -> tuple[C3D, str]:
    """The network and its identity: "<file> sha256:<hex>" for given weights, else "random"."""
    if not weights:
        with torch.random.fork_rng(devices=[]):  # seeded without touching the caller's generator
            torch.manual_seed(seed)
            model = C3D()
            # He initialisation with zero biases keeps the activations' scale through the eight
            # convolutions, so random features follow the input. PyTorch's default initialisation
            # leaves fc6 dominated by its biases (all clips of the demo had cosine 0.96 to each other).
            for module in model.modules():
                if isinstance(module, (nn.Conv3d, nn.Linear)):
                    nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                    nn.init.zeros_(module.bias)
        warn_random_weights("c3d", seed)
        return model.eval(), RANDOM_WEIGHTS
    with torch.device("meta"):  # shapes only: the file's tensors become the weights (no initialisation to discard)
        model = C3D()
    path = Path(weights)
    if not path.is_file():
        raise InputError(f"{path}: C3D weights not found")
    state = load_weights_only(path, "C3D state dict")
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    expected = model.state_dict()
    if not isinstance(state, dict):
        raise InputError(f"{path}: expected a state dict of C3D layers, got {type(state).__name__}")
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise InputError(f"{path}: not C3D Sports-1M weights (missing {missing[:4]}, unexpected {unexpected[:4]})")
    for name, tensor in expected.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise InputError(f"{path}: {name} has shape {tuple(state[name].shape)}, C3D expects {tuple(tensor.shape)}")
    model.load_state_dict({name: state[name].to(torch.float32) for name in expected}, assign=True)
    return model.eval(), file_identity(path)


class C3DEncoder:
    """Runs C3D over uint8 clips in batches, at the precision `extract/precision.py` chooses.

    `channels_last_3d` on every device: oneDNN's direct 3-D convolutions and cuDNN read it without
    reordering, and it was the faster layout on every CPU and GPU measured (docs/benchmarks.md).
    On a CPU the convolutions are cast to bf16 where that is the precision (fc6 and fc7 stay float32);
    on CUDA fp16 or bf16 run as autocast.
    """

    def __init__(
        self,
        *,
        weights: str | os.PathLike | None,
        layer: str,
        device: str,
        precision: str,
        batch_size: int,
        projection: Projection | None = None,
    ):
        if layer not in C3D_LAYERS:
            raise InputError(f"unknown C3D layer {layer!r}: use one of {', '.join(C3D_LAYERS)}")
        self.device = resolve_device(device)
        self.layer, self.batch_size = layer, batch_size
        on_cpu = self.device.type == "cpu"
        self.precision = choose_precision(precision, self.device.type)
        if on_cpu:
            keep_freed_memory()  # each batch's activations would otherwise be mapped and zero-filled afresh
        model, self.weights = load_c3d(weights)
        self.memory_format = torch.channels_last_3d
        self.input_dtype = torch.bfloat16 if (on_cpu and self.precision == "bf16") else torch.float32
        model = model.to(self.device, memory_format=self.memory_format)
        for module in model.modules():  # the convolutions hold ~all of C3D's work; fc6/fc7 stay float32
            if isinstance(module, nn.Conv3d):
                module.to(self.input_dtype)
        self.model = model
        self.autocast = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.precision) if not on_cpu else None
        self.mean = torch.tensor(BGR_MEAN, device=self.device).view(1, 3, 1, 1, 1)
        self.dim = C3D_LAYERS[layer]
        self.projection = None
        if projection is not None:
            self.projection = (torch.from_numpy(projection.mean).to(self.device),
                               torch.from_numpy(projection.basis).to(self.device))  # fmt: skip
            self.dim = projection.basis.shape[1]

    def describe(self) -> str:
        projected = f", PCA to {self.dim}" if self.projection is not None else ""
        layout = ", channels_last_3d" if self.memory_format == torch.channels_last_3d else ""
        return f"C3D {self.layer}{projected} on {self.device} ({self.precision}{layout}), weights {self.weights}"

    @torch.inference_mode()
    def encode(self, clips: np.ndarray | torch.Tensor) -> np.ndarray:
        """uint8 RGB clips [N, 16, 112, 112, 3] (an array, or a tensor from NVDEC) -> float32 features [N, dim]."""
        outputs = []
        for start in range(0, len(clips), self.batch_size):
            batch = torch.as_tensor(clips[start : start + self.batch_size]).to(self.device)  # NVDEC's: on it already
            x = batch.flip(-1).permute(0, 4, 1, 2, 3).float() - self.mean  # RGB -> BGR, [N, 3, 16, 112, 112]
            x = x.to(self.input_dtype).contiguous(memory_format=self.memory_format)
            with torch.autocast(
                self.device.type, dtype=self.autocast or torch.float32, enabled=self.autocast is not None
            ):
                features = self.model(x, self.layer).float()  # [N, C3D_LAYERS[layer]]
            if self.projection is not None:
                features = (features - self.projection[0]) @ self.projection[1]  # [N, k]
            outputs.append(features.cpu())
        return torch.cat(outputs).numpy() if outputs else np.zeros((0, self.dim), np.float32)

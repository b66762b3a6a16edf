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
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.devices import resolve_device
from common.errors import InputError, first_line
from common.memory import keep_freed_memory
from extract.backbones import C3D_LAYERS, warn_random_c3d
from extract.spec import RANDOM_WEIGHTS, file_identity

log = logging.getLogger(__name__)

BGR_MEAN = (90.25164677347574, 97.65700354418385, 101.4083346052324)
LAYOUTS = {"auto": None, "contiguous": torch.contiguous_format, "channels_last_3d": torch.channels_last_3d}


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


def load_pca(path: str | os.PathLike, dims: int, input_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The official ActivityNet PCA file (datasets data/U, data/S, data/x_mean): the mean [D]
    and the first `dims` principal directions [D, dims]; features become (x - mean) @ U."""
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
    return mean, basis[:, :dims]


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
        warn_random_c3d(seed)
        return model.eval(), RANDOM_WEIGHTS
    with torch.device("meta"):  # shapes only: the file's tensors become the weights (no initialisation to discard)
        model = C3D()
    path = Path(weights)
    if not path.is_file():
        raise InputError(f"{path}: C3D weights not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a foreign or damaged file raises many types
        raise InputError(f"{path}: not a loadable state dict ({type(error).__name__}: {first_line(error)})") from error
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


# oneDNN's ISA levels (ONEDNN_MAX_CPU_ISA) from which bf16 convolutions run natively.
_BF16_ISAS = {
    "AVX512_CORE_BF16",
    "AVX512_CORE_FP16",
    "AVX10_1_512",
    "AVX512_CORE_AMX",
    "AVX10_1_512_AMX",
    "AVX512_CORE_AMX_FP16",
    "AVX10_1_512_AMX_FP16",
    "ALL",
}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (the avx512_bf16 or amx_bf16 flags of Linux).

    Not `torch.ops.mkldnn._is_mkldnn_bf16_supported()`: that is also true on AVX-512 CPUs
    without bf16 (Skylake-X, Cascade Lake), where oneDNN emulates bf16 slowly. A cap on oneDNN's
    instruction set below bf16 (`ONEDNN_MAX_CPU_ISA=AVX2`, as used to measure an AVX2 machine)
    counts as no native bf16, since oneDNN then cannot use it.
    """
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "ALL").upper()
    if cap not in _BF16_ISAS:
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = next((line.split(":", 1)[1].split() for line in handle if line.startswith("flags")), [])
    except OSError:  # not Linux: float32 is never wrong, only slower
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_mode(native_bf16: bool) -> tuple[str, torch.memory_format]:
    """The precision and layout C3D runs fastest in on a CPU, measured with benchmarks/extract_speed.py.

    `channels_last_3d` always: oneDNN's direct 3-D convolutions read it without reordering.
    Measured, C3D clips/s at batch 8 on 2 cores (float32 contiguous / float32 channels_last_3d /
    bf16 channels_last_3d): Intel Xeon with AMX-bf16 3.42 / 4.22 / 14.47; the same Xeon limited
    to AVX2 (ONEDNN_MAX_CPU_ISA=AVX2) 2.53 / 2.74 / -; an AMD EPYC Zen 5 with avx512_bf16 and no
    AMX 3.65 / 4.61 / 9.25, limited to AVX2 2.35 / 2.65 / -; a 2-core AMD EPYC with AVX2 only
    1.09 / 1.48 / - (measured by hand when issue 11 was filed). Those rates predate keeping freed
    memory (common/memory.py), which made every mode faster without changing their order (the Xeon:
    3.37 / 3.83 / 16.81). bf16 only where it is native: its
    features are within 0.5 % of float32's (0.49 % on the Charades clips), and emulated bf16 is
    slower than float32.
    """
    return ("bf16" if native_bf16 else "fp32"), torch.channels_last_3d


class ClipEncoder:
    """Runs C3D over uint8 clips in batches, at the precision and layout the device does best.

    CPU: `cpu_mode` (bf16 convolutions in `channels_last_3d` where the processor has native bf16,
    float32 in `channels_last_3d` elsewhere; fc6 and fc7 stay float32). CUDA: float16 autocast in
    `channels_last_3d`, which cuDNN ran 1.14-1.17 times as fast as contiguous on an H200 (2290 against
    2004 clips/s, benchmarks/gpu_extract.py).
    `precision="fp32"` forces float32 anywhere; `layout` overrides the memory layout.
    """

    def __init__(
        self,
        *,
        weights: str | os.PathLike | None,
        layer: str,
        device: str,
        precision: str,
        batch_size: int,
        pca: str | os.PathLike | None = None,
        pca_dims: int = 0,
        seed: int = 0,
        layout: str = "auto",
    ):
        if layer not in C3D_LAYERS:
            raise InputError(f"unknown C3D layer {layer!r}: use one of {', '.join(C3D_LAYERS)}")
        self.device = resolve_device(device)
        self.layer, self.batch_size = layer, batch_size
        self.dim = C3D_LAYERS[layer]
        model, self.weights = load_c3d(weights, seed)
        if precision not in {"auto", "fp32", "bf16", "fp16"}:
            raise InputError(f"unknown precision {precision!r}: use auto, fp32, bf16 or fp16")
        if layout not in LAYOUTS:
            raise InputError(f"unknown layout {layout!r}: use {', '.join(LAYOUTS)}")
        on_cpu = self.device.type == "cpu"
        if on_cpu:
            keep_freed_memory()  # each batch's activations would otherwise be mapped and zero-filled afresh
            best, self.memory_format = cpu_mode(cpu_has_native_bf16())
            precision = best if precision == "auto" else precision
        else:
            precision = "fp16" if precision == "auto" else precision
            self.memory_format = torch.channels_last_3d
        if layout != "auto":  # benchmarks/extract_speed.py compares the layouts
            self.memory_format = LAYOUTS[layout]
        self.precision = precision
        self.input_dtype = torch.bfloat16 if (on_cpu and precision == "bf16") else torch.float32
        model = model.to(self.device, memory_format=self.memory_format)
        for module in model.modules():  # the convolutions hold ~all of C3D's work; fc6/fc7 stay float32
            if isinstance(module, nn.Conv3d):
                module.to(self.input_dtype)
        self.model = model
        self.autocast = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision) if not on_cpu else None
        self.mean = torch.tensor(BGR_MEAN, device=self.device).view(1, 3, 1, 1, 1)
        self.projection = None
        if pca:
            mean, basis = load_pca(pca, pca_dims, self.dim)
            self.projection = (torch.from_numpy(mean).to(self.device), torch.from_numpy(basis).to(self.device))
            self.dim = pca_dims

    def describe(self) -> str:
        projected = f", PCA to {self.dim}" if self.projection is not None else ""
        layout = ", channels_last_3d" if self.memory_format == torch.channels_last_3d else ""
        return f"C3D {self.layer}{projected} on {self.device} ({self.precision}{layout}), weights {self.weights}"

    @torch.inference_mode()
    def encode(self, clips: np.ndarray) -> np.ndarray:
        """uint8 RGB clips [N, 16, 112, 112, 3] -> float32 features [N, dim]."""
        outputs = []
        for start in range(0, len(clips), self.batch_size):
            batch = torch.from_numpy(clips[start : start + self.batch_size]).to(self.device)
            x = batch.flip(-1).permute(0, 4, 1, 2, 3).float() - self.mean  # RGB -> BGR, [N, 3, 16, 112, 112]
            x = x.to(self.input_dtype).contiguous(memory_format=self.memory_format)
            with torch.autocast(
                self.device.type, dtype=self.autocast or torch.float32, enabled=self.autocast is not None
            ):
                features = self.model(x, self.layer).float()
            if self.projection is not None:
                features = (features - self.projection[0]) @ self.projection[1]
            outputs.append(features.cpu())
        return torch.cat(outputs).numpy() if outputs else np.zeros((0, self.dim), np.float32)

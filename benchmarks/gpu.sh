#!/usr/bin/env bash
# The GPU path in one run, for a fresh GPU machine (at most 8 minutes): C3D extraction on CUDA
# beside decoding (which bounds it, at what rate; software decoding beside NVDEC), one HSCNet
# training step in bf16 autocast beside float32 (time, loss and gradient agreement) at the paper's
# batch sizes and at four times them, and the `gpu` tests.
#
#   bash benchmarks/gpu.sh            # from the repository root; PYTHON=... to pick the interpreter
#
# It needs torch with CUDA, PyAV (the `av` wheel) and pytest; it imports neither Ray nor spaCy, so
# a machine without them runs it. Each step's output goes to the terminal and to $OUT (or ./gpu-out).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
# The package as installed (hscnet.extract is extract/, ...; pyproject's package-dir), without installing
# it: a folder of links. A GPU machine may have no pip, no network and no room for the clone's .venv.
SITE=$(mktemp -d)
trap 'rm -rf "$SITE"' EXIT
mkdir "$SITE/hscnet"
ln -s "$PWD"/hscnet/*.py "$SITE/hscnet/"
for folder in common extract pipeline configs; do ln -s "$PWD/$folder" "$SITE/hscnet/$folder"; done
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/card.txt" || true
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__, torch.cuda.get_device_name())"
echo "== C3D extraction on CUDA with decoding beside it"
timeout 300 "$PY" benchmarks/gpu_extract.py --copies 24 | tee "$OUT/extract.txt"
echo "== one HSCNet training step, bf16 autocast beside float32"
timeout 120 "$PY" benchmarks/model_step.py --device cuda --repeats 5 | tee "$OUT/model_step.txt"
echo "== the same at four times the batch: does bf16 pay where the kernels are larger?"
timeout 120 "$PY" benchmarks/model_step.py --device cuda --repeats 5 --batch-scale 4 | tee "$OUT/model_step_x4.txt"
echo "== pytest -m gpu"
timeout 120 "$PY" -m pytest -m gpu -p no:cacheprovider -q tests/test_gpu.py tests/test_extract_nvdec.py | tee "$OUT/pytest_gpu.txt"

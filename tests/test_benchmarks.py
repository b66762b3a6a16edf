"""benchmarks/: the GPU script parses and its Python parts run on a CPU; the model path stays light."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

# Runs each script as `python SCRIPT --help` would (as __main__, its folder first on sys.path), one after
# the other in one Python process: each of them imports torch, which then happens once, not once a script.
HELP = """
import contextlib, io, json, runpy, sys, traceback
results = {}
for path in sys.argv[1:]:
    sys.argv, sys.path[0] = [path, "--help"], path.rsplit("/", 1)[0]
    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(path, run_name="__main__")
        except SystemExit as exit:
            code = exit.code or 0
        except Exception:
            code = 1
            traceback.print_exc(file=err)
    results[path.rsplit("/", 1)[1]] = [code, out.getvalue(), err.getvalue()]
print(json.dumps(results))
"""


def helps(scripts) -> dict[str, subprocess.CompletedProcess]:
    """`--help` of each benchmark script: its exit code, its output and its errors."""
    paths = [str(REPO / "benchmarks" / script) for script in scripts]
    run = subprocess.run([sys.executable, "-c", HELP, *paths], capture_output=True, text=True, cwd=REPO, check=True)
    results = json.loads(run.stdout)
    return {script: subprocess.CompletedProcess(script, *results[script]) for script in scripts}


def test_the_gpu_script_parses_and_its_python_parts_import():
    assert subprocess.run(["bash", "-n", str(REPO / "benchmarks" / "gpu.sh")]).returncode == 0
    for script, result in helps(["gpu_extract.py", "model_step.py"]).items():
        assert result.returncode == 0 and "usage:" in result.stdout, (script, result.stderr)


def test_every_benchmark_script_explains_itself():
    scripts = ["decode.py", "extract_speed.py", "ground_batch.py", "ground.py", "train_epoch.py", "proxy.py",
               "ablation.py", "long_paragraphs.py"]  # fmt: skip
    for script, result in helps(scripts).items():
        assert result.returncode == 0 and "usage:" in result.stdout, (script, result.stderr)


def test_the_model_and_c3d_paths_import_neither_ray_nor_spacy_nor_pyav():
    # The GPU machines have none of the three: the GPU script's model and C3D paths must not need them.
    code = (
        "import sys, hscnet, hscnet.model, hscnet.losses, hscnet.data, hscnet.extract.c3d\n"
        "print(sorted(m for m in ('ray', 'spacy', 'av') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_the_gpu_extraction_script_runs_on_a_cpu():
    result = subprocess.run(
        [sys.executable, "benchmarks/gpu_extract.py", "--device", "cpu", "--copies", "2", "--seconds", "1",
         "--workers", "1", "--batch-size", "4"],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("pipeline / the slower stage alone, ratio: ")
    assert any(line.startswith("bound by ") for line in lines)
    assert any(line.startswith("one process, software: ") and "with the scale" in line for line in lines)


@pytest.mark.slow
def test_the_extraction_benchmark_runs_and_ends_with_its_ratio(shared_data):
    result = subprocess.run(
        [sys.executable, "benchmarks/extract_speed.py", "--minutes", "0.02", "--skip-memory", "--sample-clips", "2",
         "--rounds", "1", "--seconds", "2.2"],
        capture_output=True, text=True, cwd=REPO, timeout=600,
        env={**os.environ, "HSCNET_SHARED_DATA": str(shared_data)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("CPU: ") and "bf16 preferred" in lines[0]
    assert any(line.startswith("C3D forward alone, fp32 channels_last_3d: ") for line in lines)
    if (os.cpu_count() or 1) >= 2:  # the denominator includes the rate of the worker's concurrent passes
        assert any("the worker's 2 passes of" in line for line in lines)
    # The run is sized by time: 1.2 s of C3D at its best rate, in copies of 2 clips.
    sized = next(line for line in lines if " copies of charades.mp4 " in line)
    best = float(next(line for line in lines if line.startswith("best: ")).rsplit("(", 1)[1].split()[0])
    assert f"; 0.02 minutes' work at {best:.2f} clips/s" in sized  # C3D, not decoding, bounds it on a CPU
    assert abs(int(sized.split()[0]) - max(2, 1.2 * best / 2)) <= 1  # the rate printed is rounded
    assert lines[-1].startswith("pipeline / best C3D alone clips per second, ratio: ")


@pytest.mark.slow
def test_the_batch_benchmark_gives_the_same_results_as_single_calls_and_a_ratio(small_world, tmp_path):
    folder, _ = small_world
    result = subprocess.run(
        [sys.executable, "benchmarks/ground_batch.py", "--annotations", str(folder / "annotations" / "test.jsonl"),
         "--videos", str(folder / "videos"), "--checkpoint", str(folder / "run" / "last.pt")],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "TMPDIR": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "results identical: yes" in lines
    assert lines[-1].startswith("batch items/s over per-item calls' items/s, ratio: ")
    assert float(lines[-1].rsplit(" ", 1)[1]) > 0
    assert not list(tmp_path.iterdir())  # its working folder is removed


def test_the_long_paragraph_benchmark_refuses_a_wrong_override_before_writing_anything(shared_data, tmp_path):
    store, run_dir = tmp_path / "store", tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "benchmarks/long_paragraphs.py", "--store", str(store), "--run", str(run_dir),
         "loss.align_sentences=2"],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "HSCNET_SHARED_DATA": str(shared_data)},
    )  # fmt: skip
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown config key 'loss.align_sentences'" in lines[0], result.stderr
    assert not store.exists() and not run_dir.exists()

"""The installed package: the wheel's contents, and the commands and the API run from outside the clone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

from hscnet.pipeline import commands

COMMANDS = {
    "hscnet-extract": "hscnet.pipeline.commands:extract_main",
    "hscnet-train": "hscnet.pipeline.commands:train_main",
    "hscnet-eval": "hscnet.pipeline.commands:eval_main",
    "hscnet-ground": "hscnet.pipeline.commands:ground_main",
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel pip builds from a copy of this clone (setuptools builds in the source folder, which must
    stay clean), with this environment's setuptools: nothing is downloaded."""
    source = tmp_path_factory.mktemp("source") / "hscnet"
    leave_out = shutil.ignore_patterns(".*", "build", "demo", "runs", "*.egg-info", "__pycache__")
    shutil.copytree(REPO, source, ignore=leave_out)
    folder = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(folder),
         str(source)],
        check=True, capture_output=True, cwd=folder,
    )  # fmt: skip
    (built,) = folder.glob("hscnet-*.whl")
    return built


def test_the_wheel_installs_one_top_level_module_the_configs_and_the_four_commands(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"hscnet", f"{wheel.name.split('-py')[0]}.dist-info"}
    assert {f"hscnet/{folder}/__init__.py" for folder in ("common", "extract", "pipeline")} <= set(names)
    shipped = {name.removeprefix("hscnet/configs/") for name in names if name.startswith("hscnet/configs/")}
    assert {path.name for path in (REPO / "configs").glob("*.yaml")} <= shipped
    (entry_points,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    declared = dict(line.replace(" ", "").split("=") for line in text.splitlines() if "=" in line)
    assert declared == COMMANDS
    for target in declared.values():  # each names a function that parses its flags
        function = getattr(commands, target.split(":")[1])
        with pytest.raises(SystemExit) as leaving:
            function(["--help"])
        assert leaving.value.code == 0


@pytest.mark.slow
def test_the_installed_commands_and_api_ground_from_a_folder_outside_the_clone(wheel, small_world, tmp_path):
    # A fresh environment holding the wheel alone; torch and the rest are this environment's, reached
    # through a .pth line, so nothing is installed twice.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = venv.glob("lib/python*/site-packages")
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps", "--quiet",
         "--disable-pip-version-check", str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PATH": f"{venv / 'bin'}:/usr/bin:/bin"}
    env.pop("PYTHONPATH", None)

    helped = subprocess.run(["hscnet-extract", "--help"], capture_output=True, text=True, cwd=elsewhere, env=env)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: hscnet-extract")

    folder, splits = small_world
    video = splits["test"][0]["video"]
    clip, paragraph = folder / "videos" / f"{video}.mp4", folder / "paragraphs" / f"{video}.txt"
    checkpoint = folder / "run" / "last.pt"
    grounded = subprocess.run(
        ["hscnet-ground", str(clip), str(paragraph), "--checkpoint", str(checkpoint), "--json", "out.json",
         "--no-progress"],
        capture_output=True, text=True, cwd=elsewhere, env=env,
    )  # fmt: skip
    assert grounded.returncode == 0, grounded.stderr
    command_result = json.loads((elsewhere / "out.json").read_text())

    script = (
        "import json, sys, hscnet\n"
        "from hscnet import Grounder\n"
        "from hscnet.common.paths import CONFIGS\n"
        "result = Grounder.from_checkpoint(sys.argv[1]).ground(sys.argv[2], open(sys.argv[3]).read())\n"
        "print(json.dumps({'module': hscnet.__file__, 'configs': sorted(p.name for p in CONFIGS.glob('*.yaml')),\n"
        "                  'spans': [[s['start'], s['end']] for s in result['sentences']]}))\n"
    )
    api = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script, str(checkpoint), str(clip), str(paragraph)],
        capture_output=True, text=True, cwd=elsewhere, env=env,
    )  # fmt: skip
    assert api.returncode == 0, api.stderr
    found = json.loads(api.stdout.splitlines()[-1])
    assert Path(found["module"]).is_relative_to(site)  # the installed copy, not the clone's
    assert "own-small.yaml" in found["configs"] and "own-large.yaml" in found["configs"]
    assert found["spans"] == [[s["start"], s["end"]] for s in command_result["sentences"]]

"""README.md: every code block runs, so the guide cannot drift from the code.

The Python block runs as written against the test world's checkpoint (laid out where the block
looks for it), each command line's flags must be ones its `--help` offers and its config keys
ones the config takes, `make` targets must exist, and the captions example must read as captions.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import shlex

import pytest
from conftest import REPO

from hscnet.annotations import load_paragraphs
from hscnet.config import load_config

FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def code_blocks(text: str) -> list[tuple[str, str]]:
    return [(match.group(1), match.group(2)) for match in FENCE.finditer(text)]


README_BLOCKS = code_blocks((REPO / "README.md").read_text(encoding="utf-8"))


def command_lines(blocks=README_BLOCKS) -> list[list[str]]:
    """Every shell line of the README's bash blocks as words, its comment cut off."""
    lines = []
    for language, body in blocks:
        if language == "bash":
            lines += [shlex.split(line, comments=True) for line in body.splitlines() if line.strip()]
    return [words for words in lines if words]


@pytest.fixture(scope="module")
def help_texts(entry_point_helps) -> dict[str, str]:
    """`--help` of every command of bin/ (the README's lines must name only these)."""
    for name, done in entry_point_helps.items():
        assert done.returncode == 0, f"bin/{name} --help: {done.stderr[-500:]}"
    return {f"bin/{name}": done.stdout for name, done in entry_point_helps.items()}


def problems_of(words: list[str], help_texts: dict[str, str]) -> list[str]:
    """What is wrong with one README command line, as short phrases (empty when it is right)."""
    command, arguments = words[0], words[1:]
    if command.startswith("hscnet-"):  # the installed bin/ command of that name: the same parser
        command = "bin/" + command.removeprefix("hscnet-")
    if command == "pip":
        return [] if arguments[:1] in (["install"], ["wheel"]) else [f"pip {' '.join(arguments[:1])} is not shown"]
    if command == "make":
        targets = re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(encoding="utf-8"), re.MULTILINE)
        return [f"make has no target {target}" for target in arguments if target not in targets]
    if command not in help_texts:
        return [f"{command} is not a command of bin/"]
    found = []
    for word in arguments:
        flag = word.split("=", 1)[0]
        if flag.startswith("--") and not re.search(re.escape(flag) + r"(?![\w-])", help_texts[command]):
            found.append(f"{command} has no option {flag}")
        if word.startswith("configs/") and not (REPO / word).is_file():
            found.append(f"{word} does not exist")
    if command == "bin/train":
        config = next((arguments[i + 1] for i, w in enumerate(arguments[:-1]) if w == "--config"), None)
        settings = [w for w in arguments if "=" in w and not w.startswith("-")]
        if config and settings:
            try:
                load_config(REPO / config, settings)
            except Exception as error:
                found.append(f"bin/train {' '.join(settings)}: {error}")
    return found


def test_every_command_line_uses_options_and_config_keys_that_exist(help_texts):
    lines = command_lines()
    assert any(words[0] == "bin/extract" for words in lines) and any(words[0] == "make" for words in lines)
    assert [problem for words in lines for problem in problems_of(words, help_texts)] == []
    # And the check fails where a line is wrong:
    assert problems_of(["bin/extract", "--video", "videos/"], help_texts) == ["bin/extract has no option --video"]
    assert problems_of(["bin/train", "--config", "configs/tacos.yaml", "train.learning_rate=1"], help_texts)
    assert problems_of(["make", "demos"], help_texts) == ["make has no target demos"]
    assert problems_of(["hscnet-ground", "--batch", "x", "--frames", "y"], help_texts) == [
        "bin/ground has no option --frames"
    ]


def test_the_captions_example_reads_as_one_paragraph_of_three_sentences(tmp_path):
    examples = [body for language, body in README_BLOCKS if language == "json"]
    assert len(examples) == 1
    (tmp_path / "captions.json").write_text(examples[0], encoding="utf-8")
    (paragraph,) = load_paragraphs(tmp_path / "captions.json")
    assert paragraph.video == "clip" and len(paragraph.sentences) == 3
    assert all(0 <= start < end <= paragraph.duration for start, end in paragraph.timestamps)
    assert json.loads(examples[0])["clip"]["duration"] == paragraph.duration


@pytest.mark.slow
def test_the_python_block_runs_as_written_on_the_test_worlds_checkpoint(small_world, tmp_path):
    folder, splits = small_world
    (block,) = [body for language, body in README_BLOCKS if language == "python"]
    checkpoint = re.search(r'from_checkpoint\("([^"]+)"\)', block).group(1)
    video = re.search(r'ground\("([^"]+)"', block).group(1)
    (tmp_path / checkpoint).parent.mkdir(parents=True)
    os.symlink(folder / "run" / "last.pt", tmp_path / checkpoint)
    os.symlink(folder / "videos" / f"{splits['test'][0]['video']}.mp4", tmp_path / video)
    printed = io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
    finally:
        os.chdir(cwd)
    spans = ast.literal_eval(printed.getvalue())  # the block prints a list of (start, end, text)
    assert [text for _, _, text in spans] == ["A red circle comes in.", "Then it shrinks and leaves."]
    assert all(0 <= start <= end for start, end, _ in spans)

"""bin/: the entry points run from any folder, under the project's interpreter, and only parse arguments."""

from __future__ import annotations

import ast

from conftest import REPO

COMMANDS = ["extract", "train", "eval", "ground"]


def test_each_entry_point_runs_its_help_from_another_folder_without_the_venv_on_path(entry_point_helps):
    assert sorted(entry_point_helps) == sorted(COMMANDS)
    for name, done in entry_point_helps.items():
        assert done.returncode == 0, f"bin/{name}: {done.stderr[-400:]}"
        assert done.stdout.startswith(f"usage: bin/{name}")


def test_each_entry_point_only_parses_arguments_and_calls_one_library_function():
    for name in COMMANDS:
        source = (REPO / "bin" / name).read_text(encoding="utf-8")
        tree = ast.parse(source.split("'''", 2)[2])  # after the sh/python header
        defined = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
        loops = [node for node in ast.walk(tree) if isinstance(node, (ast.For, ast.While))]
        assert defined == [] and loops == [], f"bin/{name} holds logic of its own"
        assert "cli.run(" in source

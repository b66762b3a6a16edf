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
    # bin/<name> calls commands.<name>_main, which the installed hscnet-<name> calls too: one parser each.
    for name in COMMANDS:
        source = (REPO / "bin" / name).read_text(encoding="utf-8")
        body = ast.parse(source.split("'''", 2)[2]).body  # after the sh/python header
        assert [ast.dump(node) for node in body] == [
            ast.dump(ast.parse(f"from hscnet.pipeline.commands import {name}_main").body[0]),
            ast.dump(ast.parse(f'{name}_main(prog="bin/{name}")').body[0]),
        ], f"bin/{name} holds more than its call"
    tree = ast.parse((REPO / "pipeline" / "commands.py").read_text(encoding="utf-8"))
    mains = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    assert [main.name for main in mains] == [f"{name}_main" for name in COMMANDS]
    for main in mains:
        loops = [node for node in ast.walk(main) if isinstance(node, (ast.For, ast.While))]
        runs = [node for node in ast.walk(main) if isinstance(node, ast.Call) and ast.unparse(node.func) == "cli.run"]
        assert loops == [] and len(runs) >= 1, f"{main.name} holds logic of its own"

"""The code's shape: imports point one way, no package imports itself in a circle, signatures stay narrow.

Every import counts, also one inside a function or under TYPE_CHECKING: hiding an import in a
function is how a circle grows unnoticed.
"""

from __future__ import annotations

import ast
import itertools

from conftest import REPO

# The repository's folders, each installed beneath `hscnet` (the model's folder is `hscnet` itself);
# each may import only those before it.
PACKAGES = ["common", "extract", "hscnet", "pipeline"]
LIBRARY = [path for package in PACKAGES for path in sorted((REPO / package).glob("*.py"))]


def module_name(path) -> str:
    name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
    return name if name.startswith("hscnet") else f"hscnet.{name}"


def layer(module: str) -> str:
    """The folder a module of ours lives in: `hscnet.extract.video` is extract/, `hscnet.model` hscnet/."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in PACKAGES else "hscnet"


def imported_modules(path) -> set[str]:
    """Every module of ours `path` imports, wherever in the file the import stands."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}  # `from hscnet.pipeline import cli`
    modules = {module_name(p) for p in LIBRARY}
    return {name for name in found if name in modules}


def import_graph() -> dict[str, set[str]]:
    return {module_name(path): imported_modules(path) - {module_name(path)} for path in LIBRARY}


def test_imports_point_one_way_between_packages():
    order = {package: rank for rank, package in enumerate(PACKAGES)}
    wrong = [
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        for target in targets
        if order[layer(target)] > order[layer(module)]
    ]
    assert wrong == []


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of `graph` as [a, b, ..., a], or [] when there is none."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_no_module_imports_itself_through_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # the check finds one
    assert find_cycle({"a": {"b"}, "b": set()}) == []
    assert find_cycle(import_graph()) == []


def test_ray_is_imported_only_by_the_orchestration_package():
    users = []
    for path in LIBRARY:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            if any(name == "ray" or name.startswith("ray.") for name in names):
                users.append(module_name(path))
    assert users and all(layer(user) == "pipeline" for user in users)


def wide_signatures(source: str, name: str) -> list[str]:
    """Functions with more than six parameters that are neither keyword-only nor grouped (self and cls
    aside), and any with more than eight in all."""
    wide = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        arguments = node.args
        positional = [a.arg for a in itertools.chain(arguments.posonlyargs, arguments.args)]
        positional = [arg for arg in positional if arg not in ("self", "cls")]
        total = len(positional) + len(arguments.kwonlyargs)
        if len(positional) > 6 or total > 8:
            wide.append(f"{name}:{node.lineno} {node.name} ({total} parameters)")
    return wide


def test_no_signature_is_wider_than_a_reader_can_hold():
    assert wide_signatures("def f(a, b, c, d, e, f, g):\n    pass\n", "x.py") == ["x.py:1 f (7 parameters)"]
    assert wide_signatures("def f(a, b, *, c, d, e, f, g, h, i):\n    pass\n", "x.py") == ["x.py:1 f (9 parameters)"]
    assert wide_signatures("def f(self, a, b, c, d, e, f, *, g):\n    pass\n", "x.py") == []
    scripts = [*sorted((REPO / "benchmarks").glob("*.py")), REPO / "tests" / "local_cluster.py"]
    wide = [row for path in LIBRARY + scripts for row in wide_signatures(path.read_text(encoding="utf-8"),
                                                                         str(path.relative_to(REPO)))]  # fmt: skip
    assert wide == []


def bare_imports(source: str) -> list[str]:
    """Imports of a repository folder by its own name (`extract.video`) instead of beneath `hscnet`."""
    names = []
    for node in ast.walk(ast.parse(source)):
        names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
        names += [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
    return [name for name in names if name.split(".")[0] in {"common", "extract", "pipeline"}]


def test_every_import_of_ours_goes_through_the_one_installed_name():
    """The wheel installs only `hscnet`; a bare `import extract` would work in a clone and fail installed."""
    assert bare_imports("import extract.video\nfrom pipeline import cli\nfrom hscnet.extract import c3d\n") == [
        "extract.video",
        "pipeline",
    ]
    sources = [*LIBRARY, *(REPO / "bin").iterdir(), *(REPO / "benchmarks").glob("*.py"), *(REPO / "tests").glob("*.py")]
    bare = [f"{path.relative_to(REPO)}: {name}" for path in sources for name in bare_imports(path.read_text("utf-8"))]
    assert bare == []

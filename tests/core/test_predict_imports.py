"""The prediction package reads bottom up, and no module of the core imports itself in a circle.

Imports are read from the source (ast), so an import inside a function or under TYPE_CHECKING
counts as much as one at the top: a lazy import hides a circle, it does not remove it.
"""

import ast
from pathlib import Path

import napari_labelfree

PACKAGE = Path(napari_labelfree.__file__).parent
PREDICT = "napari_labelfree.core.predict"
# the data flow, bottom first: each module may import only the ones before it (see its __init__)
ORDER = [
    "stages",
    "compile_cache",
    "fast_tiles",
    "pipeline",
    "tiling",
    "tile_advice",
    "tta",
    "schedule",
    "volume",
    "plan",
    "run",
    "blocks",
    "dask_cluster",
    "dask_worker",
    "distributed",
]


def _modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the plugin: dotted name -> (file, is a package)."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _imports(name: str, path: Path, is_pkg: bool, known: set[str]) -> set[str]:
    """The plugin's modules that ``name`` imports anywhere in its source."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # `from pkg import module` imports the module
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {n: _imports(n, p, pkg, known) for n, (p, pkg) in modules.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each a circle of imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return circles


def test_prediction_modules_import_downwards_only():
    graph = _graph()
    modules = {m.rsplit(".", 1)[1] for m in graph if m.startswith(PREDICT + ".")}
    assert modules <= set(ORDER), f"give {modules - set(ORDER)} a place in ORDER (and __init__)"
    assert {"plan", "volume", "tiling", "schedule", "distributed"} <= modules
    assert not graph[PREDICT], "core/predict/__init__.py re-exports nothing"
    upward = []
    order = [m for m in ORDER if m in modules]
    for i, name in enumerate(order):
        for dep in graph[f"{PREDICT}.{name}"]:
            if dep == PREDICT or (
                dep.startswith(PREDICT + ".") and dep[len(PREDICT) + 1 :] not in order[:i]
            ):
                upward.append(f"{name} imports {dep}")
    assert not upward, upward


def test_prediction_modules_define_no_module_getattr():
    # names are imported from their home module, never forwarded by a module __getattr__
    for name in ORDER:
        if not (PACKAGE / "core" / "predict" / f"{name}.py").is_file():
            continue
        tree = ast.parse((PACKAGE / "core" / "predict" / f"{name}.py").read_text(encoding="utf-8"))
        defs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert "__getattr__" not in defs, name


def test_no_import_circles_in_the_core():
    graph = _graph()
    core = {
        n: {d for d in deps if d.startswith("napari_labelfree.core")} for n, deps in graph.items()
    }
    assert _circles({n: d for n, d in core.items() if n.startswith("napari_labelfree.core")}) == []


def test_the_circle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _circles(graph) == [["a", "b", "c"]]

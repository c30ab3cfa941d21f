"""unmix-core's folders are its stages, and imports only point down the stages (docs/architecture.md).

Every import counts, also those inside functions: a lazy import still ties two modules together.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPOSITORY

CORE = REPOSITORY / "packages" / "unmix-core" / "src"
# Lower stages first: a module may import from its own stage and the ones before it.
STAGES = ["config", "data", "models", "separation", "evaluation", "training"]


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(CORE).with_suffix("").parts).removesuffix(".__init__")


def core_imports() -> dict[str, set[str]]:
    """Each unmix.core module and the unmix.core modules it imports."""
    modules = {module_name(path): path for path in CORE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("unmix.core"):
                imported |= {f"{node.module}.{alias.name}" for alias in node.names} & modules.keys()
                imported |= {node.module} & modules.keys()
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names} & modules.keys()
        graph[name] = imported - {name, "unmix.core"}
    return graph


def stage(module: str) -> int | None:
    parts = module.split(".")
    return STAGES.index(parts[2]) if len(parts) > 2 and parts[2] in STAGES else None


def test_imports_point_only_down_the_stages():
    upward = [f"{module} -> {target}" for module, targets in core_imports().items() for target in targets
              if stage(module) is not None and stage(target) is not None and stage(target) > stage(module)]
    assert not upward, upward


def test_the_import_graph_has_no_cycle():
    graph = core_imports()
    finished: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(module):], module]))
        if module in finished:
            return
        for target in sorted(graph[module]):
            visit(target, [*path, module])
        finished.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_every_stage_is_a_folder_of_core():
    folders = {path.name for path in (CORE / "unmix" / "core").iterdir() if (path / "__init__.py").is_file()}
    assert set(STAGES) <= folders

"""The layout is part of the design: these tests keep it honest as the code grows.

- every module of the package is described in docs/architecture.md;
- data flows one way: a module imports only from its own stage or the stages below it;
- no import cycles, counting imports inside functions too;
- modules stay small enough to read in one sitting.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "syncd"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

#: Lowest first. A module may import from its own stage and from the stages before it.
STAGES = (
    "core",
    "config",
    "mapping",
    "store",
    "intake",
    "cobot",
    "sheets",
    "engine",
    "ops",
    "sandbox",
    "commands",
    "cli",
    "__main__",
)
#: The sandbox (emulators and demo) stands beside the product: only commands/ may start it.
SANDBOX_USERS = ("commands", "sandbox")
MAX_MODULE_LINES = 500


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage_of(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "core"


def imports_of(path: Path) -> Iterator[str]:
    """Every syncd module this file imports, wherever the import statement stands."""
    package = module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("syncd"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if not base.startswith("syncd"):
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                is_module = (ROOT / (candidate.replace(".", "/") + ".py")).exists() or (
                    ROOT / candidate.replace(".", "/") / "__init__.py"
                ).exists()
                yield candidate if is_module else base


def test_every_module_is_described_in_the_architecture_doc() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    missing = [
        str(path.relative_to(ROOT))
        for path in modules()
        if path.name != "__init__.py" and f"`{path.relative_to(ROOT)}`" not in text
    ]
    assert missing == [], "describe these modules in docs/architecture.md"


def test_the_architecture_doc_names_no_module_that_is_gone() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    named = {part.strip("`") for part in text.split() if part.startswith("`syncd/")}
    gone = sorted(n for n in named if n.endswith(".py") and not (ROOT / n).exists())
    assert gone == []


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_only_from_its_own_stage_or_below(path: Path) -> None:
    own = stage_of(module_name(path))
    assert own in STAGES, f"{own} is not a stage: add it to STAGES and docs/architecture.md"
    upward = [
        name
        for name in imports_of(path)
        if STAGES.index(stage_of(name)) > STAGES.index(own)
        or (stage_of(name) == "sandbox" and own not in SANDBOX_USERS)
    ]
    assert upward == []


def test_no_import_cycles() -> None:
    graph = {module_name(p): set(imports_of(p)) for p in modules()}
    graph = {
        name: {t for t in targets if t in graph and t != name} for name, targets in graph.items()
    }
    # A package's __init__ is imported on the way to its modules; it imports nothing here.
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == []


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_is_small_enough_to_read(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{lines} lines: split it by concern"

"""The house rules of docs/decisions.md ("Where things are"), read from the code itself.

1. Dependencies point one way, down the layers: ``common`` ← ``fleet`` ← ``updates`` ← ``devices`` ←
   ``alerts`` ← ``demo`` (which seeds everything, subscriptions included) ← ``config``. Every import of
   every module outside tests and migrations, top-level or inside a function, is read from its syntax
   tree; one that goes up a layer fails, naming the file, the line and the import. A lower layer that
   must start work in a higher one enqueues a Celery task by name.
2. ``common`` is a toolkit, not an app: no models, no migrations.
3. No module a person cannot hold in their head: none over ``MAX_LINES`` outside tests and migrations.
"""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
LAYERS = ("common", "fleet", "updates", "devices", "alerts", "demo", "config")
RANK = {name: rank for rank, name in enumerate(LAYERS)}
MAX_LINES = 600
SKIPPED = {".venv", "venv", "var", "node_modules", "site", ".git", "tests", "locale"}


def _modules() -> list[pathlib.Path]:
    return sorted(
        path
        for path in ROOT.rglob("*.py")
        if not SKIPPED & set(path.relative_to(ROOT).parts) and "migrations" not in path.relative_to(ROOT).parts
    )


def _imports(path: pathlib.Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def backward_imports(paths: list[pathlib.Path], root: pathlib.Path = ROOT) -> list[str]:
    """``file:line imports module (layer may not import layer)`` for every import against the layers."""
    offences = []
    for path in paths:
        layer = path.relative_to(root).parts[0].removesuffix(".py")
        if layer not in RANK:
            continue  # bench/, scripts/, manage.py: entry points and tools, they may import anything
        for line, module in _imports(path):
            target = module.split(".")[0]
            if target not in RANK or target == layer:
                continue
            if RANK[target] > RANK[layer]:
                offences.append(f"{path.relative_to(root)}:{line} imports {module} ({layer} may not import {target})")
    return offences


def test_every_import_points_down_the_layers():
    offences = backward_imports(_modules())
    assert not offences, "imports against the layers of docs/decisions.md:\n" + "\n".join(offences)


def test_the_check_names_a_backward_import(tmp_path):
    """The rule itself can fail: a catalogue module importing the devices app is caught and named."""
    (tmp_path / "updates").mkdir()
    bad = tmp_path / "updates" / "selectors.py"
    bad.write_text("def f():\n    from devices.models import Device\n    return Device\n", encoding="utf-8")
    ok = tmp_path / "updates" / "services.py"
    ok.write_text("from fleet.models import Organisation\nfrom common.tasks import enqueue_on_commit\n")
    assert backward_imports([bad, ok], root=tmp_path) == [
        "updates/selectors.py:2 imports devices.models (updates may not import devices)"
    ]


def test_common_is_a_toolkit_without_models():
    common = ROOT / "common"
    assert not (common / "models.py").exists() and not (common / "migrations").exists()
    assert not (common / "apps.py").exists(), "common is not a Django app"


def test_no_module_is_too_long_to_hold_in_one_s_head():
    too_long = {
        str(path.relative_to(ROOT)): lines
        for path in _modules()
        if (lines := path.read_text(encoding="utf-8").count("\n")) > MAX_LINES
    }
    assert not too_long, f"over {MAX_LINES} lines, split them by what they hold: {too_long}"

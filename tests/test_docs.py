"""The manual: docs/ builds with MkDocs in strict mode (a broken link or anchor fails), every page is in the nav,
and README.md stays a front door (issue #13: under 300 lines, the rest in docs/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 300


def nav_pages(nav: list) -> list[str]:
    """The Markdown files named in an MkDocs nav, at any depth ("Title: page.md" or a nested section)."""
    pages: list[str] = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        if isinstance(value, list):
            pages.extend(nav_pages(value))
        elif isinstance(value, str) and not value.startswith(("http://", "https://")):
            pages.append(value)
    return pages


def test_the_manual_builds_in_strict_mode(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    print(result.stdout)
    print(result.stderr)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"


def test_the_readme_is_a_front_door_under_300_lines() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < README_MAX_LINES, f"README.md has {len(lines)} lines: move the detail into docs/"


def test_every_docs_page_is_in_the_nav_and_every_nav_entry_exists() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    docs = ROOT / config.get("docs_dir", "docs")
    in_nav = nav_pages(config["nav"])
    on_disk = {path.relative_to(docs).as_posix() for path in docs.rglob("*.md")}

    assert [page for page in in_nav if not (docs / page).is_file()] == [], "nav entries without a page"
    assert sorted(on_disk - set(in_nav)) == [], "pages missing from mkdocs.yml's nav"
    assert len(in_nav) == len(set(in_nav)), "a page is listed twice in the nav"

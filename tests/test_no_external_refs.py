"""Comments, docstrings and messages stand on their own: no citation of the team's reference notes.

The team keeps notes outside the repository (``shared/spec/models.md``, ``datasets.md``, ``metrics.md``,
``pgn_partition.md``, ``reference_sizes.md``); users never get them, so the shipped sources, the README
and the docs must state the fact or cite the paper / released code / the repository's own docs instead.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("src", "conf", "scripts", "notebooks", "docs", "README.md")
SUFFIXES = {".py", ".pyi", ".yaml", ".yml", ".md", ".rst", ".txt", ".ipynb", ".toml", ".cfg", ".sh", ".json"}
# ``shared/spec`` or ``shared/papers`` paths, and bare note names (``metrics.md §1.4``); a name preceded by a
# path (``docs/metrics.md``) or by other letters (``DENSEPOSE_DATASETS.md``) is another file.
PATTERN = re.compile(
    r"shared/(?:spec|papers)\b|(?<![\w/.-])(?:models|datasets|metrics|pgn_partition|reference_sizes)\.md\b"
)


def scanned_files() -> list[Path]:
    """Tracked files under ``SCANNED`` (git), or every file there when the tree is not a git checkout."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--", *SCANNED], cwd=ROOT, capture_output=True, check=True, timeout=60
        ).stdout.decode()
        files = [ROOT / p for p in out.split("\0") if p]
    except (OSError, subprocess.SubprocessError):
        files = []
    if not files:
        files = [
            p
            for name in SCANNED
            for p in ((ROOT / name).rglob("*") if (ROOT / name).is_dir() else [ROOT / name])
        ]
    return sorted(p for p in files if p.is_file() and p.suffix in SUFFIXES and "__pycache__" not in p.parts)


def find_references(files: list[Path]) -> list[str]:
    hits = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for lineno, line in enumerate(text.splitlines(), 1):
            if PATTERN.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()[:120]}")
    return hits


def test_pattern_catches_citations_and_spares_other_files():
    for cited in (
        "(datasets.md §7.1)",
        "see shared/spec/models.md §4.4",
        "``metrics.md`` §1",
        "pgn_partition.md",
        "(reference_sizes.md)",
        "../shared/papers/corrpm.txt",
    ):
        assert PATTERN.search(cited), cited
    for fine in (
        "docs/task_contract.md",
        "DENSEPOSE_DATASETS.md of detectron2",
        "docs/metrics.md",
        "benchmark.md",
        "CorrPM §3.5",
        "the models.py module",
    ):
        assert not PATTERN.search(fine), fine


def test_scan_covers_the_sources():
    names = {p.relative_to(ROOT).as_posix() for p in scanned_files()}
    assert "README.md" in names and "src/humanparse/metrics/semantic.py" in names
    assert any(n.endswith(".yaml") and n.startswith("conf/") for n in names)


def test_no_reference_notes_cited():
    hits = find_references(scanned_files())
    assert not hits, "citations of reference notes users do not have:\n" + "\n".join(hits)

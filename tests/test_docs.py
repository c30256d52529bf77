"""The project's Markdown documents link only to files and headings that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = sorted(p for p in [REPO / "README.md", *REPO.glob("docs/*.md"), *REPO.glob("*/README.md"),
                                *REPO.glob("*/*/README.md")]
                   if not any(part.startswith(".") or part == "runs" for part in p.relative_to(REPO).parts))
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but - and _ dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def prose(document: Path) -> str:
    """A Markdown file's text without its fenced code blocks."""
    return FENCE.sub("", document.read_text())


def anchors(document: Path) -> set[str]:
    """The anchors of a Markdown file's headings (outside code blocks)."""
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", prose(document), re.M)}


def local_links(document: Path) -> list[str]:
    """Links in a Markdown file that point inside the repository (no scheme), outside code blocks."""
    return [t for t in LINK.findall(prose(document)) if not re.match(r"[a-z]+:", t)]


def broken_links(document: Path) -> list[str]:
    """The document's local links whose file, or heading anchor in a Markdown file, does not exist."""
    broken: list[str] = []
    headings: dict[Path, set[str]] = {}  # each linked Markdown file's anchors, read once
    for link in local_links(document):
        path, _, anchor = link.partition("#")
        target = (document.parent / path).resolve() if path else document
        if not target.exists():
            broken.append(f"{link} (no such file)")
            continue
        if anchor and target.suffix == ".md":
            if target not in headings:
                headings[target] = anchors(target)
            if anchor not in headings[target]:
                broken.append(f"{link} (no heading with that anchor)")
    return broken


def test_slug_follows_github() -> None:
    assert slug("The paper model (`--model paper`) and the paper's ablation") == (
        "the-paper-model---model-paper-and-the-papers-ablation")
    assert slug("What limits the default (measured)") == "what-limits-the-default-measured"


def test_a_missing_anchor_is_caught(tmp_path: Path) -> None:
    (tmp_path / "b.md").write_text("## Other `heading`\n")
    (tmp_path / "a.md").write_text("# Start\n\n[ok](#start) [bad](#nowhere) [there](b.md#other-heading) "
                                   "[gone](c.md) [wrong](b.md#start)\n```\n[in code](#ignored)\n```\n")
    assert broken_links(tmp_path / "a.md") == ["#nowhere (no heading with that anchor)", "c.md (no such file)",
                                                "b.md#start (no heading with that anchor)"]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_links_resolve(document: Path) -> None:
    broken = broken_links(document)
    assert not broken, f"{document.relative_to(REPO)}: " + "; ".join(broken)

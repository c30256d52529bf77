"""The package's layers (docs/architecture.md): no module imports a layer above its own.

    cli, commands, batch, display, console, card        the command line
    serve/                                              `ainn serve`: the local web page
    eval/                                               `ainn evaluate`: scoring and reports
    train/                                              training, export of a bundle
    pipeline, render, results, reading                  load a bundle, convert, read strength
    bundle, bundle_files, limits, hub                   bundles on disk and on the Hub
    models/                                             the nn.Modules
    corpora/                                            `ainn data`: corpus downloads and the training layout
    speech_encoder                                      the reader's frozen Whisper encoder (runs models/)
    errors, emotions, files, chunks, audio, mel, pitch, prosody, rate, device, memory, controls, ct2_file,
    measure                                             the ground floor

No two modules import each other, directly or round a loop (`test_no_import_circles`), and no module is over
400 lines (`test_no_module_is_over_400_lines`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ainn_cli"
COMMAND_LINE = ("cli", "commands", "batch", "display", "console", "card", "rich", "typer")
BUNDLES = ("bundle", "bundle_files", "limits", "hub")
GROUND = ("errors", "emotions", "files", "chunks", "audio", "mel", "pitch", "prosody", "rate", "device", "memory",
          "audio_stream", "controls", "ct2_file", "measure")
PIPELINE = ("pipeline", "render", "results", "reading", "streaming", "stream_convert", "stream_strength")
ABOVE_MODELS = (*COMMAND_LINE, "serve", "eval", "train", "corpora", *PIPELINE, *BUNDLES)
# module (or package) -> what it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    **{name: (*ABOVE_MODELS, "models") for name in GROUND},
    "models": (*ABOVE_MODELS, "speech_encoder"),
    "speech_encoder": ABOVE_MODELS,
    **{name: (*COMMAND_LINE, "serve", "eval", "train", *PIPELINE) for name in BUNDLES},
    **{name: (*COMMAND_LINE, "serve", "eval", "train") for name in PIPELINE},
    "train": ("cli", "commands", "batch", "display", "card", "typer", "serve", "eval", *PIPELINE, "hub"),
    "eval": ("cli", "commands", "typer", "serve", "train"),
    # `ainn serve`: the web page beside the command line; it shares its wording (`display`), not its commands
    "serve": ("cli", "commands", "typer", "eval", "train", "corpora"),
    # `ainn data`: downloads and the training layout; like train, it may show progress (console), nothing else above
    "corpora": ("cli", "commands", "batch", "display", "card", "typer", "serve", "eval", "train", *PIPELINE, *BUNDLES,
                "models"),
}


def module_name(file: Path, package: Path = PACKAGE) -> str:
    parts = file.relative_to(package).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(file: Path) -> set[str]:
    """Top-level names of ainn_cli modules (and rich/typer) that `file` imports, inside functions too."""
    found = set()
    for node in ast.walk(ast.parse(file.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.startswith("ainn_cli."):
                found.add(name.removeprefix("ainn_cli."))
            elif name.split(".")[0] in ("rich", "typer"):
                found.add(name.split(".")[0])
    return found


def rule_for(module: str) -> tuple[str, ...]:
    return FORBIDDEN.get(module) or FORBIDDEN.get(module.split(".")[0], ())


@pytest.mark.parametrize("file", sorted(PACKAGE.rglob("*.py")), ids=lambda f: module_name(f) or "__init__")
def test_no_module_imports_a_layer_above_its_own(file: Path) -> None:
    module, forbidden = module_name(file), rule_for(module_name(file))
    bad = sorted(n for n in imported(file) if n.split(".")[0] in forbidden and n.split(".")[0] != module.split(".")[0])
    assert not bad, f"{module} imports {bad}, a layer above it (see docs/architecture.md)"


def test_every_module_has_a_layer() -> None:
    """A new module must be placed: in a package with a rule, in FORBIDDEN, or in the command line."""
    top = {module_name(f).split(".")[0] for f in PACKAGE.rglob("*.py")} - {"", "__main__"}
    unplaced = sorted(top - set(FORBIDDEN) - set(COMMAND_LINE))
    assert not unplaced, f"modules without a layer: {unplaced}"


def test_the_rule_catches_an_upward_import(tmp_path: Path) -> None:
    file = tmp_path / "recognizer.py"
    file.write_text("from ainn_cli.pipeline import Pipeline\nimport rich\n")
    assert imported(file) == {"pipeline.Pipeline", "pipeline", "rich"}
    assert "pipeline" in rule_for("models.recognizer") and "rich" in rule_for("models.recognizer")


def test_every_package_folder_is_a_package() -> None:
    folders = {f.parent for f in PACKAGE.rglob("*.py") if "__pycache__" not in f.parts}
    assert all((folder / "__init__.py").is_file() for folder in folders), sorted(map(str, folders))


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (inside functions and under TYPE_CHECKING too). A name such as
    `commands.convert.ConvertOptions` counts as its longest prefix that is a module; the root package (`ainn_cli`,
    for `__version__` and the lazy Python API) is no edge."""
    files = {module_name(f, package): f for f in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, file in files.items():
        targets = set()
        for name in imported(file):
            parts = name.split(".")
            prefixes = (".".join(parts[:n]) for n in range(len(parts), 0, -1))
            target = next((p for p in prefixes if p in files and p), None)
            if target is not None and target != module and name.split(".")[0] not in ("rich", "typer"):
                targets.add(target)
        graph[module] = targets
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circles() -> None:
    """No two modules import each other, directly or round a loop (TYPE_CHECKING imports count: a circle of types
    is a circle of concepts)."""
    assert not circles(import_graph(PACKAGE)), circles(import_graph(PACKAGE))


def test_the_circle_check_catches_a_loop(tmp_path: Path) -> None:
    package = tmp_path / "ainn_cli"
    (package / "train").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "train" / "__init__.py").write_text("")
    (package / "train" / "nets.py").write_text("from ainn_cli.train.losses import stage1_losses\n")
    (package / "train" / "losses.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ainn_cli.train.nets import Nets\n")
    (package / "batch.py").write_text("from ainn_cli import __version__\nfrom ainn_cli.audio import x\n")
    (package / "audio.py").write_text("def f():\n    from ainn_cli.batch import plan\n")
    (package / "display.py").write_text("from ainn_cli.batch import plan\n")
    assert circles(import_graph(package)) == [["audio", "batch"], ["train.losses", "train.nets"]]


@pytest.mark.parametrize("file", sorted(PACKAGE.rglob("*.py")), ids=lambda f: module_name(f) or "__init__")
def test_no_module_is_over_400_lines(file: Path) -> None:
    """A file over 400 lines is split by concern (../shared/STYLE.md)."""
    assert len(file.read_text().splitlines()) <= 400, f"{module_name(file)}: split it by concern"

"""The package's data flow runs one way (docs/design.md): no module imports one above it.

Layers, bottom up: shared helpers (errors, files, config, plots) -> data -> model ->
the engines beside training (generate, measures, training) -> the verbs -> cli. A
module may import its own layer or any below it, never above; lazy imports inside
functions count too (they are still dependencies).
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "speechgen"

LAYERS = [
    {"errors", "files", "config", "plots"},
    {"data"},
    {"model"},
    {"generate", "measures", "training"},
    {"train", "evaluate", "sample", "reconstruct", "say", "intelligibility"},
    {"cli"},
]


def layer_of(module):
    """The layer index of ``speechgen.<module>`` (its first dotted part decides)."""
    head = module.split(".")[0]
    for rank, names in enumerate(LAYERS):
        if head in names:
            return rank
    raise AssertionError(f"speechgen.{module} is in no layer of tests/test_layout.py; place it")


def imports_of(path):
    """``speechgen``-relative names of every module ``path`` imports (``data.corpus``...)."""
    package = list(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])  # its package
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            name = ".".join(base + ([node.module] if node.module else []))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("speechgen"):
            name = node.module
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("speechgen")]
            if not names:
                continue
            name = names[0]
        else:
            continue
        rest = name.split(".", 1)[1] if "." in name else ""
        if rest:
            found.add(rest)
    return found


def test_no_module_imports_one_above_it():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        if own.endswith("__init__"):
            own = own[: -len(".__init__")] or None
        if own is None:
            continue
        for target in imports_of(path):
            if layer_of(target) > layer_of(own):
                wrong.append(f"speechgen.{own} imports speechgen.{target}")
    assert not wrong, "\n".join(wrong)


def test_the_walker_sees_relative_and_lazy_imports():
    # Else the test above would prove nothing.
    model = PACKAGE / "model" / "model.py"
    assert "config" in imports_of(model) and "model.heads" in imports_of(model)
    assert layer_of("training.callbacks") > layer_of("model.model")
    assert "training.distribute" not in imports_of(PACKAGE / "model" / "multi_worker.py")
    assert "model.multi_worker" in imports_of(PACKAGE / "training" / "distribute.py")  # a lazy import

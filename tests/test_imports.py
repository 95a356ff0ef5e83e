"""The package's data flow runs one way: no companion module imports one that sits above it."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "companion"

# From the bottom up; a module may import its own layer and the layers below it.
LAYERS = [
    ["companion.settings", "companion.arguments", "companion.lab_settings"],
    ["companion", "companion.data"],
    ["companion.gaussians", "companion.mixture", "companion.priors"],
    ["companion.losses"],
    ["companion.models"],
    ["companion.training"],
    ["companion.checkpoints", "companion.introspect"],
    ["companion.evaluation", "companion.latent", "companion.latent_arithmetic"],
    ["companion.plots"],
    ["companion.widgets"],
    ["companion.checks"],
    ["companion.doctor", "companion.__main__"],   # the command line looks at everything
]


def layer(module: str) -> int:
    """The layer of a module: that of its longest listed prefix (the package itself exactly)."""
    best = None
    for rank, names in enumerate(LAYERS):
        for name in names:
            if module == name or (name != "companion" and module.startswith(name + ".")):
                if best is None or len(name) > len(best[1]):
                    best = (rank, name)
    if best is None:
        raise LookupError(f"{module} is in no layer: add it to LAYERS in {__file__}")
    return best[0]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def companion_imports(path: Path) -> set[str]:
    """Every companion module the file imports, also inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "companion"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "companion":
            for a in node.names:   # `from companion import settings` imports a module
                sub = f"{node.module}.{a.name}"
                found.add(sub if (PACKAGE.parent / sub.replace(".", "/")).with_suffix(".py").exists()
                          or (PACKAGE.parent / sub.replace(".", "/")).is_dir() else node.module)
    return found


def import_graph() -> dict[str, set[str]]:
    return {module_name(p): companion_imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_no_module_imports_upward():
    upward = [f"{module} (layer {layer(module)}) imports {target} (layer {layer(target)})"
              for module, targets in import_graph().items() for target in sorted(targets)
              if layer(target) > layer(module)]
    assert not upward, "\n".join(upward)


def test_the_walk_sees_imports_inside_functions_and_from_package_imports(tmp_path):
    source = tmp_path / "x.py"
    source.write_text("from companion import settings\n"
                      "def f():\n    from companion.data import fetch\n    import companion.plots\n")
    assert companion_imports(source) == {"companion.settings", "companion.data", "companion.plots"}


@pytest.mark.parametrize("module, rank", [("companion.models.conv", 4), ("companion", 1),
                                          ("companion.evaluation.likelihood", 7)])
def test_layer_of_a_submodule_is_that_of_its_package(module, rank):
    assert layer(module) == rank

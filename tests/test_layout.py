"""The package's folders are its layers: imports only point down, and Ray stays in its layer.

Read from the source with `ast`, so the rule holds for imports inside functions too.
"""

import ast
from pathlib import Path

import fmnist_ray

PACKAGE = Path(fmnist_ray.__file__).parent

# Lower numbers are lower layers: a module may import its own folder or any lower layer.
LAYERS = {
    "errors": 0, "config": 0, "__init__": 0,
    "results": 1,
    "spec": 2, "training": 2,
    "model_export": 3, "report": 3, "cluster": 3,
    "sweep": 4,
    "cli": 5,
    "__main__": 6,
}
RAY_LAYERS = {"cluster", "sweep"}
TORCH_FREE = {"errors", "config", "results", "spec", "report"}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[str]:
    """Every module `path` imports, at any depth, as dotted names."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module == "fmnist_ray":
                names += [f"fmnist_ray.{alias.name}" for alias in node.names]
            else:
                names.append(node.module)
    return names


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        yield ".".join(relative.parts), path


def test_every_module_lies_in_a_known_layer():
    unknown = {_layer(module) for module, _ in _modules()} - set(LAYERS)
    assert not unknown, f"add {sorted(unknown)} to LAYERS in {__file__}"


def test_imports_only_point_down():
    upward = []
    for module, path in _modules():
        here = _layer(module)
        for name in _imports(path):
            if not name.startswith("fmnist_ray.") or name == "fmnist_ray.__version__":
                continue
            there = _layer(name)
            if there != here and LAYERS[there] >= LAYERS[here]:
                upward.append(f"{module} imports {name}")
    assert not upward, "\n".join(upward)


def test_ray_is_imported_only_by_the_ray_layer_and_torch_not_by_the_core_below_it():
    wrong = []
    for module, path in _modules():
        roots = {name.split(".")[0] for name in _imports(path)}
        if "ray" in roots and _layer(module) not in RAY_LAYERS:
            wrong.append(f"{module} imports ray")
        if "torch" in roots and _layer(module) in TORCH_FREE:
            wrong.append(f"{module} imports torch")
    assert not wrong, "\n".join(wrong)

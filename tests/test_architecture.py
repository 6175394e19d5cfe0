"""The layer picture of docs/architecture.md, enforced: imports go one way, without cycles.

Read from the source (ast), not by importing it: every ``import mabsa...`` / ``from mabsa...``
statement, at module level or inside a function.
"""

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "mabsa"

#: Left to right: a module may import its own layer and layers to its left, never to its right.
LAYERS = [
    ("foundation", ["mabsa.errors", "mabsa.embedded"]),
    ("data", ["mabsa.data", "mabsa.metrics", "mabsa.tagging"]),
    ("processing", ["mabsa.processing"]),
    ("encoders", ["mabsa.encoders"]),
    ("perception", ["mabsa.perception"]),
    ("modules", ["mabsa.modules"]),
    ("models", ["mabsa.models"]),
    ("engine", ["mabsa.engine"]),
    ("api", ["mabsa.api"]),
    ("serve", ["mabsa.serve"]),
    ("cli", ["mabsa.cli"]),
]

#: Entry points that start a right-hand layer from a left-hand name, lazily.
ENTRY_POINTS = {
    ("mabsa", "mabsa.api"),  # mabsa.load(): the package root hands over to the API when called
    ("mabsa.serve.__main__", "mabsa.cli.serve"),  # python -m mabsa.serve
}

#: Modules that may import mabsa modules inside functions: the CLI loads each subcommand's
#: module (and torch) only when that subcommand runs, so ``mabsa --help`` stays fast. (The
#: package root's lazy ``mabsa.load`` is an entry point: it is listed there.)
LAZY_IMPORTERS = ("mabsa.cli",)


def module_map(src: Path) -> dict[str, Path]:
    out = {}
    for path in src.rglob("*.py"):
        parts = list(path.relative_to(src.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def mabsa_imports(modules: dict[str, Path]) -> list[tuple[str, str, bool, int]]:
    """(importer, imported module, at module level?, line) for every mabsa import."""

    def target(name: str) -> str:  # the module a dotted name lives in
        while name not in modules:
            name = name.rsplit(".", 1)[0]
        return name

    found = []
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text(), str(path))

        def visit(node, top, module=module, package=package):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.Import):
                    names = [a.name for a in child.names]
                elif isinstance(child, ast.ImportFrom):
                    base = child.module or ""
                    if child.level:
                        root = package.split(".")[: len(package.split(".")) - child.level + 1]
                        base = ".".join(root + ([base] if base else []))
                    names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in child.names]
                else:
                    inner = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                    visit(child, top and not inner, module, package)
                    continue
                for name in names:
                    if (name == "mabsa" or name.startswith("mabsa.")) and target(name) != module:
                        found.append((module, target(name), top, child.lineno))

        visit(tree, True)
    return found


def layer(module: str) -> int:
    if module.endswith(".__main__"):
        return len(LAYERS) - 1  # `python -m` entry points are command lines
    if module == "mabsa":
        return 0
    best = [
        (len(prefix), i)
        for i, (_, prefixes) in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    assert best, f"{module} is in no layer: add it to LAYERS (and docs/architecture.md)"
    return max(best)[1]


def right_to_left(imports) -> list[str]:
    return [
        f"{a} (line {line}) imports {b}: {LAYERS[layer(a)][0]} -> {LAYERS[layer(b)][0]}"
        for a, b, _, line in imports
        if layer(b) > layer(a) and (a, b) not in ENTRY_POINTS
    ]


def cycles(imports) -> list[str]:
    graph = defaultdict(set)
    for a, b, top, _ in imports:
        if top:
            graph[a].add(b)
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    found = []

    def walk(node, stack):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                walk(nxt, stack + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    return found


def lazy_imports(imports) -> list[str]:
    return [
        f"{a} (line {line}) imports {b} inside a function"
        for a, b, top, line in imports
        if not top and (a, b) not in ENTRY_POINTS and not any(a == m or a.startswith(m + ".") for m in LAZY_IMPORTERS)
    ]


def private_imports(modules: dict[str, Path]) -> list[str]:
    """``from mabsa.<package> import _name`` in another package: a private name is its own
    package's business (an alias such as ``import x as _x`` is not one)."""

    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])

    found = []
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("mabsa."):
                for a in node.names:
                    if a.name.startswith("_") and package(node.module or "") != package(module):
                        found.append(f"{module} (line {node.lineno}) imports {node.module}.{a.name}")
    return found


MODULES = module_map(SRC)
IMPORTS = mabsa_imports(MODULES)


def test_every_module_has_a_layer():
    for module in MODULES:
        layer(module)


def test_no_import_goes_right_to_left():
    assert not (wrong := right_to_left(IMPORTS)), "\n".join(wrong)


def test_module_level_imports_have_no_cycle():
    assert not (found := cycles(IMPORTS)), "\n".join(found)


def test_function_level_imports_of_mabsa_only_where_named():
    assert not (lazy := lazy_imports(IMPORTS)), "\n".join(lazy)


def test_no_package_imports_another_packages_private_names():
    assert not (found := private_imports(MODULES)), "\n".join(found)


def test_the_checks_catch_planted_violations(tmp_path):
    pkg = tmp_path / "mabsa"
    for name, text in {
        "__init__.py": "",
        "models/__init__.py": "",
        "models/a.py": "from mabsa.engine import trainer\nfrom mabsa.models import b\n",
        "models/b.py": "from mabsa.models.a import thing\n\ndef f():\n    from mabsa.data import x\n",
        "engine/__init__.py": "",
        "engine/trainer.py": "",
        "data/__init__.py": "",
        "data/x.py": "_secret = 1\n",
        "engine/y.py": "from mabsa.data.x import _secret\nfrom mabsa.engine.trainer import _own\n",
    }.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    planted = mabsa_imports(module_map(pkg))
    assert right_to_left(planted) == ["mabsa.models.a (line 1) imports mabsa.engine.trainer: models -> engine"]
    assert cycles(planted) == ["mabsa.models.a -> mabsa.models.b -> mabsa.models.a"]
    assert lazy_imports(planted) == ["mabsa.models.b (line 4) imports mabsa.data.x inside a function"]
    assert private_imports(module_map(pkg)) == ["mabsa.engine.y (line 1) imports mabsa.data.x._secret"]

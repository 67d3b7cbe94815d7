"""Check the import graph and device neutrality of the audiograd package.

Every module of audiograd/ is read with `ast` (nothing is imported) and held to four rules.
Each violation prints one line, `path:line: [rule] message`; the exit status is 1 if there
is any, 0 (with a one-line summary) if there is none.

[stages]   The engine is a stack of stages (STAGES below, bottom first). A module may import
           modules of its own stage or of lower stages, never of a higher one. Every module
           must be placed in a stage, so a new top-level module or package needs an entry.
           All import statements count, lazy ones inside functions too, except those under
           `if TYPE_CHECKING:`. Relative imports are resolved against the importing package.
[plug-ins] Each folder devices/<name>/ is one device's plug-in. Only devices/registry.py may
           import a device folder (a plug-in may import its own folder). Everything else uses
           the modules at the root of devices/: the interface, the registry and what all
           devices share (errors, the kernel cache).
[cycles]   Packages (top-level subpackages and modules, with each device folder a node of its
           own, devices.<name>) import each other without cycles. Each edge between two
           packages of one strongly connected component lies on a cycle: one import making
           it is reported, with the shortest cycle through it.
[device-neutral]  Outside devices/ no string constant names a device ("cpu", "cuda", "cuda:<n>"
           or the name of a device folder; docstrings and f-string text don't count), no code
           compares `.device` with a string, and the engine stages (HOST_TEST_SCOPE) don't ask
           whether a buffer is on the host with isinstance(..., np.ndarray).

Run `python tools/check_layers.py` to check the repository this script sits in, or
`--root DIR` to check the audiograd/ package under DIR.
"""
import argparse
import ast
import sys
from pathlib import Path

PACKAGE = "audiograd"

# The stages, bottom to top: (name, paths relative to audiograd/). A path ending in "/" is a
# folder and covers everything under it; the first matching stage wins.
STAGES = (
    ("base", ("config.py", "dtypes.py", "errors.py", "audio/")),
    ("graph", ("graph/",)),
    ("schedule", ("schedule/",)),
    ("codegen", ("codegen/",)),
    ("devices", ("devices/",)),
    ("engine", ("engine/",)),
    ("tensor", ("tensor/",)),
    ("library", ("nn/", "optim/", "dsp/", "losses/", "jit.py")),
    ("apps", ("data/", "models/", "training/", "examples/", "preencode/", "cli/", "__init__.py", "__main__.py")),
)

# Where isinstance(..., np.ndarray) is a test for "is this buffer on the host?".
HOST_TEST_SCOPE = ("graph/", "schedule/", "engine/", "jit.py", "optim/", "nn/")


def matches(rel, paths):
    """Whether a path relative to audiograd/ is one of `paths` or lies in one of its folders."""
    return any(rel.startswith(p) if p.endswith("/") else rel == p for p in paths)


def stage_of(rel):
    """The index in STAGES of the stage a module belongs to, or None if it is not placed."""
    return next((i for i, (_, paths) in enumerate(STAGES) if matches(rel, paths)), None)


def device_folder(rel):
    """The device plug-in (name of the devices/<name>/ folder) a path lies in, or None."""
    parts = rel.split("/")
    return parts[1] if parts[0] == "devices" and len(parts) > 2 else None


def package_of(rel):
    """The node of the package graph a module belongs to: its top-level package or module."""
    if "/" not in rel:
        return PACKAGE if rel == "__init__.py" else rel[:-len(".py")]
    folder = device_folder(rel)
    return f"devices.{folder}" if folder else rel.split("/")[0]


def locate(pkg, name):
    """The path relative to `pkg` of the audiograd module or package `name`, or None if absent."""
    base = "/".join(name.split(".")[1:])
    if not base:
        return "__init__.py"
    if (pkg / f"{base}.py").is_file():
        return f"{base}.py"
    if (pkg / base).is_dir():
        return f"{base}/__init__.py" if (pkg / base / "__init__.py").is_file() else f"{base}/"
    return None


def is_type_checking(test):
    """Whether an `if` test is `TYPE_CHECKING` or `typing.TYPE_CHECKING`."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"
            or isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(pkg, rel, tree):
    """(line, module name, path) of each audiograd module that a module imports, lazily or not.

    Imports under `if TYPE_CHECKING:` are left out. `from X import a` imports X.a if that is a
    module or package, X otherwise; imports of modules missing from the tree are left out.
    """
    exempt = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and is_type_checking(node.test)
              for stmt in node.body for n in ast.walk(stmt)}
    package = (PACKAGE + "/" + rel).split("/")[:-1]  # a package's __init__ lies in the package itself
    found = []
    for node in ast.walk(tree):
        if id(node) in exempt:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.split(".")[0] == PACKAGE]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level > len(package):
                    continue  # climbs above audiograd/
                base = package[:len(package) - node.level + 1] + (node.module.split(".") if node.module else [])
            else:
                base = node.module.split(".")
            if base[0] != PACKAGE:
                continue
            names = []
            for alias in node.names:
                sub = ".".join(base + [alias.name])
                names.append(sub if alias.name != "*" and locate(pkg, sub) else ".".join(base))
        else:
            continue
        for name in dict.fromkeys(names):
            target = locate(pkg, name)
            if target is not None:
                found.append((node.lineno, name, target))
    return found


def import_violations(rel, found):
    """Broken [stages] and [plug-ins] rules among a module's imports (line, message)."""
    out = []
    stage = stage_of(rel)
    for line, name, target in found:
        up = stage_of(target)
        if stage is not None and up is not None and up > stage:
            out.append((line, f"[stages] imports {name}: stage {STAGES[up][0]} ({up}) is above "
                              f"{STAGES[stage][0]} ({stage})"))
        folder = device_folder(target)
        if folder and folder != device_folder(rel) and rel != "devices/registry.py":
            out.append((line, f"[plug-ins] imports {name} of device folder {folder}: "
                              f"only devices/registry.py may name a device folder"))
    return out


def strongly_connected(graph):
    """Tarjan's algorithm: the strongly connected components of {node: set of successors}."""
    index, low, stack, components = {}, {}, [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while v not in component:
                component.add(stack.pop())
            components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return components


def shortest_path(graph, start, goal):
    """The shortest list of nodes leading from start to goal in {node: set of successors}."""
    paths = {start: [start]}
    queue = [start]
    for v in queue:
        if v == goal:
            return paths[v]
        for w in sorted(graph.get(v, ())):
            if w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)


def cycle_violations(edges):
    """[cycles]: (path, line, message) for each package edge {(a, b): (path, line, name)} on a cycle.

    An edge lies on a cycle when both its ends are in one strongly connected component; the
    message names the shortest cycle through it.
    """
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    out = []
    for component in strongly_connected(graph):
        for (a, b), (path, line, name) in edges.items():
            if len(component) > 1 and a in component and b in component:
                cycle = " -> ".join([a] + shortest_path(graph, b, a))
                out.append((path, line, f"[cycles] {a} imports {b} ({name}) on the package cycle {cycle}"))
    return out


def is_device_name(value, folders):
    """Whether a string names a device: "cpu", "cuda", "cuda:<n>" or a device folder."""
    return (value in ("cpu", "cuda") or value in folders
            or value.startswith("cuda:") and value[len("cuda:"):].isdecimal())


def device_violations(rel, tree, folders):
    """Broken [device-neutral] rules in a module outside devices/ (line, message)."""
    out = []
    skip = set()  # docstrings, f-string text and strings already reported in a .device comparison
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skip.add(id(first.value))
        elif isinstance(node, ast.JoinedStr):
            skip.update(id(v) for v in node.values if isinstance(v, ast.Constant))
        elif isinstance(node, ast.Compare):
            operands = [node.left] + node.comparators
            for op, a, b in zip(node.ops, operands, operands[1:]):
                for attr, const in ((a, b), (b, a)):
                    if (isinstance(op, (ast.Eq, ast.NotEq)) and isinstance(attr, ast.Attribute)
                            and attr.attr == "device" and isinstance(const, ast.Constant)
                            and isinstance(const.value, str)):
                        skip.add(id(const))
                        out.append((node.lineno, f"[device-neutral] compares .device with {const.value!r}"))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance"
              and len(node.args) == 2 and matches(rel, HOST_TEST_SCOPE)):
            kinds = node.args[1].elts if isinstance(node.args[1], ast.Tuple) else [node.args[1]]
            if any(isinstance(k, ast.Attribute) and k.attr == "ndarray" and isinstance(k.value, ast.Name)
                   and k.value.id in ("np", "numpy") for k in kinds):
                out.append((node.lineno, "[device-neutral] isinstance(..., np.ndarray) tests for a host buffer"))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
                and is_device_name(node.value, folders)):
            out.append((node.lineno, f"[device-neutral] device name {node.value!r}"))
    return out


def find_modules(pkg):
    """The paths, relative to the package dir, of all its modules, sorted."""
    return sorted(p.relative_to(pkg).as_posix() for p in pkg.rglob("*.py") if "__pycache__" not in p.parts)


def check(root):
    """All broken rules in the audiograd/ package under `root`, as sorted `path:line: message` lines.

    The same finding twice on one line (say two "cpu" strings) is reported once.
    """
    pkg = Path(root) / PACKAGE
    devices = pkg / "devices"
    folders = {d.name for d in devices.iterdir() if d.is_dir() and d.name != "__pycache__"} if devices.is_dir() else set()
    found, edges = [], {}
    for rel in find_modules(pkg):
        path = f"{PACKAGE}/{rel}"
        try:
            tree = ast.parse((pkg / rel).read_bytes(), filename=path)
        except SyntaxError as e:
            found.append((path, e.lineno or 1, f"[parse] {e.msg}"))
            continue
        if stage_of(rel) is None:
            found.append((path, 1, "[stages] not placed in any stage"))
        deps = imports(pkg, rel, tree)
        found += [(path, line, msg) for line, msg in import_violations(rel, deps)]
        if not rel.startswith("devices/"):
            found += [(path, line, msg) for line, msg in device_violations(rel, tree, folders)]
        for line, name, target in deps:
            a, b = package_of(rel), package_of(target)
            if a != b:
                edges.setdefault((a, b), (path, line, name))
    found += cycle_violations(edges)
    return [f"{path}:{line}: {msg}" for path, line, msg in sorted(set(found))]


def main(argv=None):
    """Check the package, print the broken rules or a summary, and return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="the directory holding the audiograd/ package (default: this repository)")
    args = parser.parse_args(argv)
    if not (args.root / PACKAGE).is_dir():
        parser.error(f"no {PACKAGE}/ package under {args.root}")
    violations = check(args.root)
    for line in violations:
        print(line)
    if violations:
        print(f"{len(violations)} layering violations", file=sys.stderr)
        return 1
    print(f"{PACKAGE}: {len(find_modules(args.root / PACKAGE))} modules in {len(STAGES)} stages, "
          "no layering violations")
    return 0


if __name__ == "__main__":
    sys.exit(main())

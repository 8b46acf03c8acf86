"""The package keeps the shape the README describes: commands over capabilities over shared ground."""

import ast
import os
import re

from conftest import ROOT

PACKAGE = os.path.join(ROOT, "emfix")
# One module per command's work; each may use the shared ground (and snapshot, the net under every
# repair), never another capability.
CAPABILITIES = {"validate", "cleanup", "jsonfix", "export", "importer", "migrate", "doctor", "optimize", "demo",
                "undo", "upgrade", "transform", "repair"}


def modules():
    for folder, _dirs, files in os.walk(PACKAGE):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                yield dotted[:-len(".__init__")] if dotted.endswith(".__init__") else dotted, path


def imports_of(dotted, path):
    """(module imported, names imported) for every import of an emfix module, relative ones resolved."""
    package = dotted if path.endswith("__init__.py") else dotted.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("emfix"):
                continue
            names = [a.name for a in node.names]
            if node.module is None:  # `from . import common`: each name is a module
                found.extend((target + "." + name, []) for name in names)
            else:
                found.append((target, names))
        elif isinstance(node, ast.Import):
            found.extend((a.name, []) for a in node.names if a.name.startswith("emfix"))
    return found


def test_no_module_imports_a_private_name_of_another():
    offenders = [(dotted, target, name) for dotted, path in modules() for target, names in imports_of(dotted, path)
                 for name in names if name.startswith("_") and not name.startswith("__")]
    assert offenders == []


def test_no_command_module_imports_another_command():
    offenders = []
    for dotted, path in modules():
        if not dotted.startswith("emfix.commands.") or dotted == "emfix.commands.common":
            continue
        for target, _names in imports_of(dotted, path):
            if target.startswith("emfix.commands") and target not in ("emfix.commands", "emfix.commands.common"):
                offenders.append((dotted, target))
    assert offenders == []


def test_no_capability_imports_another_capability():
    offenders = []
    for dotted, path in modules():
        name = dotted.split(".")[-1]
        if dotted != "emfix." + name or name not in CAPABILITIES:
            continue
        for target, _names in imports_of(dotted, path):
            other = target.split(".")[1] if target.count(".") >= 1 else ""
            if other in CAPABILITIES and other != name:
                offenders.append((dotted, target))
    assert offenders == []


def test_readme_layout_names_every_module_and_only_those():
    readme = open(os.path.join(ROOT, "README.md")).read()
    layout = readme.split("## Layout", 1)[1]
    listed = set(re.findall(r"`(emfix/[\w/]+(?:\.py)?)`", layout))
    present = {os.path.relpath(path, ROOT).replace(os.sep, "/") for _dotted, path in modules()}
    present |= {"emfix/backends/", "emfix/commands/", "emfix/snapshot/"}
    assert listed == present, (sorted(present - listed), sorted(listed - present))


def test_the_commands_wiring_is_visible_to_tools():
    """Each command imports the library modules it uses by ordinary import statements (inside the function
    that needs one, so a command starts quickly), never by a string: drawings, linters and this file see
    every command above what it uses."""
    for dotted, path in modules():
        if not dotted.startswith("emfix.commands.") or dotted in ("emfix.commands.common", "emfix.commands.argvalues"):
            continue
        text = open(path).read()
        assert "importlib" not in text and "lazy_module" not in text, dotted
        library = [t for t, _names in imports_of(dotted, path) if not t.startswith("emfix.commands")
                   and t not in ("emfix", "emfix.errors")]
        assert library, "%s imports no library module: where does its work happen?" % dotted

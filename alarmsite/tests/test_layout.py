"""The layout holds: the wiring (alarmsite/) is imported by nothing, the building blocks in
core/ import no app, imports follow the alarm path one way (docs/ARCHITECTURE.md), no module
imports itself back through others (an import cycle, counting imports inside functions too),
and no import hides inside a function to dodge one."""

import ast
from pathlib import Path

import grimp

APPS = ["accounts", "alarms", "configuration", "devices", "escalation", "notifications", "oncall",
        "responders"]  # fmt: skip
PACKAGES = [*APPS, "alarmsite", "core", "observability"]
# Where an import inside a function is the framework's way: an app's `ready()` (the registry
# must be loaded first). The wiring (alarmsite/) is not checked: its process hooks import once
# settings are loaded.
IMPORTS_IN_FUNCTIONS_ALLOWED = ("apps.py",)
ROOT = Path(__file__).resolve().parents[2]
# The alarm path, from where a request arrives to the provider's call: each layer may import
# the ones below it, never one above, directly or through others.
ALARM_PATH = [
    ("alarms.api", "alarms.ingest", "alarms.drills", "responders"),
    ("alarms.sources",),
    ("alarms.lifecycle",),
    ("alarms.engine",),
    ("notifications.delivery",),
    ("notifications.transports",),
]
# What the alarm path reads (people, devices, policies, rotas, roles, figures) reaches none of
# it but the transports' registry (a channel's kinds). Their admin pages, views and URL confs
# are edges, as the API is: they may call into the path.
BENEATH_THE_PATH = ["accounts", "devices", "escalation.models", "escalation.routing",
                    "notifications.messages", "notifications.models", "observability",
                    "oncall"]  # fmt: skip
EDGES = (".admin", ".admin_site", ".views", ".urls")


def project_graph() -> tuple[grimp.ImportGraph, list[str]]:
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False, cache_dir=None)
    modules = sorted(m for m in graph.modules if ".tests" not in m and ".migrations" not in m)
    return graph, modules


def cycles(graph, modules) -> list[set[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in modules:
                continue
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(group)

    for module in modules:
        if module not in index:
            visit(module)
    return found


def test_the_building_blocks_import_no_app_and_not_the_wiring():
    graph, modules = project_graph()
    core = [m for m in modules if m.split(".")[0] == "core"]

    imported = {
        (module, name)
        for module in core
        for name in graph.find_modules_directly_imported_by(module)
        if name.split(".")[0] in [*APPS, "alarmsite"]
    }

    assert imported == set()


def test_nothing_imports_the_wiring():
    graph, modules = project_graph()

    importers = {
        (module, name)
        for module in modules
        if module.split(".")[0] != "alarmsite"
        for name in graph.find_modules_directly_imported_by(module)
        if name.split(".")[0] == "alarmsite"
    }

    assert importers == set()


def within(modules, names: list[str]) -> list[str]:
    """The modules that are these, or inside these packages."""
    return [m for m in modules if any(m == name or m.startswith(f"{name}.") for name in names)]


def climbs(graph, lower: list[str], higher: list[str]) -> list[tuple]:
    """The chains by which a module of `lower` reaches one of `higher`."""
    return [
        chain
        for low in lower
        for high in higher
        if (chain := graph.find_shortest_chain(importer=low, imported=high)) is not None
    ]


def test_imports_follow_the_alarm_path_one_way():
    graph, modules = project_graph()
    layers = [within(modules, layer) for layer in ALARM_PATH]
    beneath = [m for m in within(modules, BENEATH_THE_PATH) if not m.endswith(EDGES)]

    for n, higher in enumerate(layers):
        for lower in layers[n + 1 :]:
            assert climbs(graph, lower, higher) == []
    assert climbs(graph, beneath, sum(layers[:-1], [])) == []


def test_no_import_cycle():
    graph, modules = project_graph()

    assert cycles(graph, set(modules)) == []


def test_no_import_hides_inside_a_function():
    hidden = []
    for package in [*APPS, "core", "observability"]:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).parts
            if (
                "tests" in parts
                or "migrations" in parts
                or path.name in IMPORTS_IN_FUNCTIONS_ALLOWED
            ):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    hidden += [
                        f"{path.relative_to(ROOT)}:{inner.lineno}"
                        for inner in ast.walk(node)
                        if isinstance(inner, ast.Import | ast.ImportFrom)
                    ]

    assert hidden == []

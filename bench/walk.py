"""How far one request travels through the code: the project files a Yealink key press crosses
from the request to the stored alarm, and those an alarm crosses from its due step to the sent
message. Prints, for each walk, the files in the order first entered, how often each is
entered from another file, and how often a call climbs back up the import graph (a call from a
module into one that imports it, directly or through others).

Its own database on this machine's PostgreSQL:

    python bench/walk.py
"""

import ast
import asyncio
import sys
import threading
from collections import Counter
from pathlib import Path

from stack import ROOT, Sink, child_env, configure, create_database, migrate

database_url, redis_url, run_dir = configure(
    "walk",
    "postgres://postgres@127.0.0.1:5432/alarmbroker_bench_walk",
    "redis://127.0.0.1:6379/14",
)


class Recorder:
    """Calls between project files while a walk runs, in every thread. Installed before the
    application is imported, so the threads it starts (the group commit's) are watched too."""

    def __init__(self):
        self.lock = threading.Lock()
        self.walk = None

    def profile(self, frame, event, arg):
        walk = self.walk
        if walk is None or event != "call":
            return
        callee = project_file(frame.f_code.co_filename)
        if callee is None:
            return
        caller, back = None, frame.f_back
        while back is not None and caller is None:
            caller = project_file(back.f_code.co_filename)
            back = back.f_back
        with self.lock:
            if callee not in walk.order:
                walk.order.append(callee)
            if caller and caller != callee:
                walk.moves.append((caller, callee))


RECORDER = Recorder()
threading.setprofile(RECORDER.profile)
sys.setprofile(RECORDER.profile)

from channels.testing import HttpCommunicator  # noqa: E402

from alarms import engine  # noqa: E402
from alarms.models import Alarm  # noqa: E402
from alarmsite.asgi import application  # noqa: E402
from devices.models import Device, Person, Room, Site  # noqa: E402
from escalation.models import EscalationPolicy, EscalationStep  # noqa: E402
from notifications.delivery import sending  # noqa: E402
from notifications.models import Delivery, NotificationChannel  # noqa: E402

# What is not the project's own code on the path.
SKIPPED = ("tests", "bench", "migrations", ".venv")


def project_file(filename: str) -> str | None:
    path = Path(filename)
    try:
        relative = path.resolve().relative_to(ROOT)
    except ValueError:
        return None
    if relative.suffix != ".py" or relative.parts[0] in SKIPPED or "tests" in relative.parts:
        return None
    return str(relative)


def module_of(relative: str) -> str:
    parts = list(Path(relative).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports at module level (not inside functions)."""
    files = {module_of(str(p.relative_to(ROOT))): p for p in ROOT.rglob("*.py")
             if project_file(str(p))}  # fmt: skip
    graph = {}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        imported = set()
        for node in ast.parse(path.read_text()).body:
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(filter(None, [".".join(anchor), base]))
                names = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for name in names:
                while name and name not in files:
                    name = name.rpartition(".")[0]
                if name and name != module:
                    imported.add(name)
        graph[module] = imported
    return graph


def reaches(graph, start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module == goal:
            return True
        if module not in seen:
            seen.add(module)
            todo.extend(graph.get(module, ()))
    return False


class Walk:
    """The files entered, in order, and every call from one project file into another."""

    def __init__(self):
        self.order: list[str] = []
        self.moves: list[tuple[str, str]] = []

    def __enter__(self):
        RECORDER.walk = self
        return self

    def __exit__(self, *exc):
        RECORDER.walk = None

    def report(self, title: str, graph) -> None:
        entries = Counter(callee for _, callee in self.moves)
        climbs = [(a, b) for a, b in self.moves
                  if reaches(graph, module_of(b), module_of(a))]  # fmt: skip
        print(f"\n{title}: {len(self.order)} files, {len(self.moves)} calls between files, "
              f"{len(climbs)} climbs back up the import graph")  # fmt: skip
        for path in self.order:
            print(f"  {path}  (entered {entries[path]}x)")
        for caller, callee in sorted(set(climbs)):
            print(f"  climb: {caller} -> {callee} ({climbs.count((caller, callee))}x)")


def main() -> None:
    create_database(database_url, fresh=True)
    migrate(child_env())
    graph = import_graph()
    sink = Sink()
    site = Site.objects.create(name="Walk")
    room = Room.objects.create(site=site, name="Reception")
    alice = Person.objects.create(name="Alice", email="alice@example.org")
    hook = NotificationChannel.objects.create(name="Walk hook", kind="webhook",
                                              config={"url": sink.url})  # fmt: skip
    policy = EscalationPolicy.objects.create(name="Walk")
    step = EscalationStep.objects.create(policy=policy, order=0, delay_seconds=0, methods=["email"])
    step.persons.add(alice)
    step.channels.add(hook)
    phone = Device.objects.create(name="Walk phone", kind="yealink", room=room,
                                  default_policy=policy)  # fmt: skip
    token = phone.issued_token

    async def press():
        path = f"/v1/yealink/alarm?token={token}"
        headers = [(b"host", b"127.0.0.1")]
        return await HttpCommunicator(application, "GET", path, b"", headers).get_response(20)

    def step_and_send(alarm):
        Alarm.objects.filter(pk=alarm.pk).update(next_escalation_at=alarm.created_at)
        engine.run_due_step(alarm.pk)
        [message] = Delivery.objects.filter(alarm=alarm, channel=hook)
        sending.attempt(message.pk)
        assert Delivery.objects.get(pk=message.pk).status == "sent"

    # Each walk once untraced: imports and caches are warm, as in a server that has run a while.
    assert asyncio.run(press())["status"] == 200
    step_and_send(Alarm.objects.get())
    Alarm.objects.all().delete()

    with Walk() as walk:
        answer = asyncio.run(press())
    assert answer["status"] == 200, answer
    walk.report("A Yealink key press, from the request to the stored alarm", graph)
    with Walk() as walk:
        step_and_send(Alarm.objects.get())
    walk.report("An alarm from its due step to the sent message", graph)
    sink.close()


if __name__ == "__main__":
    main()

"""What resolving who is on call costs: a schedule with 3 layers, 20 participants and 50
overrides, asked at random instants of the next 8 weeks. Prints, in microseconds, the median,
99th percentile and maximum of each way it is asked:

- evaluate: the rules, rotations and overrides at one instant (the core of every answer);
- answer, cold: who and until when each stays on, as a step's timeline needs it, nothing kept;
- step, storm: a step's schedule resolved again and again at one instant (the answer kept),
  inside one configuration version as the engine's batches run;
- who_is_on_call: the public function, its configuration number read from Redis each time.

Its own database on this machine's PostgreSQL:

    python bench/oncall.py [--samples N]
"""

import argparse
import random
import statistics
import time
from datetime import time as clock
from datetime import timedelta

from stack import child_env, configure, create_database, migrate

database_url, redis_url, run_dir = configure(
    "oncall",
    "postgres://postgres@127.0.0.1:5432/alarmbroker_bench_oncall",
    "redis://127.0.0.1:6379/13",
)

from django.utils import timezone  # noqa: E402

from core.config_cache import one_version  # noqa: E402
from devices.models import Person  # noqa: E402
from oncall import steps, who  # noqa: E402
from oncall.models import (  # noqa: E402
    Override,
    Rotation,
    RotationMember,
    Schedule,
    ScheduleRule,
)
from oncall.plans import plans  # noqa: E402

LAYERS, PARTICIPANTS, OVERRIDES = 3, 20, 50


def build() -> Schedule:
    people = [Person.objects.create(name=f"Nurse {n:02d}") for n in range(PARTICIPANTS)]
    today = timezone.localdate()
    days = Rotation.objects.create(name="Days", time_zone="Europe/Berlin", start_date=today,
                                   handoff_time=clock(7), shift_unit="days")  # fmt: skip
    nights = Rotation.objects.create(name="Nights", time_zone="Europe/Berlin", start_date=today,
                                     handoff_time=clock(19), shift_unit="hours",
                                     shift_length=12)  # fmt: skip
    for index, person in enumerate(people):
        RotationMember.objects.create(rotation=days if index < 12 else nights, person=person,
                                      position=index)  # fmt: skip
    ward = Schedule.objects.create(name="Ward", time_zone="Europe/Berlin")
    rules = [
        dict(layer=0, rotation=days, days="mon-fri", start_time=clock(7), end_time=clock(19)),
        dict(layer=0, rotation=nights, start_time=clock(19), end_time=clock(7)),
        dict(layer=1, person=people[0], days="sat,sun", start_time=clock(7), end_time=clock(19)),
        dict(layer=1, person=people[1], days="sat,sun", start_time=clock(7), end_time=clock(19)),
        dict(layer=2, person=people[2], active_from=today + timedelta(days=20),
             active_until=today + timedelta(days=22)),
    ]  # fmt: skip
    for rule in rules:
        ScheduleRule.objects.create(schedule=ward, **rule)
    start = timezone.now()
    for n in range(OVERRIDES):  # a swap every day or so, none overlapping for one person
        begins = start + timedelta(hours=26 * n + 3)
        Override.objects.create(schedule=ward, kind="replace", person=people[(n + 5) % 20],
                                replaces=people[n % 20], starts_at=begins,
                                ends_at=begins + timedelta(hours=10))  # fmt: skip
    return ward


def measure(call, instants) -> dict:
    spent = []
    for at in instants:
        began = time.perf_counter()
        call(at)
        spent.append((time.perf_counter() - began) * 1e6)
    spent.sort()
    return {
        "median": statistics.median(spent),
        "p99": spent[int(len(spent) * 0.99) - 1],
        "max": spent[-1],
    }


def storm(call, instants) -> dict:
    with one_version():
        return measure(call, instants)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=5000)
    args = parser.parse_args()
    create_database(database_url, fresh=True)
    migrate(child_env())
    ward = build()
    plan = plans()[("schedule", ward.pk)]
    layers = len(plan.layers)
    now = timezone.now()
    random.seed(21)
    instants = [now + timedelta(seconds=random.uniform(0, 8 * 7 * 86400))
                for _ in range(args.samples)]  # fmt: skip

    def cold(at):
        plan.last_answer = None
        return who.computed(plan, at)

    step = {"schedule_ids": [ward.pk], "person_ids": [], "channel_ids": []}
    storm_at = instants[0]
    rows = [
        ("evaluate", measure(plan.evaluate, instants)),
        ("answer, cold", measure(cold, instants)),
        ("step, storm", storm(lambda at: steps.resolve(step, storm_at), instants)),
        (
            "who_is_on_call",
            measure(lambda at: who.who_is_on_call("schedule", ward.pk, at), instants),
        ),  # fmt: skip
    ]
    print(f"on call: {layers} layers, {PARTICIPANTS} participants, {OVERRIDES} overrides, "
          f"{args.samples} instants in 8 weeks (µs)")  # fmt: skip
    print(f"{'':16} {'median':>8} {'p99':>8} {'max':>8}")
    for name, figures in rows:
        print(f"{name:16} {figures['median']:8.1f} {figures['p99']:8.1f} {figures['max']:8.1f}")


if __name__ == "__main__":
    main()

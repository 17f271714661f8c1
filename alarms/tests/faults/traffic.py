"""Traffic for fault scenarios: alarms raised over HTTP as a device raises them, in a burst or
as a steady stream whose device tries again after a 503's Retry-After, as it should."""

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests


@dataclass
class Raise:
    """One alarm a device tried to raise: the answer to each try (None: no answer at all)."""

    started: float  # time.monotonic() of the first try
    answers: list[int | None] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    tried_at: list[float] = field(default_factory=list)  # time.monotonic() of each try
    alarm_id: str | None = None


def raise_alarm(
    base_url: str, token: str, title: str, give_up_at: float | None = None, dedup_key: str = ""
) -> Raise:
    """POST /v1/alarms/raise until it is accepted; without `give_up_at` (monotonic) once. With
    a `dedup_key`, each try carries it, as a device's does: an alarm stored by a try whose
    answer was lost (a node or the database gone mid-request) is the one the next try finds."""
    result = Raise(started=time.monotonic())
    body = {"title": title, **({"dedup_key": dedup_key} if dedup_key else {})}
    while True:
        started = time.monotonic()
        response = None
        try:
            response = requests.post(
                f"{base_url}/v1/alarms/raise", json=body,
                headers={"Authorization": f"Bearer {token}"}, timeout=30,
            )  # fmt: skip
        except requests.RequestException:
            pass
        result.answers.append(response.status_code if response is not None else None)
        result.tried_at.append(started)
        result.seconds.append(time.monotonic() - started)
        if response is not None and response.status_code in (200, 201):
            result.alarm_id = response.json()["alarm_id"]
            return result
        if give_up_at is None or time.monotonic() >= give_up_at:
            return result
        retry_after = response.headers.get("Retry-After") if response is not None else None
        time.sleep(min(float(retry_after or 1), 5))


def burst(base_url: str, token: str, count: int, threads: int = 4) -> list[Raise]:
    """`count` alarms at once from `threads` devices' worth of connections."""
    with ThreadPoolExecutor(threads) as pool:
        titles = [f"Fault scenario alarm {n}" for n in range(count)]
        return list(pool.map(lambda title: raise_alarm(base_url, token, title), titles))


class Stream:
    """Alarms at a steady rate until stopped, each tried until accepted (or `patience` seconds
    passed): a slow or refused answer never slows the stream."""

    def __init__(
        self, base_url: str, token: str, per_second: float, patience: float = 60,
        dedup: bool = False,
    ):  # fmt: skip
        self.base_url, self.token, self.dedup = base_url, token, dedup
        self.interval, self.patience = 1 / per_second, patience
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(32)
        self._futures = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "Stream":
        self._thread.start()
        return self

    def _run(self) -> None:
        n = 0
        started = time.monotonic()
        while not self._stop.is_set():
            give_up_at = time.monotonic() + self.patience
            title = f"Fault scenario stream {n}"
            self._futures.append(
                self._pool.submit(
                    raise_alarm,
                    self.base_url,
                    self.token,
                    title,
                    give_up_at,
                    f"stream-{n}" if self.dedup else "",
                )  # fmt: skip
            )
            n += 1
            self._stop.wait(max(0.0, started + n * self.interval - time.monotonic()))

    def stop(self) -> list[Raise]:
        """Stop raising, wait for every alarm still being tried, return them all."""
        self._stop.set()
        self._thread.join()
        raises = [future.result() for future in self._futures]
        self._pool.shutdown()
        return raises


def accepted(raises: list[Raise]) -> list[str]:
    return [r.alarm_id for r in raises if r.alarm_id]


def answers(raises: list[Raise]) -> str:
    """Every answer the devices got, e.g. "201 x120, 503 x14"."""
    seen = Counter("none" if a is None else a for r in raises for a in r.answers)
    return ", ".join(f"{status} x{n}" for status, n in sorted(seen.items(), key=str))

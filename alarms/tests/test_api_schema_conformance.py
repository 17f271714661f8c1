"""The API answers as its schema (/v1/schema) says. Schemathesis reads the schema the web process
serves (daphne, as in production) and for every operation sends a few requests made from it, with
valid credentials where the operation takes them, and checks each answer: a status the schema
documents, a body and content type as documented, never a 500. A few examples per operation
keep the run to seconds."""

from dataclasses import dataclass

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.models import ApiToken
from alarms import lifecycle
from alarms.timeline import SYSTEM
from conftest import free_port, wait_until
from devices.models import Device

pytestmark = pytest.mark.django_db(transaction=True)

# Requests made per operation: from data the schema allows, and from data it does not (which must
# be refused as documented, never with a 500).
EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 6}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]  # fmt: skip


@pytest.fixture
def web(process_env, start_process, tmp_path) -> str:
    """The web process (daphne, the device fast path in front of Django) on the test database,
    with no limit of requests a minute in the way."""
    port = free_port()
    env = process_env(VAR_DIR=tmp_path, LOG_LEVEL="WARNING", API_TOKEN_RATE_PER_MINUTE=10**6,
                      ACK_RATE_PER_MINUTE=10**6)  # fmt: skip
    start_process(["-m", "alarmsite.serve", "-b", "127.0.0.1", "-p", str(port),
                   "alarmsite.asgi:application"], env, log_name="web")  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _answers(f"{base}/healthz"), timeout=30)
    return base


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


@dataclass(frozen=True)
class Credentials:
    operator: str  # a user API token of the Operators role
    device: str  # a generic device's token
    phone: str  # a Yealink phone's
    alertmanager: str
    pagerduty: str
    metrics: str
    opsgenie: str
    cap: str
    alarm_id: str  # an open alarm, for the operations on one alarm


@pytest.fixture
def credentials(make_device, make_user) -> Credentials:
    tokens = {
        kind: make_device(f"{kind} device", kind=kind, rate_limit_per_minute=1_000_000)[1]
        for kind in (Device.Kind.GENERIC, Device.Kind.YEALINK, Device.Kind.ALERTMANAGER,
                     Device.Kind.PAGERDUTY, Device.Kind.METRICS, Device.Kind.OPSGENIE,
                     Device.Kind.CAP)
    }  # fmt: skip
    _, operator = ApiToken.issue(make_user("operator", role="Operators"), "schema run")
    alarm = lifecycle.raise_alarm(source="api", dedup_key="k", title="Fire", actor=SYSTEM).alarm
    return Credentials(
        operator=operator, device=tokens[Device.Kind.GENERIC], phone=tokens[Device.Kind.YEALINK],
        alertmanager=tokens[Device.Kind.ALERTMANAGER], pagerduty=tokens[Device.Kind.PAGERDUTY],
        metrics=tokens[Device.Kind.METRICS], opsgenie=tokens[Device.Kind.OPSGENIE],
        cap=tokens[Device.Kind.CAP],
        alarm_id=str(alarm.pk),
    )  # fmt: skip


def authorize(case, credentials: Credentials) -> None:
    """Give the case the credentials its operation takes, where it takes them."""
    path, method = case.operation.path, case.operation.method.upper()
    if path in ("/v2/enqueue", "/v1/integrations/pagerduty"):
        if isinstance(case.body, dict):
            case.body["routing_key"] = credentials.pagerduty
        return
    if path.startswith(("/v2/alerts", "/v2/heartbeats")):
        case.headers = {**(case.headers or {}), "Authorization": f"GenieKey {credentials.opsgenie}"}
        return
    if path == "/v1/yealink/alarm" or (path == "/v1/devices/heartbeat" and method == "GET"):
        token = credentials.phone if path == "/v1/yealink/alarm" else credentials.device
        case.query = {**(case.query or {}), "token": token}
        return
    token = {
        "/v1/alarms/raise": credentials.device,
        "/v1/alarms/clear": credentials.device,
        "/v1/devices/heartbeat": credentials.device,
        "/v1/integrations/alertmanager": credentials.alertmanager,
        "/v1/metrics": credentials.metrics,
        "/v1/metrics/batch": credentials.metrics,
        "/v1/cap": credentials.cap,
    }.get(path, credentials.operator)
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
    if "id" in (case.path_parameters or {}):
        case.path_parameters["id"] = credentials.alarm_id


def test_every_answer_is_one_the_schema_describes(web, credentials):
    schema = schemathesis.openapi.from_url(f"{web}/v1/schema")
    failures = {}
    for found in schema.get_all_operations():
        operation = found.ok()
        for mode in EXAMPLES:
            try:
                send_examples(operation, mode, web, credentials)
            except Exception as exc:  # a check that failed, with the request that reproduces it
                failures[f"{operation.label} ({mode.value})"] = exc
    assert not failures, "\n\n".join(f"{label}: {exc}" for label, exc in failures.items())


def send_examples(operation, mode: GenerationMode, base: str, credentials: Credentials) -> None:
    """Send the mode's EXAMPLES requests made from the operation's schema; raise at the first
    answer that is not as the schema says."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES[mode], derandomize=True, deadline=None, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))  # fmt: skip
    def examples(case):
        authorize(case, credentials)
        case.call_and_validate(base_url=base, checks=CHECKS, timeout=20)

    examples()


def test_an_empty_multipart_body_gets_the_apis_json_400(web, credentials):
    """Twisted, under daphne, parsed multipart bodies itself and answered one without parts
    with a bare 400: no body, no Content-Type."""
    response = requests.post(
        f"{web}/v1/alarms/raise",
        data=b"--x--\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=x",
                 "Authorization": f"Bearer {credentials.device}"},
        timeout=10,
    )  # fmt: skip

    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"error": "invalid input",
                               "fields": {"title": ["This field is required."]}}  # fmt: skip

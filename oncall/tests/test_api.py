"""The on-call API: who is on call now and at any instant, a rota's stretches, and overrides
that operators write for anyone and people for their own shifts."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiToken
from oncall import history
from oncall.models import Override

from .making import schedule

pytestmark = pytest.mark.django_db


@pytest.fixture
def ward(alice, bob):
    return schedule(dict(person=alice, name="Day"), name="Ward")


@pytest.fixture
def call(client, make_user):
    tokens = {}

    def call(method, path, role="Operators", user=None, **body):
        if (role, user) not in tokens:
            user = user or make_user(f"u{len(tokens)}", role=role)
            tokens[(role, user)] = ApiToken.issue(user, "test")[1]
        return getattr(client, method)(
            path, body or None, content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {tokens[(role, user)]}",
        )  # fmt: skip

    return call


def iso(at) -> str:
    return at.isoformat().replace("+00:00", "Z")


def test_who_is_on_call_now_by_name_or_id(ward, alice, call):
    for asked in ("Ward", str(ward.pk)):
        answer = call("get", f"/v1/oncall?schedule={asked}", role="Viewers").json()
        [one] = answer["on_call"]
        assert (one["name"], one["nobody"], one["recorded"]) == ("Ward", False, False)
        assert one["people"] == [{"person_id": alice.pk, "name": "Alice", "why": "Day",
                                  "until": None}]  # fmt: skip


def test_the_past_is_answered_from_the_record(ward, call):
    then = timezone.now() - timedelta(hours=2)
    history.record(then)
    history.record(then + timedelta(hours=1))
    ward.rules.all().delete()
    answer = call("get", f"/v1/oncall?schedule=Ward&at={iso(then + timedelta(minutes=5))}")
    [one] = answer.json()["on_call"]
    assert one["recorded"] and [p["name"] for p in one["people"]] == ["Alice"]
    [now] = call("get", "/v1/oncall?schedule=Ward").json()["on_call"]
    assert now["nobody"] and not now["recorded"]


@pytest.mark.parametrize(
    "query, status, message",
    [("schedule=Nowhere", 404, "no schedule 'Nowhere'"),
     ("schedule=Ward&at=tomorrow", 400, "at: an ISO 8601 instant with its offset"),
     ("schedule=Ward&at=2026-12-24T19:00:00", 400, "at: an ISO 8601 instant with its offset")],
)  # fmt: skip
def test_wrong_questions_get_json_errors(ward, call, query, status, message):
    response = call("get", f"/v1/oncall?{query}")
    assert response.status_code == status
    assert response.json()["error"].startswith(message)


def test_devices_and_strangers_cannot_read_rotas(ward, client, make_device):
    _, token = make_device("Panic button")
    assert client.get("/v1/oncall", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 403
    assert client.get("/v1/oncall").status_code in (401, 403)


def test_shifts_of_a_week(ward, call):
    start = timezone.now()
    response = call("get", f"/v1/oncall/shifts?schedule=Ward&from={iso(start)}")
    [rota] = response.json()
    assert [p["name"] for p in rota["stretches"][0]["people"]] == ["Alice"]
    too_long = call("get", f"/v1/oncall/shifts?schedule=Ward&from={iso(start)}"
                           f"&to={iso(start + timedelta(days=90))}")  # fmt: skip
    assert too_long.status_code == 400
    assert too_long.json() == {"error": "to: after from, and at most 62 days later"}


def test_an_operator_adds_an_override_and_its_checks_apply(ward, alice, bob, call):
    start = timezone.now() + timedelta(hours=1)
    body = dict(schedule=ward.pk, kind="replace", person=bob.pk, replaces=alice.pk, note="swap",
                starts_at=iso(start), ends_at=iso(start + timedelta(hours=12)))  # fmt: skip
    created = call("post", "/v1/oncall/overrides", **body)
    assert created.status_code == 201, created.json()
    assert created.json()["created_by"].startswith("u")
    [answer] = call("get", f"/v1/oncall?schedule=Ward&at={iso(start + timedelta(hours=1))}").json()[
        "on_call"]  # fmt: skip
    assert answer["people"][0]["name"] == "Bob"
    assert answer["people"][0]["why"] == "covers Alice (swap)"
    again = call("post", "/v1/oncall/overrides", **body)
    assert again.status_code == 400
    assert "overlaps another override" in str(again.json()["fields"])
    backwards = call("post", "/v1/oncall/overrides", **{**body, "ends_at": iso(start)})
    assert backwards.status_code == 400
    listed = call("get", "/v1/oncall/overrides?schedule=" + str(ward.pk), role="Viewers").json()
    assert [o["note"] for o in listed["results"]] == ["swap"]


def test_people_give_away_their_own_shifts_and_only_theirs(ward, alice, bob, carol_login, call):
    carol, user = carol_login
    start = timezone.now() + timedelta(hours=2)
    mine = dict(schedule=ward.pk, kind="replace", person=bob.pk, replaces=carol.pk,
                starts_at=iso(start), ends_at=iso(start + timedelta(hours=3)))  # fmt: skip
    created = call("post", "/v1/oncall/overrides", role=None, user=user, **mine)
    assert created.status_code == 201, created.json()
    # Taking Alice's shift, or adding herself, is not hers to decide.
    for theirs in ({**mine, "person": carol.pk, "replaces": alice.pk},
                   {**mine, "kind": "add", "person": carol.pk, "replaces": None}):  # fmt: skip
        theirs.update(starts_at=iso(start + timedelta(days=1)),
                      ends_at=iso(start + timedelta(days=2)))  # fmt: skip
        refused = call("post", "/v1/oncall/overrides", role=None, user=user, **theirs)
        assert refused.status_code == 400
        assert "only of your own shifts" in str(refused.json()["fields"])
    moved = call("patch", f"/v1/oncall/overrides/{created.json()['id']}", role=None, user=user,
                 replaces=alice.pk)  # fmt: skip
    assert moved.status_code == 400
    other = Override.objects.create(schedule=ward, kind="add", person=bob, starts_at=start,
                                    ends_at=start + timedelta(hours=1))  # fmt: skip
    gone = call("delete", f"/v1/oncall/overrides/{other.pk}", role=None, user=user)
    assert gone.status_code == 403
    assert call("delete", f"/v1/oncall/overrides/{created.json()['id']}", role=None,
                user=user).status_code == 204  # fmt: skip


def test_the_read_only_views_refuse_writes(ward, call):
    assert call("post", "/v1/oncall").status_code == 403
    assert call("post", "/v1/oncall/shifts").status_code == 403


@pytest.fixture
def carol_login(make_person, make_user):
    user = make_user("carol")
    return make_person("Carol", user=user), user

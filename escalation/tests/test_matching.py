"""Rule matching as tables: label matchers as Alertmanager writes them, and time windows
(across midnight, across daylight-saving changes)."""

from datetime import UTC, datetime, time

import pytest
from django.core.exceptions import ValidationError

from core.label_matchers import all_match, parse
from core.time_windows import holds, parse_days

LABELS = {"severity": "high", "room": "Lab 2", "site": "Clinic North", "team": "ops"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{severity="high"}', True),
        ('severity="critical"', False),
        ('severity!="critical"', True),
        ('severity=~"critical|high"', True),
        ('severity=~"hig"', False),  # anchored: the whole value must match
        ('room!~"Lab.*"', False),
        ('room!~"Office.*"', True),
        ('missing=""', True),  # an absent label is the empty string
        ('missing!=""', False),
        ('missing=~".*"', True),
        ('{site="Clinic North", team=ops}', True),  # unquoted values, commas
        ('site="Clinic North"\nteam="dev"', False),  # one per line, all must match
        ("", True),  # no matchers: everything
    ],
)
def test_label_matchers(text, expected):
    assert all_match(parse(text), LABELS) is expected


@pytest.mark.parametrize(
    "text", ["severity", 'severity=="x"', 'severity=~"("', '{a="b"', '1abc="x"', 'a="unterminated']
)
def test_unreadable_matchers_are_refused_with_a_reason(text):
    with pytest.raises(ValidationError):
        parse(text)


def test_quotes_and_commas_inside_values():
    (matcher,) = parse(r'title="say \"hi\", then go"')
    assert matcher.value == 'say "hi", then go'
    assert matcher.matches({"title": 'say "hi", then go'})


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("sat,sun", {5, 6}),
        ("mon, wed-fri", {0, 2, 3, 4}),
        ("fri-mon", {4, 5, 6, 0}),  # wraps around the week
        ("", set()),
    ],
)
def test_days(text, days):
    assert parse_days(text) == days


@pytest.mark.parametrize("text", ["monday", "mon-xyz", "1-5"])
def test_unknown_days_are_refused(text):
    with pytest.raises(ValidationError):
        parse_days(text)


BERLIN = "Europe/Berlin"
NIGHT = (time(22, 0), time(6, 0))
OFFICE = (time(8, 0), time(18, 0))


def utc(*args):
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("at", "days", "window", "expected"),
    [
        # Office hours on weekdays, Berlin (UTC+1 in winter).
        (utc(2026, 11, 23, 7, 30), "mon-fri", OFFICE, True),  # Mon 08:30
        (utc(2026, 11, 23, 6, 30), "mon-fri", OFFICE, False),  # Mon 07:30
        (utc(2026, 11, 23, 17, 0), "mon-fri", OFFICE, False),  # Mon 18:00: the end is open
        (utc(2026, 11, 28, 9, 0), "mon-fri", OFFICE, False),  # Sat 10:00
        # Fri 22:00–06:00 belongs to Friday: Saturday 03:00 is in, Friday 03:00 is not.
        (utc(2026, 11, 28, 2, 0), "fri", NIGHT, True),  # Sat 03:00
        (utc(2026, 11, 27, 2, 0), "fri", NIGHT, False),  # Fri 03:00 (Thursday's night)
        (utc(2026, 11, 27, 21, 30), "fri", NIGHT, True),  # Fri 22:30
        (utc(2026, 11, 27, 12, 0), "fri", NIGHT, False),  # Fri 13:00
        (utc(2026, 11, 23, 4, 59), "", NIGHT, True),  # Mon 05:59, every day
        (utc(2026, 11, 23, 5, 0), "", NIGHT, False),  # Mon 06:00
        # Daylight saving: the wall clock decides. 29 March 2026 02:00 -> 03:00 in Berlin.
        (utc(2026, 3, 28, 21, 0), "sat", NIGHT, True),  # Sat 22:00 CET
        (utc(2026, 3, 29, 3, 30), "sat", NIGHT, True),  # Sun 05:30 CEST (UTC+2)
        (utc(2026, 3, 29, 4, 0), "sat", NIGHT, False),  # Sun 06:00 CEST
        (utc(2026, 3, 29, 6, 30), "sun", OFFICE, True),  # Sun 08:30 CEST, not 07:30
        # 25 October 2026 03:00 -> 02:00: 06:00 CET is 05:00 UTC, no longer 04:00.
        (utc(2026, 10, 25, 4, 30), "sat", NIGHT, True),  # Sun 05:30 CET
        (utc(2026, 10, 25, 5, 0), "sat", NIGHT, False),  # Sun 06:00 CET
        (utc(2026, 10, 24, 6, 30), "sat", OFFICE, True),  # Sat 08:30 CEST
        # Days without hours: the whole local day.
        (utc(2026, 11, 22, 23, 30), "mon", (None, None), True),  # Mon 00:30 in Berlin
        (utc(2026, 11, 22, 22, 30), "mon", (None, None), False),  # Sun 23:30 in Berlin
    ],
)
def test_time_windows(at, days, window, expected):
    assert holds(at, days, *window, BERLIN) is expected


def test_a_window_of_equal_ends_is_the_whole_day_from_that_hour():
    at = utc(2026, 11, 24, 5, 0)  # Tue 06:00 Berlin: Monday's 07:00–07:00 window
    assert holds(at, "mon", time(7), time(7), BERLIN)
    assert not holds(utc(2026, 11, 24, 6, 0), "mon", time(7), time(7), BERLIN)  # Tue 07:00

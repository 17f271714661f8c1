"""Every form of reply a responder may send, and what is not one."""

import pytest

from responders.grammar import ACKNOWLEDGE, CLAIM, OPT_IN, OPT_OUT, RESOLVE, Command, parse


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("1a", Command(ACKNOWLEDGE, 1)),
        ("1A", Command(ACKNOWLEDGE, 1)),
        ("1 a", Command(ACKNOWLEDGE, 1)),
        ("  1   a  ", Command(ACKNOWLEDGE, 1)),
        ("12 ack", Command(ACKNOWLEDGE, 12)),
        ("a", Command(ACKNOWLEDGE)),
        ("ACK", Command(ACKNOWLEDGE)),
        ("Ack.", Command(ACKNOWLEDGE)),
        ("'1a'", Command(ACKNOWLEDGE, 1)),
        ("ack 12", Command(ACKNOWLEDGE, 12)),
        ("a #12", Command(ACKNOWLEDGE, 12)),
        ("a#12", Command(ACKNOWLEDGE, 12)),
        ("1c", Command(CLAIM, 1)),
        ("1c 10", Command(CLAIM, 1, 10)),
        ("1 C 10", Command(CLAIM, 1, 10)),
        ("claim 3 10", Command(CLAIM, 3, 10)),
        ("c", Command(CLAIM)),
        ("1r", Command(RESOLVE, 1)),
        ("resolve #2", Command(RESOLVE, 2)),
        ("r", Command(RESOLVE)),
        ("STOP", Command(OPT_OUT)),
        ("stop", Command(OPT_OUT)),
        ("Unsubscribe", Command(OPT_OUT)),
        ("start", Command(OPT_IN)),
        ("UNSTOP", Command(OPT_IN)),
    ],
)
def test_a_reply_says_what_it_asks(text, command):
    assert parse(text) == command


@pytest.mark.parametrize(
    "text",
    ["", "hello", "stop the alarm", "1x", "1a 10", "ack ack", "1", "#1", "a 1 2 3", "12345a"],
)
def test_anything_else_is_not_a_command(text):
    assert parse(text) is None

"""What a reply says: "1a", "1 a", "ack", "ack 12", "a #12", "1c 10", "stop", "start".

Case and spaces do not matter. A code names the alarm ("1a": the alarm with code 1 on this
phone); no code means the alarm this phone was paged about last. A claim may carry an ETA in
minutes ("1c 10": on my way, there in 10 minutes). The opt-out words are matched only as the
whole message, so "stop the alarm" opts nobody out.
"""

import re
from dataclasses import dataclass

ACKNOWLEDGE, CLAIM, RESOLVE = "acknowledge", "claim", "resolve"
OPT_OUT, OPT_IN = "opt_out", "opt_in"

VERBS = {
    "a": ACKNOWLEDGE, "ack": ACKNOWLEDGE, "acknowledge": ACKNOWLEDGE, "ok": ACKNOWLEDGE,
    "c": CLAIM, "claim": CLAIM, "otw": CLAIM, "coming": CLAIM,
    "r": RESOLVE, "res": RESOLVE, "resolve": RESOLVE, "resolved": RESOLVE, "done": RESOLVE,
}  # fmt: skip
# Not Twilio's whole list: "cancel", "end" or "yes" said to an alarm must not mute anyone.
OPT_OUT_WORDS = {"stop", "stopall", "stop all", "unsubscribe"}
OPT_IN_WORDS = {"start", "unstop"}

_VERB = "|".join(sorted(VERBS, key=len, reverse=True))
# "1a", "1 a", "1c 10", "12 ack"
CODE_FIRST = re.compile(rf"(?P<code>\d{{1,4}}) ?(?P<verb>{_VERB})(?: (?P<eta>\d{{1,4}}))?")
# "a", "ack 12", "a #12", "a#12", "claim 3 10"
VERB_FIRST = re.compile(rf"(?P<verb>{_VERB})(?: ?# ?(?P<hash>\d{{1,4}})| (?P<code>\d{{1,4}}))?"
                        rf"(?: (?P<eta>\d{{1,4}}))?")  # fmt: skip


@dataclass(frozen=True)
class Command:
    action: str
    code: int | None = None  # None: the alarm this phone was paged about last
    eta_minutes: int | None = None


def normalized(text: str) -> str:
    """Lower case, single spaces, no quotes or closing punctuation copied from the message."""
    text = " ".join(text.lower().split()).strip(" '\"“”‘’.!")
    return text


def parse(text: str) -> Command | None:
    """The command in a reply, or None when it is not one."""
    words = normalized(text)
    if words in OPT_OUT_WORDS:
        return Command(OPT_OUT)
    if words in OPT_IN_WORDS:
        return Command(OPT_IN)
    match = CODE_FIRST.fullmatch(words) or VERB_FIRST.fullmatch(words)
    if not match:
        return None
    found = match.groupdict()
    action = VERBS[found["verb"]]
    code = found.get("code") or found.get("hash")
    eta = found.get("eta")
    if eta and action != CLAIM:
        return None  # "1a 10": an ETA only goes with a claim
    return Command(action, int(code) if code else None, int(eta) if eta else None)

"""What alarm panels' event codes mean here: the SIA codes of the events that matter at a
receiving desk (Contact ID events arrive already translated to them). An alarm and its
restores name one condition, so a restore clears the alarm of the same zone; a code not in this
table (nor in the operators' table, devices.PanelEventCode) raises an alarm of its own, titled
as the SIA code list describes it: better a surprising alarm than a lost one."""

from dataclasses import dataclass

RAISE, CLEAR, IGNORE, SUPERVISION = "raise", "clear", "ignore", "supervision"


@dataclass(frozen=True)
class Meaning:
    action: str
    condition: str
    severity: str = "high"
    title: str = ""


def _alarm(condition: str, title: str, severity: str, raises: str, *clears: str) -> dict:
    meanings = {raises: Meaning(RAISE, condition, severity, title)}
    for code in clears:
        meanings[code] = Meaning(CLEAR, condition, severity, f"{title} restored")
    return meanings


BUILT_IN: dict[str, Meaning] = {
    # Life and property: alarms that a person must answer at once.
    **_alarm("fire", "Fire alarm", "critical", "FA", "FH", "FR"),
    **_alarm("panic", "Panic alarm", "critical", "PA", "PH", "PR"),
    **_alarm("holdup", "Hold-up / duress alarm", "critical", "HA", "HH", "HR"),
    **_alarm("medical", "Medical alarm", "critical", "MA", "MH", "MR"),
    **_alarm("emergency", "Emergency alarm", "critical", "QA", "QH", "QR"),
    **_alarm("burglary", "Burglary alarm", "critical", "BA", "BH", "BR"),
    **_alarm("gas", "Gas alarm", "critical", "GA", "GH", "GR"),
    **_alarm("heat", "Heat alarm", "critical", "KA", "KH", "KR"),
    **_alarm("water", "Water alarm", "high", "WA", "WH", "WR"),
    **_alarm("sprinkler", "Sprinkler alarm", "critical", "SA", "SH", "SR"),
    **_alarm("freeze", "Freeze alarm", "high", "ZA", "ZH", "ZR"),
    **_alarm("untyped", "Zone alarm", "high", "UA", "UH", "UR"),
    # Someone at the panel or the detectors.
    **_alarm("tamper", "Tamper alarm", "high", "TA", "TR"),
    **_alarm("expansion-tamper", "Expansion module tamper", "high", "ES", "EJ"),
    # Trouble: the system may not protect as it should.
    **_alarm("fire-trouble", "Fire trouble", "high", "FT", "FJ"),
    **_alarm("burglary-trouble", "Burglary zone trouble", "warning", "BT", "BJ"),
    **_alarm("ac-power", "Mains power lost", "warning", "AT", "AR"),
    **_alarm("battery", "Panel battery low", "warning", "YT", "YR"),
    **_alarm("communication", "Communication failure", "high", "YC", "YK"),
    **_alarm("phone-line", "Phone line trouble", "warning", "LT", "LR"),
    **_alarm("expansion", "Expansion module trouble", "warning", "ET", "ER"),
    **_alarm("service", "Service required", "warning", "YX", "YZ"),
    # Supervision: the panel says it is alive (NULL messages arrive as RP).
    "RP": Meaning(SUPERVISION, "test", "info", "Automatic test report"),
    "RX": Meaning(SUPERVISION, "test", "info", "Manual test report"),
    # Everyday events a desk does not answer: arming, disarming, bypasses.
    **{
        code: Meaning(IGNORE, code, "info", title)
        for code, title in {
            "OP": "Disarmed",
            "CL": "Armed",
            "OA": "Disarmed automatically",
            "CA": "Armed automatically",
            "OG": "Partly disarmed",
            "CG": "Partly armed",
            "NL": "Armed at home",
            "BB": "Zone bypassed",
            "BU": "Zone bypass ended",
        }.items()
    },  # fmt: skip
}


def meaning(code: str, operators: dict[str, Meaning], described: str) -> Meaning:
    """The operators' meaning of this code, else the built-in one, else a high alarm titled
    with the SIA code list's `described` name."""
    found = operators.get(code) or BUILT_IN.get(code)
    if found:
        return found
    return Meaning(RAISE, code, "high", described or f"Panel event {code}")

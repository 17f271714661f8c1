"""Which escalation policy an alarm follows."""


def choose_policy(alarm):
    """Return (policy or None, why) for a new alarm: for now, its device's default policy."""
    device = alarm.device
    if device and device.default_policy_id:
        return device.default_policy, f"default policy of device {device.name}"
    return None, "no policy applies"

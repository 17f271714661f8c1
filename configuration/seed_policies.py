"""The seed's policies and their steps, mixed into `seed.Loader` (whose `plain`, `ref`,
`refs`, `store`, `checked` and `known_keys` they use). A policy's `steps`, when given, are the
whole list; one policy is the global default."""

from devices.models import Person
from escalation.models import EscalationPolicy, EscalationStep
from notifications.models import NotificationChannel
from oncall.models import Rotation, Schedule, Team

POLICY_FIELDS = ["description", "repeat_count", "repeat_after_seconds", "is_default",
                 "damp_flapping", "stand_down", "escalate_late_claims"]  # fmt: skip
# What a step names, each by name: {key: model}.
STEP_TARGETS = {"persons": Person, "schedules": Schedule, "rotations": Rotation,
                "channels": NotificationChannel}  # fmt: skip
STEP_KEYS = ["delay_seconds", "persons", "schedules", "rotations", "methods", "channels"]


class PolicyLoading:
    def load_policies(self, entries) -> None:
        for entry, item in entries:
            policy = self.stored(EscalationPolicy, entry, item["name"])
            values = self.plain(entry, EscalationPolicy, item, POLICY_FIELDS)
            values.update(self.named_refs(entry, item, {"team": Team}))
            if values.get("is_default") is True:
                self.take_global_default(entry, policy)
            state = self.store(entry, policy, values)
            if "steps" in item and self.load_steps(entry, policy, item["steps"]):
                state = "updated" if state == "unchanged" else state
            self.report.note("policies", policy.name, state)

    def take_global_default(self, entry, policy: EscalationPolicy) -> None:
        """One policy is the global default: the seed's choice takes it from any other."""
        if self.default_policy_entry is not None:
            other = self.default_policy_entry
            raise entry.fail(f'is_default: {other.kind}[{other.index}] "{other.name}" is '
                             "already the global default in this seed")  # fmt: skip
        self.default_policy_entry = entry
        for other in EscalationPolicy.objects.filter(is_default=True).exclude(pk=policy.pk):
            other.is_default = False
            other.save()
            self.report.note("policies", other.name, "updated")

    def load_steps(self, entry, policy: EscalationPolicy, items) -> bool:
        """Make the policy's steps the listed ones; True when they changed."""
        if not isinstance(items, list):
            raise entry.fail("steps: must be a list of steps")
        wanted = [self.step(entry, policy, index, item) for index, item in enumerate(items)]
        stored = [
            (step.delay_seconds, list(step.methods),
             *({row.pk for row in getattr(step, key).all()} for key in STEP_TARGETS))
            for step in policy.steps.order_by("order").prefetch_related(*STEP_TARGETS)
        ]  # fmt: skip
        listed = [
            (step.delay_seconds, step.methods, *({row.pk for row in targets[key]}
                                                 for key in STEP_TARGETS))
            for step, targets in wanted
        ]  # fmt: skip
        if stored == listed:
            return False
        policy.steps.all().delete()
        for step, targets in wanted:
            step.save()
            for key in STEP_TARGETS:
                getattr(step, key).set(targets[key])
        return True

    def step(self, entry, policy, index: int, item) -> tuple:
        """One listed step, checked but not saved: (step, {target key: rows})."""
        where = f"steps[{index}]"
        if not isinstance(item, dict):
            raise entry.fail(f"{where}: a step must be a mapping")
        self.known_keys(entry, where, item, STEP_KEYS)
        targets = {key: self.refs(entry, model, f"{where}.{key}", item.get(key))
                   for key, model in STEP_TARGETS.items()}  # fmt: skip
        values = self.plain(entry, EscalationStep, item, ["delay_seconds", "methods"])
        step = EscalationStep(policy=policy, order=index, **values)
        # Its policy may be new, and the order clashes with the step it replaces.
        self.checked(entry, where, step, exclude=["policy"], validate_unique=False,
                     validate_constraints=False)  # fmt: skip
        return step, targets

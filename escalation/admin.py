"""Admin for escalation policies, edited with their steps inline."""

from django.contrib import admin

from .models import EscalationPolicy, EscalationStep


class StepInline(admin.StackedInline):
    model = EscalationStep
    extra = 0
    filter_horizontal = ["persons", "channels"]


@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(admin.ModelAdmin):
    list_display = ["name", "step_count", "repeat_count", "repeat_after_seconds"]
    search_fields = ["name", "description"]
    inlines = [StepInline]

    @admin.display(description="steps")
    def step_count(self, policy):
        return policy.steps.count()

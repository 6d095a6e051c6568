"""Reads, always scoped to the user: another user's object does not exist (404)."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from builder.models import Secret, Webhook, Workflow
from engine.config import allowed_process_env
from engine.models import ItemRun, Run, StepRun


def workflows_for(user: Any) -> QuerySet[Workflow]:
    return Workflow.objects.filter(owner=user).select_related(
        "current_version", "published_version"
    )


def workflow_get(user: Any, workflow_id: Any) -> Workflow:
    try:
        return workflows_for(user).get(pk=workflow_id)
    except (Workflow.DoesNotExist, ValueError, TypeError):
        raise Http404("no such workflow") from None


def secret_get(user: Any, name: str) -> Secret:
    secret = Secret.objects.filter(owner_id=user.pk, name=name).first()
    if secret is None:
        raise Http404("no such secret")
    return secret


def runs_for(user: Any) -> QuerySet[Run]:
    return Run.objects.filter(owner=user)


def run_get(user: Any, run_id: Any) -> Run:
    try:
        return runs_for(user).get(pk=uuid.UUID(str(run_id)))
    except (Run.DoesNotExist, ValueError):
        raise Http404("no such run") from None


def items_of(run: Run) -> QuerySet[ItemRun]:
    return run.items.order_by("parent_key", "loop_block", "index")


def steps_of(run: Run, item_keys: list[str]) -> QuerySet[StepRun]:
    return run.steps.filter(item_key__in=item_keys).order_by("item_key", "started_at")


def webhook_by_token(token: str) -> Webhook | None:
    return (
        Webhook.objects.select_related(
            "workflow", "workflow__current_version", "workflow__published_version"
        )
        .filter(token=token)
        .first()
    )


def env_for_owner(owner_id: Any) -> dict[str, str]:
    """What <env.NAME> can read for this owner: allow-listed process variables, then the
    owner's secrets (which win on a name clash)."""
    env = allowed_process_env()
    for secret in Secret.objects.filter(owner_id=owner_id):
        env[secret.name] = secret.value
    return env


def env_names_for(owner_id: Any) -> list[str]:
    names = set(Secret.objects.filter(owner_id=owner_id).values_list("name", flat=True))
    names.update(allowed_process_env())
    return sorted(names)

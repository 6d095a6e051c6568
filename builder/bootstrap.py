"""First start on a bare machine: a local login and the shipped template, ready to post to."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from builder.gallery import ensure_sandbox_secrets, template_get, template_instantiate
from builder.models import Workflow

LOCAL_USERNAME = "admin"
LEAD_TEMPLATE = "parallel-lead-enrichment"


@dataclass
class LocalSetup:
    username: str
    password: str | None  # only when the login was created just now
    workflow: Workflow


def ensure_local_setup() -> LocalSetup:
    User = get_user_model()
    user = User.objects.filter(username=LOCAL_USERNAME).first()
    password = None
    if user is None:
        password = secrets.token_urlsafe(12)
        try:
            with transaction.atomic():
                user = User.objects.create_superuser(LOCAL_USERNAME, "admin@localhost", password)
        except IntegrityError:  # another process started at the same moment created it
            user, password = User.objects.get(username=LOCAL_USERNAME), None
    workflow = (
        Workflow.objects.filter(owner=user, template_slug=LEAD_TEMPLATE)
        .order_by("created_at")
        .first()
    )
    if workflow is None:
        workflow = template_instantiate(owner=user, slug=LEAD_TEMPLATE)
    else:
        ensure_sandbox_secrets(user, template_get(LEAD_TEMPLATE))
    return LocalSetup(LOCAL_USERNAME, password, workflow)

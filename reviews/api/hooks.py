"""Webhook endpoints: a repository's and an organization's hooks in Gitea's shapes, their deliveries in GitHub's.

Only a repository's administrators (an organization's owners) see its hooks; the secret and the Authorization
header are never returned."""

import json
from datetime import datetime
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from ninja import Query, Schema, Status

from portal.api import InputSchema, current_user
from portal.api_pages import PageParams, paginate
from portal.api_scopes import READ_ORG, READ_REPO, WRITE_ORG, WRITE_REPO
from portal.models import User
from portal.validators import field_error
from repos.access import get_org_for_member
from repos.models import Repository, Role
from reviews import webhooks
from reviews.api.lookups import get_repo
from reviews.api.router import router
from reviews.models import Webhook, WebhookDelivery


class HookConfigIn(InputSchema):
    """Gitea's hook config: the URL and content type, the secret, and Slack's options."""

    url: str | None = None
    content_type: str | None = None
    secret: str | None = None
    http_method: str | None = None
    channel: str | None = None
    username: str | None = None
    icon_url: str | None = None
    color: str | None = None


class HookCreateIn(InputSchema):
    type: str
    config: HookConfigIn
    events: list[str] = []
    branch_filter: str = ""
    authorization_header: str = ""
    # As in Gitea, a hook created without "active": true starts turned off.
    active: bool = False


class HookEditIn(InputSchema):
    config: HookConfigIn | None = None
    events: list[str] | None = None
    branch_filter: str | None = None
    authorization_header: str | None = None
    active: bool | None = None


class HookOut(Schema):
    id: int
    type: str
    branch_filter: str
    config: dict[str, str]
    events: list[str]
    authorization_header: str
    active: bool
    updated_at: datetime
    created_at: datetime


class DeliveryOut(Schema):
    id: int
    guid: str
    delivered_at: datetime
    redelivery: bool
    duration: float
    status: str
    status_code: int
    event: str
    action: str | None
    installation_id: int | None
    repository_id: int | None
    throttled_at: datetime | None
    attempts: int


class DeliveryRequestOut(Schema):
    headers: dict[str, str]
    payload: Any


class DeliveryResponseOut(Schema):
    headers: dict[str, str]
    payload: str | None


class AttemptOut(Schema):
    number: int
    started_at: datetime
    duration: float | None
    status_code: int | None
    refused: str
    error: str


class DeliveryDetailOut(DeliveryOut):
    url: str
    request: DeliveryRequestOut
    response: DeliveryResponseOut
    attempts_log: list[AttemptOut]


def hook_out(hook: Webhook) -> dict:
    config = {"url": hook.url, "content_type": hook.content_type, "http_method": "post"}
    if hook.type == Webhook.Type.SLACK:
        config |= hook.slack
    return {
        "id": hook.pk,
        "type": hook.type,
        "branch_filter": hook.branch_filter,
        "config": config,
        "events": hook.events,
        "authorization_header": "",
        "active": hook.active,
        "updated_at": hook.updated,
        "created_at": hook.created,
    }


def delivery_out(delivery: WebhookDelivery) -> dict:
    status, code = webhooks.delivery_status(delivery)
    attempt = delivery.last_attempt
    return {
        "id": delivery.pk,
        "guid": str(delivery.guid),
        "delivered_at": attempt.started if attempt else delivery.created,
        "redelivery": delivery.redelivery_of_id is not None,
        "duration": (attempt.duration or 0.0) if attempt else 0.0,
        "status": status,
        "status_code": code,
        "event": delivery.gitea_event,
        "action": delivery.action or None,
        "installation_id": None,
        "repository_id": delivery.repository_id_at_event,
        "throttled_at": None,
        "attempts": delivery.attempts,
    }


def delivery_detail_out(delivery: WebhookDelivery) -> dict:
    attempt = delivery.last_attempt
    try:
        payload = json.loads(delivery.body)
    except ValueError:
        payload = delivery.body
    return delivery_out(delivery) | {
        "url": attempt.url if attempt else delivery.webhook.url,
        "request": {"headers": webhooks.logged_request_headers(delivery), "payload": payload},
        "response": {
            "headers": attempt.response_headers if attempt else {},
            "payload": attempt.response_body if attempt and attempt.status_code is not None else None,
        },
        "attempts_log": [
            {
                "number": a.number,
                "started_at": a.started,
                "duration": a.duration,
                "status_code": a.status_code,
                "refused": a.refused,
                "error": a.error,
            }
            for a in delivery.attempt_rows.all()
        ],
    }


def _config_changes(config: HookConfigIn | None) -> dict:
    if config is None:
        return {}
    if config.http_method and config.http_method.lower() != "post":
        raise field_error(
            'Only POST deliveries are supported; send http_method "post" or leave it out.', "config.http_method"
        )
    slack = {key: getattr(config, key) for key in webhooks.SLACK_OPTIONS if getattr(config, key) is not None}
    return {
        "url": config.url,
        "content_type": config.content_type,
        "secret": config.secret,
        "slack": slack or None,
    }


# Where the hooks are: a repository (its administrators) or an organization (its owners).


def _repo(request: HttpRequest, owner: str, repo: str) -> Repository:
    return get_repo(request, owner, repo, Role.ADMIN)


def _org(request: HttpRequest, org: str) -> User:
    return get_org_for_member(current_user(request), org, admin=True)


def _hook(place: dict, hook_id: int) -> Webhook:
    hook = webhooks.hooks_of(**place).filter(pk=hook_id).first()
    if hook is None:
        raise Http404("Webhook not found")
    return hook


def _delivery(hook: Webhook, delivery_id: int) -> WebhookDelivery:
    delivery = webhooks.deliveries_of(hook).filter(pk=delivery_id).first()
    if delivery is None:
        raise Http404("Delivery not found")
    return delivery


def _create(request: HttpRequest, place: dict, payload: HookCreateIn) -> Status:
    config = _config_changes(payload.config)
    hook = webhooks.save_webhook(
        None,
        actor=current_user(request),
        type=payload.type,
        events=payload.events,
        branch_filter=payload.branch_filter,
        authorization_header=payload.authorization_header,
        active=payload.active,
        **place,
        **config,
    )
    return Status(201, hook_out(hook))


def _edit(request: HttpRequest, hook: Webhook, payload: HookEditIn) -> dict:
    config = _config_changes(payload.config)
    hook = webhooks.save_webhook(
        hook,
        actor=current_user(request),
        events=payload.events,
        branch_filter=payload.branch_filter,
        authorization_header=payload.authorization_header,
        active=payload.active,
        **config,
    )
    return hook_out(hook)


RP = "/repos/{owner}/{repo}/hooks"
OP = "/orgs/{org}/hooks"
TAGS = ["webhook"]


@router.get(RP, scope=READ_REPO, response=list[HookOut], tags=TAGS, summary="List a repository's webhooks")
def list_repo_hooks(
    request: HttpRequest,
    response: HttpResponse,
    owner: str,
    repo: str,
    pages: Query[PageParams],
):
    hooks = webhooks.hooks_of(repository=_repo(request, owner, repo))
    return [hook_out(hook) for hook in paginate(hooks, response, pages)]


@router.post(RP, scope=WRITE_REPO, response={201: HookOut}, tags=TAGS, summary="Add a webhook to a repository")
def create_repo_hook(request: HttpRequest, owner: str, repo: str, payload: HookCreateIn):
    return _create(request, {"repository": _repo(request, owner, repo)}, payload)


@router.get(RP + "/{id}", scope=READ_REPO, response=HookOut, tags=TAGS, summary="Get a repository's webhook")
def get_repo_hook(request: HttpRequest, owner: str, repo: str, id: int):
    return hook_out(_hook({"repository": _repo(request, owner, repo)}, id))


@router.patch(RP + "/{id}", scope=WRITE_REPO, response=HookOut, tags=TAGS, summary="Edit a repository's webhook")
def edit_repo_hook(request: HttpRequest, owner: str, repo: str, id: int, payload: HookEditIn):
    return _edit(request, _hook({"repository": _repo(request, owner, repo)}, id), payload)


@router.delete(RP + "/{id}", scope=WRITE_REPO, response={204: None}, tags=TAGS, summary="Delete a repository's webhook")
def delete_repo_hook(request: HttpRequest, owner: str, repo: str, id: int):
    webhooks.delete_webhook(_hook({"repository": _repo(request, owner, repo)}, id), actor=current_user(request))
    return Status(204, None)


@router.post(
    RP + "/{id}/tests",
    scope=WRITE_REPO,
    response={204: None},
    tags=TAGS,
    summary="Test a webhook",
    description="Sends the hook a push of the default branch's last commit, as Gitea does.",
)
def test_repo_hook(request: HttpRequest, owner: str, repo: str, id: int):
    webhooks.test_webhook(_hook({"repository": _repo(request, owner, repo)}, id), actor=current_user(request))
    return Status(204, None)


@router.get(
    RP + "/{id}/deliveries",
    scope=READ_REPO,
    response=list[DeliveryOut],
    tags=TAGS,
    summary="List a webhook's deliveries",
)
def list_repo_hook_deliveries(
    request: HttpRequest,
    response: HttpResponse,
    owner: str,
    repo: str,
    id: int,
    pages: Query[PageParams],
):
    hook = _hook({"repository": _repo(request, owner, repo)}, id)
    return [delivery_out(d) for d in paginate(webhooks.deliveries_of(hook), response, pages)]


@router.get(
    RP + "/{id}/deliveries/{delivery_id}",
    scope=READ_REPO,
    response=DeliveryDetailOut,
    tags=TAGS,
    summary="Get a delivery, with its request and response",
)
def get_repo_hook_delivery(request: HttpRequest, owner: str, repo: str, id: int, delivery_id: int):
    hook = _hook({"repository": _repo(request, owner, repo)}, id)
    return delivery_detail_out(_delivery(hook, delivery_id))


@router.post(
    RP + "/{id}/deliveries/{delivery_id}/attempts",
    scope=WRITE_REPO,
    response={202: DeliveryOut},
    tags=TAGS,
    summary="Redeliver a delivery",
)
def redeliver_repo_hook_delivery(request: HttpRequest, owner: str, repo: str, id: int, delivery_id: int):
    hook = _hook({"repository": _repo(request, owner, repo)}, id)
    again = webhooks.redeliver(_delivery(hook, delivery_id), actor=current_user(request))
    return Status(202, delivery_out(again))


@router.get(OP, scope=READ_ORG, response=list[HookOut], tags=TAGS, summary="List an organization's webhooks")
def list_org_hooks(
    request: HttpRequest,
    response: HttpResponse,
    org: str,
    pages: Query[PageParams],
):
    hooks = webhooks.hooks_of(organization=_org(request, org))
    return [hook_out(hook) for hook in paginate(hooks, response, pages)]


@router.post(OP, scope=WRITE_ORG, response={201: HookOut}, tags=TAGS, summary="Add a webhook to an organization")
def create_org_hook(request: HttpRequest, org: str, payload: HookCreateIn):
    return _create(request, {"organization": _org(request, org)}, payload)


@router.get(OP + "/{id}", scope=READ_ORG, response=HookOut, tags=TAGS, summary="Get an organization's webhook")
def get_org_hook(request: HttpRequest, org: str, id: int):
    return hook_out(_hook({"organization": _org(request, org)}, id))


@router.patch(OP + "/{id}", scope=WRITE_ORG, response=HookOut, tags=TAGS, summary="Edit an organization's webhook")
def edit_org_hook(request: HttpRequest, org: str, id: int, payload: HookEditIn):
    return _edit(request, _hook({"organization": _org(request, org)}, id), payload)


@router.delete(
    OP + "/{id}", scope=WRITE_ORG, response={204: None}, tags=TAGS, summary="Delete an organization's webhook"
)
def delete_org_hook(request: HttpRequest, org: str, id: int):
    webhooks.delete_webhook(_hook({"organization": _org(request, org)}, id), actor=current_user(request))
    return Status(204, None)


@router.get(
    OP + "/{id}/deliveries",
    scope=READ_ORG,
    response=list[DeliveryOut],
    tags=TAGS,
    summary="List an organization webhook's deliveries",
)
def list_org_hook_deliveries(
    request: HttpRequest,
    response: HttpResponse,
    org: str,
    id: int,
    pages: Query[PageParams],
):
    hook = _hook({"organization": _org(request, org)}, id)
    return [delivery_out(d) for d in paginate(webhooks.deliveries_of(hook), response, pages)]


@router.get(
    OP + "/{id}/deliveries/{delivery_id}",
    scope=READ_ORG,
    response=DeliveryDetailOut,
    tags=TAGS,
    summary="Get an organization webhook's delivery",
)
def get_org_hook_delivery(request: HttpRequest, org: str, id: int, delivery_id: int):
    hook = _hook({"organization": _org(request, org)}, id)
    return delivery_detail_out(_delivery(hook, delivery_id))


@router.post(
    OP + "/{id}/deliveries/{delivery_id}/attempts",
    scope=WRITE_ORG,
    response={202: DeliveryOut},
    tags=TAGS,
    summary="Redeliver an organization webhook's delivery",
)
def redeliver_org_hook_delivery(request: HttpRequest, org: str, id: int, delivery_id: int):
    hook = _hook({"organization": _org(request, org)}, id)
    again = webhooks.redeliver(_delivery(hook, delivery_id), actor=current_user(request))
    return Status(202, delivery_out(again))

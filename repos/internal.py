"""The endpoint git's hooks call back: authenticated by the one-push secret a transport put in git's env.

It answers only the portal's own hooks: requests through the unix socket `serve` binds (gunicorn gives their
REMOTE_ADDR as ''), or any request when PORTAL_INTERNAL_URL says the hooks come over TCP from other nodes.
Nothing a hook claims is believed: post-receive records only updates pre-receive accepted for that push and that
the repository shows, and each phase uses the push's session once."""

import hmac
import json
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.db import transaction
from django.http import Http404, HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from portal.models import AccessToken
from repos import git, services
from repos.access import Principal
from repos.models import PushSession
from repos.services import RefUpdate


class BadRequest(Exception):
    """The hook sent something the portal cannot read; the message says what."""


class SessionRefused(Exception):
    """The push id and secret do not name a live push session."""


def _refused(message: str, status: int = 200) -> JsonResponse:
    return JsonResponse({"ok": False, "messages": [message]}, status=status)


def get_push_session(push_id: object, secret: object) -> PushSession | None:
    """The live push session with this id and secret, or None."""
    if not isinstance(push_id, str | int) or not str(push_id).isdigit() or not isinstance(secret, str):
        return None
    session = (
        PushSession.objects.select_related("repository__owner", "user", "deploy_key", "token")
        .filter(pk=int(push_id), created__gte=timezone.now() - services.push_session_max_age())
        .first()
    )
    if session is None or not hmac.compare_digest(session.secret_hash, AccessToken.hash(secret)):
        return None
    return session


def _updates(payload: dict) -> list[RefUpdate]:
    raw = payload.get("updates")
    if not isinstance(raw, list):
        raise BadRequest("updates must be a list")
    updates = []
    for item in raw:
        if not isinstance(item, dict):
            raise BadRequest("each update must be an object")
        ref, old, new = item.get("ref"), item.get("old"), item.get("new")
        if not isinstance(ref, str) or not ref or len(ref) > 255:
            raise BadRequest(f"not a ref name: {str(ref)[:80]!r}")
        if not (git.is_sha(old) and git.is_sha(new)):
            raise BadRequest(f"not an object id in the update of {ref!r}")
        updates.append(RefUpdate(ref=ref, old_sha=old, new_sha=new, forced=bool(item.get("forced"))))
    return updates


def _read(request: HttpRequest) -> tuple[PushSession, list[RefUpdate]]:
    try:
        payload = json.loads(request.body)
    except ValueError:
        raise BadRequest("the hook did not send JSON")
    if not isinstance(payload, dict):
        raise BadRequest("the hook did not send a JSON object")
    session = get_push_session(payload.get("push_id"), payload.get("secret"))
    if session is None:
        raise SessionRefused("this push session is unknown or expired; push again")
    return session, _updates(payload)


def hook_endpoint(view: Callable[[HttpRequest, PushSession, list[RefUpdate]], JsonResponse]):
    """A POST-only, CSRF-exempt hook endpoint, missing (404) for anyone but the portal's hooks, that answers an
    unknown session, a claim that does not match the push or a malformed body itself."""

    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest) -> JsonResponse:
        if not settings.PORTAL_INTERNAL_URL and request.META.get("REMOTE_ADDR") != "":
            raise Http404("No such page.")
        return _answer(request)

    @require_POST
    def _answer(request: HttpRequest) -> JsonResponse:
        try:
            session, updates = _read(request)
            return view(request, session, updates)
        except SessionRefused as exc:
            return _refused(f"portal: {exc}", status=403)
        except services.PushRefused as exc:
            return _refused(f"portal: {exc}", status=409)
        except BadRequest as exc:
            return _refused(f"portal: {exc}", status=400)

    return wrapper


def _principal(session: PushSession) -> Principal:
    return Principal(user=session.user, deploy_key=session.deploy_key, token=session.token)


@hook_endpoint
def pre_receive(request: HttpRequest, session: PushSession, updates: list[RefUpdate]) -> JsonResponse:
    """Accept or refuse a whole push before git updates any ref."""
    reason = services.accept_push(session, _principal(session), updates)
    if reason is not None:
        return JsonResponse({"ok": False, "messages": [f"portal: {line}" for line in reason.splitlines()]})
    return JsonResponse({"ok": True, "messages": []})


@hook_endpoint
def post_receive(request: HttpRequest, session: PushSession, updates: list[RefUpdate]) -> JsonResponse:
    """Record the refs git has just updated and announce them, all or nothing; print what the listeners answer."""
    # The push's listeners (pull requests following their branch) write in this same transaction: if one fails,
    # nothing of the push is recorded.
    with transaction.atomic():
        recorded = services.record_hook_push(session, updates)
    lines = recorded.messages
    return JsonResponse({"ok": True, "messages": lines + [""] if lines else []})

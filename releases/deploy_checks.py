"""The checks a deployment passes before anything runs, as plain functions the deployment job and pages call.

- Provenance at the door: the artifact's bytes are the ones the build stored (their sha256), and the portal signed a
  statement about them (releases.provenance).
- Which refs may deploy to an environment, read from that verified statement: what was signed, not what a database
  row says now.
- How many approvals a deployment has and still needs, from a pool of users and teams.
- When a deployment may start: after the environment's wait timer, and outside its change-freeze windows.

Nothing here writes: a refusal is a DeploymentRefused (or, for settings, a field_error naming the field) whose
message a page shows as it is."""

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import BinaryIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from django.db.models import Q

from portal.models import Team, User
from portal.validators import field_error
from releases import provenance
from repos import git
from repos.access import role_for
from repos.models import Repository, Role
from reviews.models import BranchProtection
from reviews.webhooks import branch_matches


class DeploymentRefused(Exception):
    """Why an artifact may not be deployed, in words a page shows as they are."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# 1. Provenance at the door.

_CHUNK = 1024 * 1024


def _sha256_of(artifact: bytes | str | os.PathLike | BinaryIO) -> str:
    if isinstance(artifact, bytes | bytearray | memoryview):
        return hashlib.sha256(artifact).hexdigest()
    digest = hashlib.sha256()
    if hasattr(artifact, "read"):
        while chunk := artifact.read(_CHUNK):
            digest.update(chunk)
        return digest.hexdigest()
    try:
        with open(artifact, "rb") as stored:
            while chunk := stored.read(_CHUNK):
                digest.update(chunk)
    except OSError as error:
        raise DeploymentRefused(f"The artifact's bytes cannot be read ({error.strerror or error}).") from None
    return digest.hexdigest()


def check_artifact(artifact: bytes | str | os.PathLike | BinaryIO, expected_sha256: str, envelope: dict | None) -> dict:
    """The verified provenance statement of an artifact (its bytes, a path to them or an open binary file), after
    checking that the bytes are the ones the build stored (expected_sha256, "<hex>" or "sha256:<hex>") and that the
    portal's key signed a statement whose subject they are. Raises DeploymentRefused saying which check failed."""
    if not envelope:
        raise DeploymentRefused(
            "The artifact has no provenance: nothing signed says which build made its bytes, so it is not deployed."
        )
    try:
        expected = provenance.digest_of(expected_sha256)
    except provenance.ProvenanceError as error:
        raise DeploymentRefused(f"The artifact's recorded digest is unusable: {error}") from None
    actual = _sha256_of(artifact)
    if actual != expected:
        raise DeploymentRefused(f"The artifact's bytes changed since the build: sha256 {actual} ≠ {expected}.")
    try:
        return provenance.verify(envelope, actual)
    except provenance.ProvenanceError as error:
        raise DeploymentRefused(f"The artifact's provenance does not verify: {error}") from None


# 2. Which refs may deploy.

# A pattern is a kind and a glob in Gitea's branch filter syntax (`*`, `?`, `[…]`, `{a,b}`): branches and tags by
# their short names, pull requests by their number ("pull:*" lets every pull request's build deploy).
PATTERN_KINDS = ("branch", "tag", "pull")
_PULL_REF = re.compile(r"refs/pull/(\d+)/head")
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


@dataclass(frozen=True)
class BuiltRef:
    """The ref a build was made from, as its signed statement names it."""

    ref: str
    commit: str
    # "branch", "tag", "pull" (a pull request's head, name being its number), "commit" (a build of a bare commit,
    # started by hand) or "other".
    kind: str
    name: str

    @classmethod
    def of(cls, statement: dict) -> "BuiltRef":
        """The ref and commit of a verified statement (releases.provenance's shape)."""
        definition = (statement.get("predicate") or {}).get("buildDefinition") or {}
        ref = str((definition.get("externalParameters") or {}).get("ref") or "")
        dependencies = definition.get("resolvedDependencies") or [{}]
        commit = str(
            ((dependencies[0] if isinstance(dependencies[0], dict) else {}).get("digest") or {}).get("gitCommit", "")
        )
        if not ref:
            raise DeploymentRefused("The artifact's provenance names no ref, so no environment can check it.")
        if ref.startswith("refs/heads/"):
            return cls(ref, commit, "branch", ref.removeprefix("refs/heads/"))
        if ref.startswith("refs/tags/"):
            return cls(ref, commit, "tag", ref.removeprefix("refs/tags/"))
        if match := _PULL_REF.fullmatch(ref):
            return cls(ref, commit, "pull", match.group(1))
        if _SHA.fullmatch(ref):
            return cls(ref, commit, "commit", ref)
        return cls(ref, commit, "other", ref)

    @property
    def described(self) -> str:
        if self.kind == "pull":
            return f"{self.ref} (pull request #{self.name})"
        if self.kind == "commit":
            return f"commit {self.name[:12]} (no branch or tag)"
        return self.ref


@dataclass(frozen=True)
class RefPolicy:
    """Which refs may deploy to an environment: GitHub's deployment_branch_policy (protected branches, custom
    patterns) with the default branch as a third choice. A ref may deploy when any chosen rule allows it.

    With no rule chosen (GitHub's null policy) every branch, tag and commit built by hand may deploy, but not a
    pull request's build: its code may come from someone without write access, so it reaches an environment only
    when a "pull:" pattern names it. Any chosen rule shuts out what it does not name, builds of bare commits
    included (they name no branch). A build of a branch deploys only while its commit is still on that branch, and
    a tag's only while the tag still names its commit, so that an old build does not pass for what the ref holds."""

    default_branch: bool = False
    protected_branches: bool = False
    patterns: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "patterns", tuple(_checked_pattern(p, i) for i, p in enumerate(self.patterns)))

    @property
    def is_open(self) -> bool:
        return not (self.default_branch or self.protected_branches or self.patterns)

    def describe(self, repository: Repository) -> str:
        """What the policy lets deploy, for a page: "the default branch (main), protected branches or tag:v*"."""
        if self.is_open:
            return "any branch, tag or commit, but no pull request"
        rules = []
        if self.default_branch:
            rules.append(f"the default branch ({repository.default_branch})")
        if self.protected_branches:
            rules.append("protected branches")
        rules.extend(self.patterns)
        return rules[0] if len(rules) == 1 else ", ".join(rules[:-1]) + " or " + rules[-1]

    def allows(self, repository: Repository, built: BuiltRef) -> bool:
        """Whether the policy names the ref (whatever its commit)."""
        if built.kind == "other":
            return False
        if self.is_open:
            return built.kind != "pull"
        if built.kind == "branch":
            if self.default_branch and built.name == repository.default_branch:
                return True
            if self.protected_branches and BranchProtection.objects.filter(repository=repository).matching(built.name):
                return True
        return any(
            kind == built.kind and branch_matches(glob, built.name)
            for kind, glob in (pattern.split(":", 1) for pattern in self.patterns)
        )


def _checked_pattern(pattern: object, index: int, field: str = "deployment_branch_policy.patterns") -> str:
    where = f"{field}.{index}"
    if not isinstance(pattern, str):
        raise field_error("A ref pattern is a string such as branch:release/* or tag:v*.", where)
    kind, colon, glob = pattern.strip().partition(":")
    glob = glob.strip()
    if not colon or kind not in PATTERN_KINDS:
        raise field_error(
            f"{pattern!r} does not start with {', '.join(k + ':' for k in PATTERN_KINDS)} (e.g. branch:release/*, "
            "tag:v*, pull:*).",
            where,
        )
    if not glob or any(char.isspace() or ord(char) < 32 for char in glob):
        raise field_error(f"{pattern!r} needs a glob after {kind}: without spaces or control characters.", where)
    if glob.count("{") != glob.count("}") or glob.count("[") != glob.count("]"):
        raise field_error(f"{pattern!r} has an unclosed {{…}} or […].", where)
    return f"{kind}:{glob}"


def ref_policy(
    *,
    default_branch: bool = False,
    protected_branches: bool = False,
    patterns: Iterable[str] = (),
    field: str = "deployment_branch_policy",
) -> RefPolicy:
    """A policy from settings (a form's or the API's); a bad pattern is a field_error naming field.patterns.N."""
    patterns = list(patterns)
    checked = tuple(_checked_pattern(pattern, i, f"{field}.patterns") for i, pattern in enumerate(patterns))
    return RefPolicy(default_branch=default_branch, protected_branches=protected_branches, patterns=checked)


def _still_holds(repository: Repository, built: BuiltRef) -> bool:
    """Whether the branch still holds the commit, or the tag still names it."""
    if not git.is_sha(built.commit):
        return False
    if built.kind == "branch":
        try:
            return git.is_ancestor(repository.path, built.commit, git.branch_sha(repository.path, built.name))
        except (git.GitError, KeyError, ValueError):
            return False
    if built.kind == "tag":
        # By the tag's list, which peels annotated tags to their commit, and not by a name lookup, which would
        # take a branch of the same name first.
        return any(tag.name == built.name and tag.sha == built.commit for tag in git.tags(repository.path))
    return True


def check_ref(
    policy: RefPolicy, repository: Repository, statement: dict, *, environment: str = "this environment"
) -> BuiltRef:
    """The ref of a verified statement, when policy lets it deploy to environment; else DeploymentRefused with
    the reason ("Built from refs/heads/feature/x, and uat takes only protected branches.")."""
    built = BuiltRef.of(statement)
    if not policy.allows(repository, built):
        if built.kind == "other":
            raise DeploymentRefused(f"Built from {built.ref}, which is no branch, tag or pull request.")
        raise DeploymentRefused(
            f"Built from {built.described}, and {environment} takes only {policy.describe(repository)}."
        )
    if not policy.is_open and not _still_holds(repository, built):
        now = "is no longer on that branch" if built.kind == "branch" else "is no longer what that tag names"
        raise DeploymentRefused(f"Built from {built.ref} at {built.commit[:12]}, which {now}.")
    return built


# 3. Approvals.


@dataclass(frozen=True)
class RequiredApprovals:
    """N approvals from a pool of users and teams (a team counts as its members, as they are when asked)."""

    count: int
    user_ids: frozenset[int]
    team_ids: frozenset[int]

    def pool_user_ids(self) -> frozenset[int]:
        """The people who may approve: the users named and the teams' members, active people only."""
        people = User.objects.filter(
            Q(pk__in=self.user_ids) | Q(team_memberships__in=self.team_ids), is_active=True, is_organization=False
        )
        return frozenset(people.values_list("pk", flat=True).distinct())


def required_approvals(
    count: int,
    users: Iterable[User],
    teams: Iterable[Team],
    *,
    repository: Repository | None = None,
    field: str = "required_approvals",
) -> RequiredApprovals:
    """N of a pool from settings; refused, naming field, when N is below 1 or above the pool's size, and naming
    reviewers when one is an organization or, given the repository, a team of another owner or a person who cannot
    read it (who could never open the deployment to approve it)."""
    users, teams = list(users), list(teams)
    if any(user.is_organization for user in users):
        raise field_error("Reviewers are people or teams; an organization is neither.", "reviewers")
    if repository is not None:
        if stranger := next((team for team in teams if team.organization_id != repository.owner_id), None):
            raise field_error(f"The team {stranger} does not belong to {repository.owner.username}.", "reviewers")
        if outsider := next((user for user in users if role_for(user, repository) < Role.READ), None):
            raise field_error(f"{outsider.username} cannot read {repository.full_name}.", "reviewers")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise field_error("At least 1 approval is required when an environment has reviewers.", field)
    rule = RequiredApprovals(
        count=count, user_ids=frozenset(u.pk for u in users), team_ids=frozenset(t.pk for t in teams)
    )
    pool = len(rule.pool_user_ids())
    if count > pool:
        raise field_error(
            f"{count} approvals are required but the reviewers count only {pool} "
            f"{'person' if pool == 1 else 'people'}.",
            field,
        )
    return rule


def approvals_met(
    required: int,
    pool_user_ids: Iterable[int],
    approvals: Iterable[int],
    requester_id: int | None,
    prevent_self_review: bool = True,
) -> str | None:
    """None when the approvals (approvers' user ids) make up required of the pool; else what is missing, in words.

    An approval counts once per person and only from the pool; the person who requested the deployment never
    counts, unless prevent_self_review is false."""
    pool, given = frozenset(pool_user_ids), set(approvals)
    counting = pool - {requester_id} if prevent_self_review else pool
    counted = given & counting
    if len(counted) >= required:
        return None
    missing = required - len(counted)
    words = [
        f"{missing} more approval{'s' if missing != 1 else ''} needed ({len(counted)} of {required} given by the "
        "environment's reviewers)."
    ]
    if prevent_self_review and requester_id in given:
        words.append("The requester's own approval does not count.")
    outsiders = len(given - pool)
    if outsiders:
        words.append(
            f"{outsiders} approval{'s come' if outsiders != 1 else ' comes'} from outside the reviewers and "
            f"{'do' if outsiders != 1 else 'does'} not count."
        )
    if len(counting) < required:
        who = "other than the requester " if prevent_self_review and requester_id in pool else ""
        words.append(f"Only {len(counting)} reviewer{'s' if len(counting) != 1 else ''} {who}can approve.")
    return " ".join(words)


# 4. The wait timer and change-freeze windows.

# GitHub's limit: 30 days.
MAX_WAIT_TIMER_MINUTES = 43200
# A cron window lasts at most a year.
MAX_WINDOW_MINUTES = 366 * 24 * 60
# How far next_open looks before saying the environment never opens.
OPEN_HORIZON = timedelta(days=400)
OPEN_STEPS = 10_000


def wait_timer(minutes: object, *, field: str = "wait_timer") -> int:
    """A wait timer from settings: whole minutes from 0 to 43200 (30 days), as GitHub allows."""
    if not isinstance(minutes, int) or isinstance(minutes, bool) or not 0 <= minutes <= MAX_WAIT_TIMER_MINUTES:
        raise field_error(f"The wait timer is whole minutes from 0 to {MAX_WAIT_TIMER_MINUTES} (30 days).", field)
    return minutes


def wait_until(wait_timer_minutes: int, requested_at: datetime) -> datetime:
    """When a deployment requested at requested_at may start: minutes of elapsed time later (a clock change does
    not lengthen or shorten the wait)."""
    return (requested_at.astimezone(UTC) + timedelta(minutes=wait_timer_minutes)).astimezone(requested_at.tzinfo)


@dataclass(frozen=True)
class DateWindow:
    """A freeze from start to end (excluded), given in a time zone: {"start": "2026-12-24T00:00",
    "end": "2027-01-04T08:00", "timezone": "Europe/Paris"}."""

    start: datetime
    end: datetime
    timezone: str
    name: str = ""

    def occurrence(self, now: datetime) -> tuple[datetime, datetime] | None:
        return _covering(self.start, self.end, now)

    def describe(self) -> str:
        return f"{self.name or 'freeze'} from {_local(self.start)} to {_local(self.end)} ({self.timezone})"


@dataclass(frozen=True)
class CronWindow:
    """A freeze that starts each time a cron expression fires in a time zone and lasts duration_minutes of the
    local clock: {"cron": "0 18 * * 5", "duration_minutes": 3840, "timezone": "Europe/Paris"} is Friday 18:00 to
    Monday 10:00, Paris time, also on the weekends when the clocks change (the freeze is then an hour shorter or
    longer), because that is what a person means by it."""

    cron: str
    duration_minutes: int
    timezone: str
    name: str = ""

    def occurrence(self, now: datetime) -> tuple[datetime, datetime] | None:
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone)
        # The latest start at or before now: croniter's get_prev is strictly before the time given, and cron fires
        # on whole minutes. A later start ends later, so no earlier start can cover now when this one does not.
        start = croniter(self.cron, local + timedelta(seconds=1)).get_prev(datetime)
        # Adding to a zoned datetime moves its wall clock; the offset is then the one in force at the end.
        end = (start.replace(tzinfo=None) + timedelta(minutes=self.duration_minutes)).replace(tzinfo=zone)
        return _covering(start, end, now)

    def describe(self) -> str:
        return f"{self.name or 'freeze'} from cron {self.cron!r} for {self.duration_minutes} minutes ({self.timezone})"


Window = DateWindow | CronWindow


def _local(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def _covering(start: datetime, end: datetime, now: datetime) -> tuple[datetime, datetime] | None:
    # Compared in UTC: two datetimes of the same zone compare by their wall clocks, which repeat an hour in autumn.
    return (start, end) if start.astimezone(UTC) <= now.astimezone(UTC) < end.astimezone(UTC) else None


def _zone(value: object, where: str) -> ZoneInfo:
    if not isinstance(value, str) or not value.strip():
        raise field_error("A window needs a time zone, such as Europe/Paris or UTC.", where)
    try:
        return ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise field_error(f"{value!r} is not a time zone (an IANA name such as Europe/Paris).", where) from None


def _moment(value: object, zone: ZoneInfo, where: str) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise field_error(f"{value!r} is not a date and time such as 2026-12-24T18:00.", where) from None
    # A time without an offset is read in the window's zone; in the hour the clocks go back, as the first of the two.
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


def window(data: Mapping, *, field: str = "freeze_windows.0") -> Window:
    """A freeze window from settings, either {"start", "end", "timezone"} or {"cron", "duration_minutes",
    "timezone"}, each with an optional "name"; refused with a field_error naming field.<key>."""
    if not isinstance(data, Mapping):
        raise field_error("A freeze window is an object with start and end, or cron and duration_minutes.", field)
    keys = set(data)
    allowed = {"start", "end", "cron", "duration_minutes", "timezone", "name"}
    if unknown := sorted(keys - allowed, key=str):
        raise field_error(f"{unknown[0]!r} is not a key of a freeze window.", f"{field}.{unknown[0]}")
    name = data.get("name") or ""
    if not isinstance(name, str) or len(name) > 100:
        raise field_error("A window's name is text of at most 100 characters.", f"{field}.name")
    zone = _zone(data.get("timezone"), f"{field}.timezone")
    if keys & {"start", "end"} and keys & {"cron", "duration_minutes"}:
        raise field_error("A window is either start and end, or cron and duration_minutes, not both.", field)
    if keys & {"start", "end"}:
        for key in ("start", "end"):
            if data.get(key) in (None, ""):
                raise field_error(f"A dated window needs its {key}.", f"{field}.{key}")
        start = _moment(data["start"], zone, f"{field}.start")
        end = _moment(data["end"], zone, f"{field}.end")
        if end <= start:
            raise field_error("A window ends after it starts.", f"{field}.end")
        return DateWindow(start=start, end=end, timezone=zone.key, name=name.strip())
    cron = data.get("cron")
    if cron in (None, ""):
        raise field_error("A window needs start and end, or cron and duration_minutes.", f"{field}.cron")
    if not isinstance(cron, str) or len(cron.split()) != 5 or not croniter.is_valid(cron):
        raise field_error(
            f"{cron!r} is not a cron expression of five fields (minute hour day month weekday, e.g. 0 18 * * 5).",
            f"{field}.cron",
        )
    cron = " ".join(cron.split())
    try:
        croniter(cron, datetime(2000, 1, 1, tzinfo=zone)).get_next(datetime)
    except Exception:
        # croniter's own error for a date that never comes, such as the 30th of February.
        raise field_error(f"{cron!r} never fires.", f"{field}.cron") from None
    minutes = data.get("duration_minutes")
    if not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= MAX_WINDOW_MINUTES:
        raise field_error(
            f"A cron window lasts whole minutes from 1 to {MAX_WINDOW_MINUTES} (a year).", f"{field}.duration_minutes"
        )
    return CronWindow(cron=cron, duration_minutes=minutes, timezone=zone.key, name=name.strip())


def windows(data: Iterable[Mapping], *, field: str = "freeze_windows") -> list[Window]:
    """Freeze windows from settings, each refused by its index."""
    if isinstance(data, str | bytes | Mapping):
        raise field_error("Freeze windows are a list.", field)
    return [window(item, field=f"{field}.{index}") for index, item in enumerate(data)]


def frozen_at(windows: Iterable[Window], now: datetime) -> Window | None:
    """The window that freezes deployments at now (the one that ends last when several do), or None."""
    covering = [(found[1].astimezone(UTC), w) for w in windows if (found := w.occurrence(now)) is not None]
    return max(covering, key=lambda pair: pair[0])[1] if covering else None


def next_open(windows: Iterable[Window], now: datetime) -> datetime | None:
    """The first moment from now when no window freezes deployments (now itself when none does), or None when
    windows that follow each other keep the environment frozen past a year (or through OPEN_STEPS occurrences)."""
    windows, moment = list(windows), now
    # Each step ends one occurrence; the count bounds the work of windows a minute apart that follow each other.
    for _step in range(OPEN_STEPS):
        if moment.astimezone(UTC) - now.astimezone(UTC) > OPEN_HORIZON:
            break
        ends = [found[1] for w in windows if (found := w.occurrence(moment)) is not None]
        if not ends:
            return moment
        moment = max(ends, key=lambda end: end.astimezone(UTC))
    return None


def start_blocker(
    windows: Iterable[Window], wait_timer_minutes: int, requested_at: datetime, now: datetime
) -> str | None:
    """Why a deployment requested at requested_at cannot start at now (its wait timer, a freeze), or None."""
    ready = wait_until(wait_timer_minutes, requested_at)
    if now < ready:
        return f"Waiting for the environment's {wait_timer_minutes}-minute timer, until {_local(ready.astimezone(UTC))} UTC."
    windows = list(windows)
    freeze = frozen_at(windows, now)
    if freeze is None:
        return None
    opens = next_open(windows, now)
    until = (
        f"until {_local(opens.astimezone(ZoneInfo(freeze.timezone)))} {freeze.timezone}" if opens else "for over a year"
    )
    return f"Deployments are frozen ({freeze.describe()}), {until}."

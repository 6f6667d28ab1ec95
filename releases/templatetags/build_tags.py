"""Template filters of the build and deployment pages: durations in words and a status's colour and mark."""

from datetime import datetime

from django import template

register = template.Library()

# The state a build status is shown in, as commit statuses are (success, failure, error, pending).
STATES = {
    "SUCCEEDED": "success",
    "FAILED": "failure",
    "TIMED_OUT": "failure",
    "FAULT": "error",
    "STOPPED": "error",
    "QUEUED": "pending",
    "IN_PROGRESS": "pending",
    # Deployments' and their targets' statuses, in CodeDeploy's words.
    "Succeeded": "success",
    "Failed": "failure",
    "Stopped": "error",
    "Skipped": "skipped",
    "SKIPPED": "skipped",
    "Waiting": "pending",
    "Queued": "pending",
    "InProgress": "pending",
    "Pending": "pending",
}
MARKS = {"success": "✓", "pending": "●", "skipped": "–"}


@register.filter
def status_state(status: str) -> str:
    return STATES.get(status, "pending")


@register.filter
def status_mark(status: str) -> str:
    """The sign a status is shown with: ✓ succeeded, ● not ended yet, – skipped, ✗ anything else."""
    return MARKS.get(status_state(status), "✗")


@register.filter
def seconds(value: float | None) -> str:
    """12.3 -> "12.3s", 75 -> "1m 15s", 3700 -> "1h 1m"."""
    if value is None:
        return ""
    value = float(value)
    if value < 60:
        return f"{value:.1f}s"
    minutes, second = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes}m {second}s"
    hours, minute = divmod(minutes, 60)
    return f"{hours}h {minute}m"


@register.simple_tag
def duration(started: datetime | None, ended: datetime | None) -> str:
    if started is None or ended is None:
        return ""
    return seconds((ended - started).total_seconds())


@register.filter
def filesize(size: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} bytes"

"""manage.py users list|create|deactivate|activate|promote|demote: account administration from a shell."""

import secrets

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal import services
from portal.models import User


class Command(BaseCommand):
    help = "List, create, deactivate, activate, promote and demote user accounts."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="List people with their state.")
        listing.add_argument("--search", default="", help="Only usernames or emails containing this text.")
        create = sub.add_parser("create", help="Create an account.")
        create.add_argument("username")
        create.add_argument("--email", default="")
        create.add_argument(
            "--password", default=None, help="Without it, a random password is generated and printed once."
        )
        create.add_argument("--admin", action="store_true", help="Make the account a site administrator.")
        for name, text in (
            ("deactivate", "Stop an account from signing in, pushing and pulling."),
            ("activate", "Let a deactivated account back in."),
            ("promote", "Make an account a site administrator."),
            ("demote", "Take site administrator rights away."),
        ):
            sub.add_parser(name, help=text).add_argument("username")

    def handle(self, *args, action: str, **options) -> None:
        try:
            getattr(self, f"_{action}")(**options)
        except (ValidationError, PermissionDenied) as exc:
            messages = exc.messages if isinstance(exc, ValidationError) else [str(exc)]
            raise CommandError(" ".join(messages)) from exc

    def _user(self, username: str) -> User:
        user = User.objects.people().filter(username__iexact=username).first()
        if user is None:
            raise CommandError(f"There is no user named {username!r}.")
        return user

    def _list(self, *, search: str, **options) -> None:
        people = User.objects.people().order_by("username")
        if search:
            people = people.filter(username__icontains=search) | people.filter(email__icontains=search)
        self.stdout.write(f"{'USERNAME':<24} {'EMAIL':<32} {'ADMIN':<6} {'ACTIVE':<6} LAST LOGIN")
        for user in people:
            last = user.last_login.strftime("%Y-%m-%d %H:%M") if user.last_login else "never"
            self.stdout.write(
                f"{user.username:<24} {user.email:<32} {'yes' if user.is_superuser else 'no':<6} "
                f"{'yes' if user.is_active else 'no':<6} {last}"
            )

    def _create(self, *, username: str, email: str, password: str | None, admin: bool, **options) -> None:
        generated = password is None
        if generated:
            password = secrets.token_urlsafe(12)
        # actor None: whoever runs manage.py on the server is trusted as the system.
        # A password made here is printed for someone else to pass on: it is good for the first sign-in only.
        user = services.create_user(
            actor=None,
            username=username,
            email=email,
            password=password,
            is_admin=admin,
            must_change_password=generated,
        )
        self.stdout.write(f"Created {'administrator' if admin else 'user'} {user.username}.")
        if generated:
            self.stdout.write(f"Password (shown once): {password}")

    def _deactivate(self, *, username: str, **options) -> None:
        services.set_user_active(self._user(username), actor=None, active=False)
        self.stdout.write(f"Deactivated {username}.")

    def _activate(self, *, username: str, **options) -> None:
        services.set_user_active(self._user(username), actor=None, active=True)
        self.stdout.write(f"Activated {username}.")

    def _promote(self, *, username: str, **options) -> None:
        services.set_site_admin(self._user(username), actor=None, admin=True)
        self.stdout.write(f"{username} is now a site administrator.")

    def _demote(self, *, username: str, **options) -> None:
        services.set_site_admin(self._user(username), actor=None, admin=False)
        self.stdout.write(f"{username} is no longer a site administrator.")

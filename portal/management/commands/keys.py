"""`manage.py keys list|add|remove|revoke|lift`: manage every user's SSH keys from the shell, on the audit record."""

import sys

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from portal import services as accounts
from portal.keys import InvalidKey
from portal.models import RevokedKeyFingerprint, SshKey, User


class Command(BaseCommand):
    help = (
        "List, add, remove or revoke SSH keys, and lift revocations. "
        "Changes are made as --actor (default: the first administrator)."
    )
    # Tests hand in a stream instead of the real standard input.
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="list|add|remove|revoke|lift")
        listing = sub.add_parser("list", help="List keys (user keys and deploy keys).")
        listing.add_argument("--user", help="Only this user's keys.")

        add = sub.add_parser("add", help="Register a key for a user; the key comes from --key or standard input.")
        add.add_argument("--user", required=True, help="Whose key it is.")
        add.add_argument("--title", required=True, help="A name for the key, such as 'laptop'.")
        add.add_argument("--key", help="The public key line; read from standard input when absent.")
        add.add_argument("--actor", help="The administrator doing this (default: the first administrator).")

        remove = sub.add_parser("remove", help="Delete a key by id or SHA256 fingerprint; it may be added again.")
        remove.add_argument("key", help="A key id, or its fingerprint (SHA256:…).")
        remove.add_argument("--actor", help="The administrator doing this (default: the first administrator).")

        revoke = sub.add_parser(
            "revoke", help="Delete a key by id or SHA256 fingerprint and block it: nobody can add it again."
        )
        revoke.add_argument("key", help="A key id, or its fingerprint (SHA256:…).")
        revoke.add_argument("--reason", default="", help="Why, told to the key's owner.")
        revoke.add_argument("--actor", help="The administrator doing this (default: the first administrator).")

        lift = sub.add_parser("lift", help="Lift the block on a revoked fingerprint, so it can be added again.")
        lift.add_argument("fingerprint", help="The revoked fingerprint (SHA256:…).")
        lift.add_argument("--actor", help="The administrator doing this (default: the first administrator).")

    def handle(self, *args, **options):
        getattr(self, f"_{options['action']}")(options)

    def _list(self, options) -> None:
        keys = SshKey.objects.select_related("user", "repository__owner").order_by("pk")
        if options["user"]:
            keys = keys.filter(user=self._user(options["user"]))
        rows = [("ID", "OWNER", "TITLE", "TYPE", "FINGERPRINT", "ADDED", "LAST USED")]
        for key in keys:
            owner = key.user.username if key.user else f"deploy:{key.repository.full_name}"
            if key.repository_id is not None and key.writable:
                owner += " (writable)"
            rows.append(
                (
                    str(key.pk),
                    owner,
                    key.title,
                    key.key_type,
                    key.fingerprint,
                    key.created.strftime("%Y-%m-%d %H:%M"),
                    key.last_used.strftime("%Y-%m-%d %H:%M") if key.last_used else "never",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())

    def _add(self, options) -> None:
        actor = self._actor(options["actor"])
        user = self._user(options["user"])
        public_key = options["key"]
        if public_key is None:
            public_key = (options.get("stdin") or sys.stdin).read()
        try:
            key = accounts.add_ssh_key(user, actor=actor, title=options["title"], public_key=public_key)
        except (InvalidKey, PermissionDenied) as exc:
            raise CommandError(str(exc))
        self.stdout.write(f"Added key {key.pk} for {user.username}: {key.fingerprint} ({key.title})")

    def _key(self, ref: str) -> SshKey:
        ref = ref.strip()
        query = Q(fingerprint=ref) | Q(fingerprint=f"SHA256:{ref}")
        if ref.isdigit():
            query |= Q(pk=int(ref))
        key = SshKey.objects.select_related("user", "repository").filter(query).first()
        if key is None:
            raise CommandError(f"No key with id or fingerprint {ref!r}. `manage.py keys list` shows them.")
        return key

    def _remove(self, options) -> None:
        actor = self._actor(options["actor"])
        key = self._key(options["key"])
        owner, fingerprint = _owner(key), key.fingerprint
        try:
            accounts.remove_ssh_key(key, actor=actor)
        except PermissionDenied as exc:
            raise CommandError(str(exc))
        self.stdout.write(f"Removed key {options['key'].strip()} of {owner}: {fingerprint}")

    def _revoke(self, options) -> None:
        actor = self._actor(options["actor"])
        key = self._key(options["key"])
        owner, fingerprint = _owner(key), key.fingerprint
        try:
            accounts.revoke_ssh_key(key, actor=actor, reason=options["reason"])
        except PermissionDenied as exc:
            raise CommandError(str(exc))
        self.stdout.write(f"Revoked key {options['key'].strip()} of {owner}: {fingerprint} (blocked)")

    def _lift(self, options) -> None:
        actor = self._actor(options["actor"])
        ref = options["fingerprint"].strip()
        revocation = RevokedKeyFingerprint.objects.filter(Q(fingerprint=ref) | Q(fingerprint=f"SHA256:{ref}")).first()
        if revocation is None:
            raise CommandError(f"No revoked fingerprint {ref!r}.")
        accounts.lift_key_revocation(revocation, actor=actor)
        self.stdout.write(f"Lifted the block on {revocation.fingerprint}: it can be added again.")

    def _user(self, username: str) -> User:
        user = User.objects.people().filter(username__iexact=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        return user

    def _actor(self, username: str | None) -> User:
        """The named administrator, or the first one, so the audit log always names a person."""
        admins = User.objects.people().filter(is_superuser=True, is_active=True)
        if username:
            actor = admins.filter(username__iexact=username).first()
            if actor is None:
                raise CommandError(f"--actor must name an active administrator; {username!r} is not one.")
            return actor
        actor = admins.order_by("pk").first()
        if actor is None:
            raise CommandError("There is no active administrator to act as; create one first.")
        return actor


def _owner(key: SshKey) -> str:
    return key.user.username if key.user else f"deploy key of {key.repository.full_name}"

from allauth.account.adapter import DefaultAccountAdapter
from django.core.exceptions import ValidationError

from portal.models import Invitation, SiteSettings

# The pending invitation whose link this browser followed (portal.views.accept_invitation).
INVITATION_SESSION_KEY = "portal.invitation"


def invitation_in_session(request) -> Invitation | None:
    pk = request.session.get(INVITATION_SESSION_KEY) if request is not None else None
    return Invitation.objects.pending().filter(pk=pk).first() if pk else None


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request) -> bool:
        return SiteSettings.signup_is_open() or invitation_in_session(request) is not None

    def clean_email(self, email: str) -> str:
        # While sign-up is closed, an invitation lets in the address it was sent to, and no other.
        invitation = invitation_in_session(self.request)
        if invitation is not None and not SiteSettings.signup_is_open() and email.lower() != invitation.email.lower():
            raise ValidationError(f"This invitation is for {invitation.email}.")
        return super().clean_email(email)

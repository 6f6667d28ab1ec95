from allauth.account.adapter import DefaultAccountAdapter

from portal.models import SiteSettings


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request) -> bool:
        return SiteSettings.signup_is_open()

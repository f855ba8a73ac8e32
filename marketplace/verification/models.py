"""An account whose e-mail address is not confirmed yet has one PendingVerification row; confirming deletes it.

Only sign-up creates the row, so accounts made any other way (staff with createsuperuser, the demo, the test
factories, every account that existed before verification) count as confirmed: their address was vouched for by
whoever created them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class PendingVerification(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="pending_verification")
    created_at = models.DateTimeField(auto_now_add=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"unconfirmed: {self.user_id}"

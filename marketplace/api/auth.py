"""Bearer-token authentication for the JSON API. Tokens only: no session cookies, so no CSRF to check."""

from __future__ import annotations

from ninja.security import HttpBearer

from marketplace.accounts.tokens import api_token_authenticate


class TokenAuth(HttpBearer):
    def authenticate(self, request, token: str):
        user = api_token_authenticate(key=token.strip())
        if user is not None:
            # Services and selectors read request.user like the pages do.
            request.user = user
        return user

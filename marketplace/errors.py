"""The one error type services raise for people: a message they can act on, a stable code, optionally the field at fault."""

from __future__ import annotations


class AppError(Exception):
    def __init__(self, message: str, *, code: str = "invalid", field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field
        self.status = status

    def as_json(self) -> dict[str, object]:
        body: dict[str, object] = {"error": {"code": self.code, "message": self.message}}
        if self.field:
            body["error"]["field"] = self.field  # type: ignore[index]
        return body


class NotAllowed(AppError):
    def __init__(self, message: str = "You do not have access to this.", *, code: str = "forbidden") -> None:
        super().__init__(message, code=code, status=403)


class NotFound(AppError):
    def __init__(self, message: str = "Not found.", *, code: str = "not_found") -> None:
        super().__init__(message, code=code, status=404)

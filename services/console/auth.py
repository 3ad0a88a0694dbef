"""Bearer-token checks for /api/v1: 401 without a token or with a wrong one, 403 when a
read-only token asks for a control operation. Tokens never reach a log: the request log
records method, path and status only."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from eventpipe.api.tokens import Scope, Tokens

bearer = HTTPBearer(
    auto_error=False, scheme_name="token",
    description="`Authorization: Bearer <token>`: the control token (EVENTPIPE_API_TOKEN or "
    "DATA_DIR/run/api-token) or the read-only one (EVENTPIPE_API_READ_TOKEN).",
)
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="eventpipe"'}


BEARER = Depends(bearer)


def requires(needed: Scope) -> Callable[..., Scope]:
    def check(request: Request,
              credentials: HTTPAuthorizationCredentials | None = BEARER) -> Scope:
        tokens: Tokens = request.app.state.tokens
        if credentials is None:
            raise HTTPException(401, "this call needs `Authorization: Bearer <token>`",
                                headers=CHALLENGE)
        scope = tokens.scope(credentials.credentials)
        if scope is None:
            raise HTTPException(401, "the bearer token is not valid", headers=CHALLENGE)
        if needed is Scope.CONTROL and scope is not Scope.CONTROL:
            raise HTTPException(403, "this token is read-only; pausing, resuming, stopping "
                                "and submitting need the control token")
        return scope

    return check


READ = Depends(requires(Scope.READ))
CONTROL = Depends(requires(Scope.CONTROL))

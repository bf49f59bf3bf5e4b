"""`Location` headers that resolve against the URL the client called.

Behind API Gateway (REST) the client calls `/api/users`: the event's `requestContext.path` is that path,
stage included (or a custom domain's base path), while `requestContext.resourcePath` is the route, `/users`.
`chalice local` and Chalice's test client fake the context with both equal to the path called. So the prefix
the client used is `path` minus as many trailing segments as the route has, whatever the deployment.
"""

from __future__ import annotations

from urllib.parse import quote

from chalice.app import Request

# What RFC 3986 lets a path segment hold as is, so Location reads /users/a+b@example.com, not a%2Bb.
PATH_SEGMENT_SAFE = "@!$&'()*+,;=:"


def location(request: Request, *segments: str) -> str:
    """The path of `/<segment>/...` under the prefix the client called: `/api/users/a@b.io` behind stage `api`."""
    return called_prefix(request) + "".join(f"/{quote(segment, safe=PATH_SEGMENT_SAFE)}" for segment in segments)


def called_prefix(request: Request) -> str:
    """What precedes the route in the path the client called: `/api` behind stage `api`, `` locally."""
    context = request.context or {}
    route = [part for part in str(context.get("resourcePath") or request.path or "").split("/") if part]
    called = str(context.get("path") or "").rstrip("/").split("/")
    if len(called) <= len(route):  # no path given (a hand-built event): the route is all we know
        return ""
    return "/".join(called[: len(called) - len(route)])

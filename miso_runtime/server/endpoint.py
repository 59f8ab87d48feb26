"""Declaring a route: who may call it, what its body and query are, and how it is documented.

Every route goes through :func:`endpoint`, which records its access level (or that it is
public) on the view, parses and validates its JSON body and query with pydantic, and hands
the models to spectree for ``/openapi.json``. A test walks the URL map and fails on any route
that declares neither an access level nor ``public``.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Callable, TypeVar

from flask import current_app, request
from pydantic import BaseModel, RootModel, ValidationError
from spectree import Response as SpecResponse

from ..auth import Access
from ..errors import MisoError, describe_validation_error
from ..fields import is_printable
from .openapi import spec

ACCESS_ATTRIBUTE = "miso_access"
PUBLIC_ATTRIBUTE = "miso_public"
BODY_ATTRIBUTE = "miso_body"
STATUS_ATTRIBUTE = "miso_status"
MAX_BODY_ATTRIBUTE = "miso_max_body"

View = TypeVar("View", bound=Callable[..., Any])
ModelT = TypeVar("ModelT", bound=BaseModel)


def _validation_status() -> int:
    return current_app.extensions["miso.envelope_for"](request).validation_status


def parse_json_body(model: type[ModelT]) -> ModelT:
    """The request body validated as ``model``; a MisoError in the face's envelope otherwise."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        payload: Any = None if issubclass(model, RootModel) else {}
    else:
        try:
            payload = json.loads(raw, parse_constant=_refuse_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MisoError(
                _validation_status(), "invalid_json", f"the request body is not valid JSON: {exc}"
            ) from None
    if not isinstance(payload, dict) and not issubclass(model, RootModel):
        raise MisoError(_validation_status(), "invalid_request", "the request body must be a JSON object")
    if b"\\u" in raw and not _is_unicode(payload):
        raise MisoError(
            _validation_status(),
            "invalid_json",
            "the request body holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text",
        )
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise MisoError(_validation_status(), "invalid_request", describe_validation_error(exc)) from None


def _refuse_constant(name: str) -> Any:
    """``NaN``, ``Infinity`` and ``-Infinity``, which Python's parser accepts and JSON does not have."""
    raise ValueError(f"{name} is not a JSON value")


def _is_unicode(payload: Any) -> bool:
    """Whether every string in ``payload`` is text: JSON's ``\\ud800`` escapes can make one that is not.

    Python keeps such a lone surrogate in a str, and SQLite, the file system and every encoder
    refuse it later, so it is refused here, where the client can be told.
    """
    try:
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_query(model: type[ModelT]) -> ModelT:
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise MisoError(_validation_status(), "invalid_request", describe_validation_error(exc)) from None


def _check_path_values(values: dict[str, Any]) -> None:
    """A 404 for an id in the URL that nothing can be named by (a NUL or other control character).

    Flask's default converter takes any text but ``/``; such an id would otherwise reach git,
    tmux or SQLite, which refuse it in their own ways.
    """
    for name, value in values.items():
        if isinstance(value, str) and (not value or not is_printable(value)):
            raise MisoError(404, "not_found", f"no {name.replace('_', ' ')} {value!r}")


def endpoint(
    access: Access | None = None,
    *,
    public: bool = False,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    tags: tuple[str, ...] = (),
    max_body: int | None = None,
) -> Callable[[View], View]:
    """Declare a route's access (or ``public=True``), its body/query models and its response model.

    The view receives the parsed models as keyword arguments ``body`` and ``query``. ``status``
    is the status of its success (201 for a route that creates, 202 for one that starts work),
    documented with ``response``. ``max_body`` (bytes) replaces the runtime's body limit for a
    route whose contract allows larger bodies (Caco's 10 MB file writes).
    """
    if (access is None) == (not public):
        raise ValueError("a route declares exactly one of an access level or public=True")

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def run(*args: Any, **kwargs: Any) -> Any:
            _check_path_values(kwargs)
            if body is not None:
                kwargs["body"] = parse_json_body(body)
            if query is not None:
                kwargs["query"] = parse_query(query)
            return view(*args, **kwargs)

        documented = spec.validate(
            json=body,
            query=query,
            resp=SpecResponse(**{f"HTTP_{status}": response}) if response else None,
            tags=tags,
            security={} if public else None,
            skip_validation=True,
        )(view)
        # spectree finds a route's models through the __wrapped__ chain; point it at the
        # documented wrapper while requests run through ``run``.
        run.__wrapped__ = documented  # type: ignore[attr-defined]
        setattr(run, BODY_ATTRIBUTE, body)
        setattr(run, STATUS_ATTRIBUTE, status)
        if max_body is not None:
            setattr(run, MAX_BODY_ATTRIBUTE, max_body)
        if public:
            setattr(run, PUBLIC_ATTRIBUTE, True)
        else:
            setattr(run, ACCESS_ATTRIBUTE, access)
        return run  # type: ignore[return-value]

    return decorate


def declared_access(view: Callable[..., Any]) -> Access | None:
    return getattr(view, ACCESS_ATTRIBUTE, None)


def is_public(view: Callable[..., Any]) -> bool:
    return bool(getattr(view, PUBLIC_ATTRIBUTE, False))


def declared_status(view: Callable[..., Any]) -> int:
    """The status a route answers with when it succeeds."""
    return getattr(view, STATUS_ATTRIBUTE, 200)


def declared_max_body(view: Callable[..., Any], default: int) -> int:
    """The body limit of a route in bytes (``default``: the runtime's, unless the route declares its own)."""
    return getattr(view, MAX_BODY_ATTRIBUTE, default)


def declared_body(view: Callable[..., Any]) -> type[BaseModel] | None:
    """The pydantic model of a route's JSON body, if it takes one."""
    return getattr(view, BODY_ATTRIBUTE, None)

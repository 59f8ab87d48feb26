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
from pydantic import BaseModel, ValidationError
from spectree import Response as SpecResponse

from ..auth import Access
from ..errors import MisoError, describe_validation_error
from .openapi import spec

ACCESS_ATTRIBUTE = "miso_access"
PUBLIC_ATTRIBUTE = "miso_public"
BODY_ATTRIBUTE = "miso_body"

View = TypeVar("View", bound=Callable[..., Any])
ModelT = TypeVar("ModelT", bound=BaseModel)


def _validation_status() -> int:
    return current_app.extensions["miso.envelope_for"](request).validation_status


def parse_json_body(model: type[ModelT]) -> ModelT:
    """The request body validated as ``model``; a MisoError in the face's envelope otherwise."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        payload: Any = {}
    else:
        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MisoError(
                _validation_status(), "invalid_json", f"the request body is not valid JSON: {exc}"
            ) from None
    if not isinstance(payload, dict):
        raise MisoError(_validation_status(), "invalid_request", "the request body must be a JSON object")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise MisoError(_validation_status(), "invalid_request", describe_validation_error(exc)) from None


def parse_query(model: type[ModelT]) -> ModelT:
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise MisoError(_validation_status(), "invalid_request", describe_validation_error(exc)) from None


def endpoint(
    access: Access | None = None,
    *,
    public: bool = False,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    tags: tuple[str, ...] = (),
) -> Callable[[View], View]:
    """Declare a route's access (or ``public=True``), its body/query models and its response model.

    The view receives the parsed models as keyword arguments ``body`` and ``query``.
    """
    if (access is None) == (not public):
        raise ValueError("a route declares exactly one of an access level or public=True")

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def run(*args: Any, **kwargs: Any) -> Any:
            if body is not None:
                kwargs["body"] = parse_json_body(body)
            if query is not None:
                kwargs["query"] = parse_query(query)
            return view(*args, **kwargs)

        documented = spec.validate(
            json=body,
            query=query,
            resp=SpecResponse(HTTP_200=response) if response else None,
            tags=tags,
            security={} if public else None,
            skip_validation=True,
        )(view)
        # spectree finds a route's models through the __wrapped__ chain; point it at the
        # documented wrapper while requests run through ``run``.
        run.__wrapped__ = documented  # type: ignore[attr-defined]
        setattr(run, BODY_ATTRIBUTE, body)
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


def declared_body(view: Callable[..., Any]) -> type[BaseModel] | None:
    """The pydantic model of a route's JSON body, if it takes one."""
    return getattr(view, BODY_ATTRIBUTE, None)

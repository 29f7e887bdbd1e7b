"""The admin HTTP API: ``/api/v1`` (JSON, bearer tokens, roles per bot) and ``/metrics``.

- :mod:`runtime.api.auth`: tokens and roles, pure.
- :mod:`runtime.api.models`: the typed bodies (pydantic), which also give the JSON Schemas.
- :mod:`runtime.api.operation`: one operation's declaration and the order every request is
  answered in (token, bot, input, handler).
- :mod:`runtime.api.routes`: one module per family of endpoints; a new family is one more
  module named in ``routes.FAMILIES``.
- :mod:`runtime.api.openapi`: the OpenAPI 3.1 document, from the same declarations.
- :mod:`runtime.api.install`: puts it all on the Sanic app.
"""

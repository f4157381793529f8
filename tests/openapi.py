"""OpenAPI 3.1 documents as test oracles and as hypothesis strategies (no dependency beyond hypothesis).

:class:`Spec` reads one of ``docs/openapi.yaml`` (the core) or ``docs/edge-openapi.yaml`` (the agent) and offers

- :meth:`Spec.problems`: a small JSON Schema check of a response body ($ref, type, enum, required, properties,
  additionalProperties false, items, oneOf, allOf, min/maxItems, maxLength, pattern, minimum/maximum);
- :meth:`Spec.values`: a strategy of documents valid against a request schema (enums, patterns, bounds and the
  document's own examples), and :meth:`Spec.hostile`: the same with one part broken (wrong type, huge string or
  integer, Unicode digits, a missing required or an extra field, a null);
- :meth:`Spec.cases`: whole HTTP requests: a documented operation with valid, broken or random parameters and
  body, a documented path with another method, or a random path, with random extra query parameters.

Why hand-written rather than schemathesis: schemathesis drives ASGI/WSGI apps or a live URL, not an aiohttp
application inside the test's own event loop, and pulls in a large dependency tree; the documents use a small
subset of JSON Schema that a few dozen lines cover, and the checks the fuzz needs (every status documented for
its route, every error ``{reason, message}``) are ours to write anyway.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from hypothesis import strategies as st

__all__ = ["DOCS", "Case", "Spec"]

DOCS = Path(__file__).parents[1] / "docs"
_TYPES: dict[str, Any] = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
# aiohttp's HTTP parser refuses a request line over 8,190 bytes itself (400 text/plain, before the application:
# documented in both OpenAPI descriptions and tested on its own); the fuzz keeps its URLs under that.
MAX_QUERY_CHARS = 7000
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")

# Hostile scalars: the inputs issue 12 item 9 found 500s with, and their relatives.
UNICODE_DIGITS = ("\u0660\u0661\u0662", "\uff19\uff14\uff13", "\u0969\u096a", "\U0001d7ce\U0001d7cf", "\u00b2\u00b3")
HUGE_INTS = st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**4000, -(10**400), 2**1023])  # under int->str's 4300 digits
HOSTILE_STRINGS = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "9" * 5000,
            "\ud7ff\ue000",
            "\u202e",
            "../../etc/passwd",
            "%00",
            "1e309",
            "NaN",
            "-0",
            "\u0669\u0664\u0663\u0664\u0667\u0666\u0665\u0669\u0661\u0669",  # 9434765919 in Arabic-Indic digits
            "\uff19\uff14\uff13\uff14\uff17\uff16\uff15\uff19\uff11\uff19",  # ... and full-width
            "943 476 5919",
            "943-476 5919",
            *UNICODE_DIGITS,
        ]
    ),
    st.text(max_size=64),
    st.text(alphabet=st.characters(categories=["Nd"]), min_size=1, max_size=12),
)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    HUGE_INTS,
    st.floats(allow_nan=False, allow_infinity=False),
    HOSTILE_STRINGS,
)
ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


@dataclass(frozen=True)
class Case:
    """One HTTP request; ``operation`` is the documented (template, method) it targets, None if none."""

    method: str
    url: str
    body: bytes | None = None
    content_type: str = "application/json"
    operation: tuple[str, str] | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # hypothesis prints the falsifying case: keep it readable
        body = self.body if self.body is None or len(self.body) < 300 else self.body[:300] + b"..."
        return f"Case({self.method} {self.url[:300]} body={body!r} ct={self.content_type})"


def mutated(example: Any) -> st.SearchStrategy[Any]:
    """The document's example with one value somewhere inside replaced by a hostile one, or removed."""

    @st.composite
    def mutate(draw: st.DrawFn, node: Any = example) -> Any:
        if isinstance(node, dict) and node and draw(st.integers(0, 4)):
            key = draw(st.sampled_from(sorted(node)))
            if draw(st.integers(0, 5)) == 0:
                return {k: v for k, v in node.items() if k != key}
            return {**node, key: draw(mutate(node[key]))}
        if isinstance(node, list) and node and draw(st.integers(0, 4)):
            i = draw(st.integers(0, len(node) - 1))
            return [*node[:i], draw(mutate(node[i])), *node[i + 1 :]]
        return draw(st.one_of(JSON_SCALARS, ANY_JSON))

    return mutate()


def dumps(value: object) -> bytes:
    """JSON of any generated value (the stdlib writes integers of any size; orjson stops at 64 bits)."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


class Spec:
    def __init__(self, path: Path) -> None:
        self.doc: dict[str, Any] = yaml.safe_load(path.read_text())

    # -- reading -------------------------------------------------------------------------------------------

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            node: Any = self.doc
            for part in schema["$ref"].removeprefix("#/").split("/"):
                node = node[part]
            schema = node
        return schema

    def operations(self) -> list[tuple[str, str]]:
        return [(p, m.upper()) for p, ops in self.doc["paths"].items() for m in ops if m != "parameters"]

    def operation(self, template: str, method: str) -> dict[str, Any]:
        op: dict[str, Any] = self.doc["paths"][template][method.lower()]
        return op

    def match(self, method: str, path: str) -> tuple[str, str] | None:
        """The documented operation a raw request path and method reach, if any."""
        for template, op_method in self.operations():
            pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
            if op_method == method and re.match(pattern, path):
                return template, op_method
        return None

    def error_body(self, path: str) -> tuple[str, dict[str, Any]]:
        """The media type and schema of an error on ``path`` (``x-error-schemas`` by path prefix, else Error)."""
        for prefix, spec in self.doc.get("x-error-schemas", {}).items():
            if path == prefix or path.startswith(prefix + "/"):
                return spec["media"], {"$ref": spec["schema"]}
        return "application/json", {"$ref": "#/components/schemas/Error"}

    def statuses(self, template: str, method: str) -> set[int]:
        return {int(s) for s in self.operation(template, method)["responses"]}

    def response(self, template: str, method: str, status: int) -> tuple[str, dict[str, Any]]:
        """The documented media type and schema of a response."""
        response = self.resolve(self.operation(template, method)["responses"][str(status)])
        ((media, content),) = response["content"].items()
        return media, content["schema"]

    def request_body(self, template: str, method: str) -> dict[str, Any] | None:
        body = self.operation(template, method).get("requestBody")
        if body is None:
            return None
        content: dict[str, Any] = body["content"]
        return content

    def parameters(self, template: str, method: str) -> list[dict[str, Any]]:
        return [self.resolve(p) for p in self.operation(template, method).get("parameters", [])]

    def security(self, template: str, method: str) -> list[Any]:
        op = self.operation(template, method)
        found: list[Any] = op.get("security", self.doc.get("security", []))
        return found

    # -- checking ------------------------------------------------------------------------------------------

    @staticmethod
    def _is(value: object, name: str) -> bool:
        if name == "integer":
            return isinstance(value, int) and not isinstance(value, bool)
        if name == "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        return isinstance(value, _TYPES[name])

    def problems(self, value: object, schema: dict[str, Any], at: str = "$") -> list[str]:
        s = self.resolve(schema)
        if "allOf" in s:
            return [p for sub in s["allOf"] for p in self.problems(value, sub, at)]
        if "oneOf" in s:
            matches = sum(not self.problems(value, sub, at) for sub in s["oneOf"])
            return [] if matches == 1 else [f"{at}: matches {matches} of oneOf"]
        if "type" in s:
            types = s["type"] if isinstance(s["type"], list) else [s["type"]]
            if not any(self._is(value, t) for t in types):
                return [f"{at}: {type(value).__name__} is not {types}"]
        if "enum" in s and value not in s["enum"]:
            return [f"{at}: {value!r} not in enum"]
        out: list[str] = []
        if isinstance(value, str):
            if len(value) > s.get("maxLength", len(value)):
                out.append(f"{at}: longer than {s['maxLength']}")
            if "pattern" in s and not re.search(s["pattern"], value):
                out.append(f"{at}: {value!r} does not match {s['pattern']}")
        if isinstance(value, int) and not isinstance(value, bool):
            if value < s.get("minimum", value) or value > s.get("maximum", value):
                out.append(f"{at}: {value} out of bounds")
        if isinstance(value, dict):
            out += [f"{at}: missing {name}" for name in s.get("required", []) if name not in value]
            props = s.get("properties", {})
            for name, sub in props.items():
                if name in value:
                    out += self.problems(value[name], sub, f"{at}.{name}")
            if s.get("additionalProperties") is False:
                out += [f"{at}: unexpected {name}" for name in value if name not in props]
        if isinstance(value, list):
            if len(value) < s.get("minItems", 0) or len(value) > s.get("maxItems", len(value)):
                out.append(f"{at}: {len(value)} items out of bounds")
            for i, item in enumerate(value):
                out += self.problems(item, s.get("items", {}), f"{at}[{i}]")
        return out

    # -- generating ----------------------------------------------------------------------------------------

    def values(self, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
        """Documents valid against ``schema`` (as far as the schema says: semantic rules are the server's)."""
        s = self.resolve(schema)
        if "oneOf" in s:
            return st.one_of([self.values(sub) for sub in s["oneOf"]])
        if "allOf" in s:
            return self.values(s["allOf"][0])
        if "enum" in s:
            return st.sampled_from(s["enum"])
        kind = s.get("type")
        if isinstance(kind, list):
            return st.one_of([self.values({**s, "type": k}) for k in kind])
        if kind == "object" or "properties" in s:
            return self._object(s)
        if kind == "array":
            lo = s.get("minItems", 0)
            hi = min(s.get("maxItems", lo + 4), lo + 4)
            return st.lists(
                self.values(s.get("items", {})), min_size=lo, max_size=hi, unique=s.get("uniqueItems", False)
            )
        if kind == "string":
            return self._string(s)
        if kind == "integer":
            lo, hi = s.get("minimum", -(2**63)), s.get("maximum", 2**63 - 1)
            return st.one_of(st.integers(min_value=lo, max_value=hi), st.sampled_from([lo, hi]))
        if kind == "number":
            return st.floats(allow_nan=False, allow_infinity=False)
        if kind == "boolean":
            return st.booleans()
        if kind == "null":
            return st.none()
        return ANY_JSON

    def _string(self, s: dict[str, Any]) -> st.SearchStrategy[str]:
        if "pattern" in s:
            return st.from_regex(s["pattern"], fullmatch=True)
        options: list[st.SearchStrategy[str]] = [st.text(max_size=min(s.get("maxLength", 40), 40))]
        if "example" in s:
            options.append(st.just(str(s["example"])))
        return st.one_of(options)

    def _object(self, s: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
        props: dict[str, Any] = s.get("properties", {})
        required = [k for k in s.get("required", []) if k in props]
        optional = {k: v for k, v in props.items() if k not in required}
        return st.fixed_dictionaries(
            {k: self.values(props[k]) for k in required},
            optional={k: self.values(v) for k, v in optional.items()},
        )

    def hostile(self, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
        """A valid document with one part broken, or any JSON at all."""
        return st.one_of(self._broken(schema, depth=0), ANY_JSON)

    def _broken(self, schema: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
        s = self.resolve(schema)
        if "oneOf" in s:
            return st.one_of([self._broken(sub, depth) for sub in s["oneOf"]])
        wrong = st.one_of(JSON_SCALARS, st.lists(JSON_SCALARS, max_size=3))
        if depth > 4 or not (s.get("type") == "object" or "properties" in s):
            return wrong
        props: dict[str, Any] = s.get("properties", {})
        if not props:
            return wrong

        @st.composite
        def broken(draw: st.DrawFn) -> Any:
            doc = dict(draw(self._object(s)))
            how = draw(st.sampled_from(["drop", "extra", "replace", "deep"]))
            name = draw(st.sampled_from(sorted(props)))
            if how == "drop":
                doc.pop(name, None)
            elif how == "extra":
                doc[draw(st.text(min_size=1, max_size=12))] = draw(ANY_JSON)
            elif how == "replace":
                doc[name] = draw(wrong)
            else:
                doc[name] = draw(self._broken(props[name], depth + 1))
            return doc

        return broken()

    def _parameter_value(self, param: dict[str, Any], valid: bool) -> st.SearchStrategy[str]:
        schema = param.get("schema", {})
        good = self.values(schema).map(lambda v: v if isinstance(v, str) else str(v))
        if "example" in param:
            good = st.one_of(good, st.just(str(param["example"])))
        if valid:
            return good
        bad = st.one_of(HOSTILE_STRINGS, st.integers().map(str), HUGE_INTS.map(str), st.just("9" * 5000))
        return st.one_of(good, bad)

    def cases(
        self,
        hints: dict[str, st.SearchStrategy[str]] | None = None,
        only: list[tuple[str, str]] | None = None,
    ) -> st.SearchStrategy[Case]:
        """Requests for every documented operation (mostly) and for paths and methods nobody documented.

        ``hints`` gives better-than-random values for named parameters (e.g. a role the test client holds);
        ``only`` restricts the cases to these documented operations.
        """
        ops = self.operations()
        known_paths = sorted({p for p, _ in ops})
        hints = hints or {}

        @st.composite
        def documented(draw: st.DrawFn) -> Case:
            template, method = draw(st.sampled_from(only or ops))
            valid = draw(st.booleans())
            url = template
            query: list[tuple[str, str]] = []
            for param in self.parameters(template, method):
                name = param["name"]
                strat = self._parameter_value(param, valid)
                if name in hints:
                    strat = st.one_of(hints[name], strat)
                if param["in"] == "path":
                    url = url.replace("{" + name + "}", quote(draw(strat)[:1000], safe=""))
                elif param.get("required") or draw(st.booleans()):
                    if valid or draw(st.integers(0, 9)):
                        query.append((name, draw(strat)))
            if draw(st.integers(0, 5)) == 0:
                query.append((draw(st.text(min_size=1, max_size=10)), draw(HOSTILE_STRINGS)))
            body, content_type = draw(self._body(template, method, valid))
            while sum(len(quote(k, safe="")) + len(quote(v, safe="")) + 2 for k, v in query) > MAX_QUERY_CHARS:
                longest = max(range(len(query)), key=lambda i: len(query[i][1]))
                query[longest] = (query[longest][0], query[longest][1][: len(query[longest][1]) // 2])
            if query:
                url += "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query)
            return Case(method, url, body, content_type, (template, method))

        @st.composite
        def undocumented(draw: st.DrawFn) -> Case:
            if draw(st.booleans()):
                path = draw(st.sampled_from(known_paths))
                methods = [m for p, m in ops if p == path]
                method = draw(st.sampled_from([m for m in METHODS if m not in methods]))
                url = re.sub(r"\{[^}]+\}", "9434765919", path)
            else:
                segments = draw(
                    st.lists(
                        st.one_of(st.sampled_from(["v1", "v2", "events", "patients", "..", "%2e%2e", ""]), st.text()),
                        min_size=1,
                        max_size=4,
                    )
                )
                url = "/" + "/".join(quote(s, safe="") or "-" for s in segments)
                method = draw(st.sampled_from(METHODS))
            body = draw(st.one_of(st.none(), st.binary(max_size=64)))
            return Case(method, url, body, "application/octet-stream")

        if only:
            return documented()
        return st.one_of(documented(), documented(), documented(), documented(), undocumented())

    def _body(self, template: str, method: str, valid: bool) -> st.SearchStrategy[tuple[bytes | None, str]]:
        content = self.request_body(template, method)
        noise = st.one_of(
            st.none().map(lambda _: (None, "application/json")),
            st.binary(max_size=256).map(lambda b: (b, "application/json")),
            st.just((b"{" * 100_000, "application/json")),  # deep nesting and over the core's 64 KiB
            st.just((dumps({"x": "y" * 70_000}), "application/json")),
            st.just((dumps(["\u0660" * 30_000]), "application/json")),
        )
        if content is None:
            return st.one_of(st.none().map(lambda _: (None, "application/json")), noise)
        ((media, spec),) = content.items()
        schema = spec["schema"]
        good = self.values(schema)
        if "example" in spec:
            good = st.one_of(st.just(spec["example"]), good)
        if media == "application/x-www-form-urlencoded":
            form = st.dictionaries(st.sampled_from(sorted(self.resolve(schema)["properties"])), HOSTILE_STRINGS)
            encoded = form.map(lambda d: "&".join(f"{quote(k)}={quote(v)}" for k, v in d.items()).encode())
            return st.one_of(encoded.map(lambda b: (b, media)), noise)
        if valid:
            return good.map(lambda v: (dumps(v), media))
        bad = self.hostile(schema)
        if "example" in spec:
            bad = st.one_of(bad, mutated(spec["example"]))
        return st.one_of(bad.map(lambda v: (dumps(v), media)), noise)


def check_response(
    spec: Spec, case: Case, status: int, content_type: str, body: bytes, *, any_path_401: bool = False
) -> list[str]:
    """Everything wrong with one answer: a status not documented for the route, or a body outside its schema.

    404 and 405 are documented for every path (the HTTP layer's own errors, in the documents' descriptions),
    and so is 401 on an API whose every non-open path is behind its token (``any_path_401``).
    """
    path = case.url.split("?", 1)[0]
    op = spec.match(case.method, path)
    if status >= 500:
        return [f"{status} {body[:300]!r}"]
    if op is None:
        allowed = {404, 405} | ({401} if any_path_401 else set())
        if status not in allowed:
            return [f"status {status} for an undocumented route, not one of {sorted(allowed)}"]
        media, schema = spec.error_body(path)
    else:
        allowed = spec.statuses(*op)
        if status == 404 and "{" in op[0]:
            return _check_body(spec, *spec.error_body(path), content_type, body)
        if status not in allowed:
            return [f"status {status} not documented for {op[1]} {op[0]} ({sorted(allowed)}): {body[:300]!r}"]
        media, schema = spec.response(op[0], op[1], status)
    return _check_body(spec, media, schema, content_type, body)


def _check_body(spec: Spec, media: str, schema: dict[str, Any], content_type: str, body: bytes) -> list[str]:
    if content_type != media:
        return [f"content type {content_type}, documented {media}"]
    if media not in ("application/json", "application/fhir+json"):
        return spec.problems(body.decode(), schema)
    try:
        value = json.loads(body)
    except ValueError:
        return [f"not JSON: {body[:200]!r}"]
    return spec.problems(value, schema)

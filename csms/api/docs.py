"""The operator API's docs page: the OpenAPI description rendered as one self-contained
HTML page (no script, no CDN: the server may have no internet).

Rendering only; what is described comes from the OpenAPI document given.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

import orjson

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:62rem;padding:1rem 2rem;
color:#1d2228}
h1{font-size:1.6rem}h2{font-size:1.15rem;margin-top:2.2rem;border-top:1px solid #ccd;
padding-top:1rem}code,pre{font:13px/1.35 ui-monospace,monospace}
pre{background:#f4f5f7;padding:.7rem;overflow:auto;max-height:24rem}
.m{display:inline-block;min-width:3.2rem;font-weight:600;color:#fff;background:#2b6cb0;
padding:0 .4rem;border-radius:3px;text-align:center}.m.post{background:#2f855a}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccd;padding:.2rem .5rem;
text-align:left;vertical-align:top}th{background:#f4f5f7}nav a{margin-right:.6rem}
"""


_CODE = re.compile(r"`([^`]+)`")


def _text(text: str) -> str:
    """Plain text with `code` spans, as HTML."""
    return _CODE.sub(r"<code>\1</code>", escape(text))


def _type(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " | ".join(str(v) for v in schema["enum"])
    text = str(schema.get("type", ""))
    if "format" in schema:
        text += f" ({schema['format']})"
    return text


def _parameters(parameters: list[dict[str, Any]]) -> str:
    if not parameters:
        return ""
    rows = "".join(
        "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            escape(p["name"]),
            "path" if p.get("in") == "path" else "query",
            escape(_type(p.get("schema", {}))),
            _text(p.get("description", "")),
        )
        for p in parameters
    )
    return (
        f"<table><tr><th>parameter</th><th>in</th><th>type</th><th>meaning</th></tr>{rows}</table>"
    )


def _anchor(method: str, path: str) -> str:
    return escape(f"{method}-{path}", quote=True)


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    anchor = _anchor(method, path)
    parts = [
        f'<h2 id="{anchor}"><span class="m {escape(method)}">{escape(method.upper())}</span> '
        f"<code>{escape(path)}</code></h2>",
        f"<p>{_text(op.get('summary', ''))}</p>",
    ]
    if op.get("description"):
        parts.append(f"<p>{_text(op['description'])}</p>")
    parts.append(_parameters(op.get("parameters", [])))
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    if body.get("schema", {}).get("properties"):
        parts.append("<p>JSON body:</p>")
        parts.append(
            _parameters(
                [
                    {
                        "name": name,
                        "in": "body",
                        "schema": schema,
                        "description": schema.get("description", ""),
                    }
                    for name, schema in body["schema"]["properties"].items()
                ]
            )
        )
    responses = op.get("responses", {})
    codes = ", ".join(
        f"<code>{escape(code)}</code> {escape(r.get('description', ''))}"
        for code, r in responses.items()
    )
    parts.append(f"<p>Answers: {codes}</p>")
    for response in responses.values():
        example = response.get("content", {}).get("application/json", {}).get("example")
        if example is not None:
            text = orjson.dumps(example, option=orjson.OPT_INDENT_2).decode()
            parts.append(
                f"<details><summary>example answer</summary><pre>{escape(text)}</pre></details>"
            )
    return "\n".join(p for p in parts if p)


def render(document: dict[str, Any]) -> str:
    """The page for an OpenAPI 3 document."""
    info = document.get("info", {})
    title = escape(f"{info.get('title', 'API')} {info.get('version', '')}".strip())
    operations = [
        (path, method, op)
        for path, item in document.get("paths", {}).items()
        for method, op in item.items()
    ]
    nav = " ".join(
        f'<a href="#{_anchor(m, p)}"><code>{escape(m.upper())} {escape(p)}</code></a><br>'
        for p, m, _ in operations
    )
    sections = "\n".join(_operation(p, m, op) for p, m, op in operations)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{_STYLE}</style></head>
<body>
<h1>{title}</h1>
<p>Every path but <code>/health</code>, <code>/api/openapi.json</code> and this page needs
<code>Authorization: Bearer TOKEN</code> (the <code>api.token</code> setting, else the token
file <code>csms serve</code> writes, <code>.csms/api-token</code> by default); without it the
answer is <code>401</code>. Errors are JSON: <code>{{"error": "..."}}</code>, with
<code>"parameter"</code> naming a bad query parameter. Times are ISO 8601 in UTC. Listings
answer <code>{{items, total, limit, next_cursor, next}}</code>: pass
<code>next_cursor</code> back as <code>cursor</code> (or follow <code>next</code>) for the
next page. The machine-readable description: <a href="/api/openapi.json">/api/openapi.json</a>.
</p>
<p>Example: <code>curl -H "Authorization: Bearer $(cat .csms/api-token)"
'http://127.0.0.1:9200/api/transactions?state=active&amp;limit=10'</code></p>
<nav>{nav}</nav>
{sections}
</body></html>
"""

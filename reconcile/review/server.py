"""`reconcile review DB`: a local web page to review candidate pairs, on the standard library's
ThreadingHTTPServer.

Bound to 127.0.0.1 only, on a free port by default. Every request must carry the random token
(``?token=`` in the URL or the ``X-Review-Token`` header) and a local Host header, else 403.
Every decision is committed to the ledger before the response goes out, so closing the page or
killing the server loses nothing. Assets come from ``reconcile/web`` (no CDN, no internet).
"""
from __future__ import annotations

import hmac
import json
import secrets
import sqlite3
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import sqlite_utils

from reconcile.errors import ConfigError, ReconcileError
from reconcile.i18n import catalogue, get_lang
from reconcile.report import open_report, resolve_run
from reconcile.review.ledger import DECISIONS, SOURCE_PAIRS, ensure_ledger, record_decision, undo_decision
from reconcile.review.pairs import BANDS, OUTCOMES, STATES, filter_pairs, order_queue, pair_states
from reconcile.review.view import pair_detail, reveal

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
ASSETS = {"review.js": "text/javascript; charset=utf-8", "review.css": "text/css; charset=utf-8"}
MAX_BODY = 64 * 1024
MAX_QUEUE = 5000  # items sent to the page at once; filters narrow the rest
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def page_texts(lang: str) -> dict[str, str]:
    """The catalogue's review.web.* and review.field.* texts in one language, for the page."""
    out = {}
    for key, entry in catalogue().items():
        if key.startswith("review.web.") or key.startswith("review.field."):
            out[key.split(".", 1)[1]] = entry[lang]
    return out


def _queue_item(row: dict) -> dict:
    p = row.get("match_probability")
    return {
        "sp": row["source_pair"], "o": row["origin_key"], "d": row["dest_key"],
        "p": None if p is None or p != p else round(float(p), 4),
        "state": row["state"], "decision": row.get("review_decision"), "model": row.get("model_decision"),
        "ln": row.get("left_name") or "", "rn": row.get("right_name") or "",
        "unit": row.get("unit") or "", "outcomes": row.get("outcomes") or [], "stale": int(row.get("stale") or 0),
    }


class ReviewApp:
    """Request handling independent of HTTP plumbing: one database, one run, one reviewer."""

    def __init__(self, db_path: str | Path, *, run: int | None, reviewer: str, lang: str | None = None) -> None:
        self.db_path = str(db_path)
        db = open_report(self.db_path, create=False)
        try:
            ensure_ledger(db)
            self.run_id = resolve_run(db, run)
        finally:
            db.conn.close()
        self.reviewer = reviewer
        self.lang = lang or get_lang()
        self.token = secrets.token_urlsafe(24)

    def connect(self) -> sqlite_utils.Database:
        # One connection per request: handler threads never share a sqlite3 connection.
        return sqlite_utils.Database(sqlite3.connect(self.db_path, timeout=30))

    def boot(self) -> dict[str, Any]:
        return {
            "token": self.token, "run_id": self.run_id, "reviewer": self.reviewer, "lang": self.lang,
            "texts": page_texts(self.lang), "bands": list(BANDS), "outcomes": list(OUTCOMES), "states": list(STATES),
        }

    def html(self) -> str:
        boot = json.dumps(self.boot(), ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        page = (WEB_DIR / "review.html").read_text(encoding="utf-8")
        return (page.replace("__LANG__", "zh-CN" if self.lang == "zh" else "en")
                .replace("__TOKEN__", self.token).replace("__BOOT__", boot)
                .replace("__TITLE__", page_texts(self.lang).get("web.title", "review")))

    def queue(self, q: dict[str, str]) -> dict[str, Any]:
        db = self.connect()
        try:
            st = pair_states(db, self.run_id)
            units = sorted({u for col in ("left_unit", "right_unit") for u in st.get(col, []) if u}) if not st.empty else []
            counts = {s: int((st["state"] == s).sum()) if not st.empty else 0 for s in STATES}
            band = q.get("band") or None
            if band and band not in BANDS:
                band = None
            view = order_queue(filter_pairs(
                st, band=band, unit=q.get("unit") or None, outcome=q.get("outcome") or None, state=q.get("state") or None,
            ))
        finally:
            db.conn.close()
        items = [_queue_item(r) for r in view.head(MAX_QUEUE).to_dict("records")]
        return {"run_id": self.run_id, "total": int(len(view)), "items": items, "units": units, "counts": counts}

    def _pair_args(self, q: dict[str, Any]) -> tuple[str, str, str]:
        sp = str(q.get("source_pair") or q.get("sp") or "origin-dest")
        if sp not in SOURCE_PAIRS:
            raise ValueError("bad source_pair")
        o, d = q.get("origin_key", q.get("o")), q.get("dest_key", q.get("d"))
        if o is None or d is None:
            raise ValueError("origin_key and dest_key are required")
        return sp, str(o), str(d)

    def pair(self, q: dict[str, Any]) -> dict | None:
        sp, o, d = self._pair_args(q)
        db = self.connect()
        try:
            return pair_detail(db, self.run_id, sp, o, d, self.lang)
        finally:
            db.conn.close()

    def decide(self, body: dict[str, Any]) -> dict | None:
        sp, o, d = self._pair_args(body)
        decision = body.get("decision")
        if decision not in DECISIONS:
            raise ValueError("bad decision")
        reason = str(body.get("reason") or "")[:2000]
        db = self.connect()
        try:
            rec = record_decision(db, o, d, decision, self.reviewer, source_pair=sp, reason=reason,
                                  run_id=self.run_id, channel="web")
            detail = pair_detail(db, self.run_id, sp, o, d, self.lang)
        finally:
            db.conn.close()
        return {"decision_id": rec.decision_id, "created": rec.created, "pair": detail}

    def undo(self, body: dict[str, Any]) -> dict | None:
        sp, o, d = self._pair_args(body)
        db = self.connect()
        try:
            rec = undo_decision(db, o, d, self.reviewer, source_pair=sp, run_id=self.run_id, channel="web")
            detail = pair_detail(db, self.run_id, sp, o, d, self.lang)
        finally:
            db.conn.close()
        return {"decision_id": rec.decision_id if rec else None, "created": rec is not None, "pair": detail}

    def reveal(self, body: dict[str, Any]) -> dict | None:
        sp, o, d = self._pair_args(body)
        side = body.get("side")
        if side not in ("left", "right"):
            raise ValueError("bad side")
        db = self.connect()
        try:
            return reveal(db, self.run_id, sp, o, d, side, self.reviewer, channel="web")
        finally:
            db.conn.close()


class _Handler(BaseHTTPRequestHandler):
    server_version = "reconcile-review"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    @property
    def app(self) -> ReviewApp:
        return self.server.app  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        # The default logs every request line, token included, to stderr: stay quiet.
        return

    # ---- plumbing
    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Security-Policy", CSP)
        if status >= 400:
            # An unread request body must not be parsed as the next keep-alive request.
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False, default=str).encode("utf-8"), "application/json; charset=utf-8")

    def _authorised(self, query: dict[str, list[str]]) -> bool:
        port = self.server.server_address[1]
        host = (self.headers.get("Host") or "").lower()
        # Only local Host names: a page on another site resolving its name to 127.0.0.1
        # (DNS rebinding) sends its own Host.
        if host not in (f"127.0.0.1:{port}", f"localhost:{port}"):
            return False
        given = self.headers.get("X-Review-Token") or (query.get("token") or [""])[0]
        return hmac.compare_digest(given.encode(), self.app.token.encode())

    def _route(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        if not self._authorised(query):
            self._send(HTTPStatus.FORBIDDEN, b"403 Forbidden: missing or wrong token\n", "text/plain; charset=utf-8")
            return
        path = parts.path
        try:
            if method == "GET":
                q = {k: v[0] for k, v in query.items()}
                if path in ("/", "/index.html"):
                    self._send(HTTPStatus.OK, self.app.html().encode("utf-8"), "text/html; charset=utf-8")
                elif path.startswith("/static/") and path[len("/static/"):] in ASSETS:
                    name = path[len("/static/"):]
                    self._send(HTTPStatus.OK, (WEB_DIR / name).read_bytes(), ASSETS[name])
                elif path == "/api/queue":
                    self._json(HTTPStatus.OK, self.app.queue(q))
                elif path == "/api/pair":
                    self._result(self.app.pair(q))
                else:
                    self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
                return
            body = self._body()
            if body is None:
                return
            handler = {"/api/decide": self.app.decide, "/api/undo": self.app.undo, "/api/reveal": self.app.reveal}.get(path)
            if handler is None:
                self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
                return
            self._result(handler(body))
        except ValueError as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        except ReconcileError as exc:
            self._json(HTTPStatus.CONFLICT, {"error": exc.render(self.app.lang), "key": exc.key})
        except sqlite3.OperationalError as exc:  # e.g. the database is locked by a running match
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)})

    def _result(self, result: Any) -> None:
        if result is None:
            self._json(HTTPStatus.NOT_FOUND, {"error": "pair not in this run"})
        else:
            self._json(HTTPStatus.OK, result)

    def _body(self) -> dict | None:
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            self._json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": "JSON body expected"})
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "body too large"})
            return None
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            self._json(HTTPStatus.BAD_REQUEST, {"error": "bad JSON"})
            return None
        if not isinstance(body, dict):
            self._json(HTTPStatus.BAD_REQUEST, {"error": "JSON object expected"})
            return None
        return body

    def do_GET(self) -> None:  # noqa: N802
        self._route("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")


class ReviewServer(ThreadingHTTPServer):
    """The review page's HTTP server (127.0.0.1 only). ``url`` carries the token."""

    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, app: ReviewApp, port: int = 0) -> None:
        self.app = app
        super().__init__(("127.0.0.1", port), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/?token={self.app.token}"

    def start_background(self) -> threading.Thread:
        """Serve in a daemon thread (tests); stop with ``shutdown()`` then ``server_close()``."""
        th = threading.Thread(target=self.serve_forever, name="reconcile-review", daemon=True)
        th.start()
        return th


def serve(
    db_path: str | Path, *, run: int | None, reviewer: str, port: int = 0, open_browser: bool = True,
    lang: str | None = None, echo=None,
) -> None:
    """Run the review page until Ctrl-C.

    ``echo(text, err)`` receives the messages: the URL line with ``err=False`` (stdout, so a
    script can read it), the hint and the stop message with ``err=True``.
    """
    if echo is None:
        import sys

        def echo(text: str, err: bool = False) -> None:
            print(text, file=sys.stderr if err else sys.stdout, flush=True)

    from reconcile.i18n import t

    app = ReviewApp(db_path, run=run, reviewer=reviewer, lang=lang)
    try:
        server = ReviewServer(app, port=port)
    except OSError as exc:  # port taken, or not allowed
        raise ConfigError("review.port_unavailable", port=port, detail=exc.strerror or str(exc)) from None
    echo(t("review.serve.started", run=app.run_id, reviewer=reviewer, url=server.url))
    echo(t("review.serve.stop_hint"), True)
    if open_browser:
        import webbrowser

        threading.Thread(target=webbrowser.open, args=(server.url,), daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        echo(t("review.serve.stopped"), True)

"""The integrations under posthog-python's import paths
(libposthog.integrations.django / flask / celery): what a request or a task
adds to the events captured in it, compared field by field with
posthog-python's own integrations where the framework is installed."""

from __future__ import annotations

import types

import pytest

import libposthog
from test_parity import _compare

posthog = pytest.importorskip("posthog")


def _sorted_tags(events):
    for e in events:
        if isinstance(e["properties"].get("$context_tags"), list):
            e["properties"]["$context_tags"] = sorted(e["properties"]["$context_tags"])
    return events


def _both(server, make_client, run):
    """run(module, client) with libposthog and with posthog-python; the events."""
    ours = make_client()
    run("libposthog", ours)
    ours.flush()
    o = _sorted_tags(server.events())
    server.reset()
    theirs = posthog.Posthog("phc_test", host=server.url)
    try:
        run("posthog", theirs)
        theirs.flush()
        t = _sorted_tags(server.wait_events(len(o)))
    finally:
        theirs.shutdown()
    return o, t


# ------------------------------------------------------------------ Django

@pytest.fixture(scope="module")
def django_settings():
    django = pytest.importorskip("django")
    from django.conf import settings

    if not settings.configured:
        settings.configure(DEBUG=False, ALLOWED_HOSTS=["*"], SECRET_KEY="x",
                           USE_TZ=True, INSTALLED_APPS=[])
        django.setup()
    return settings


def test_django_middleware_matches_posthog_python(server, make_client, django_settings,
                                                  monkeypatch):
    monkeypatch.setenv("POSTHOG_CAPTURE_MODE", "v0")
    import importlib

    from django.test import RequestFactory

    def run(pkg, client):
        mw_mod = importlib.import_module(pkg + ".integrations.django")
        monkeypatch.setattr(django_settings, "POSTHOG_MW_CAPTURE_EXCEPTIONS", False,
                            raising=False)
        monkeypatch.setattr(django_settings, "POSTHOG_MW_EXTRA_PROPERTIES",
                            lambda req: {"tenant": "t1"}, raising=False)

        def view(request):
            client.capture("page viewed", properties={"own": 1})
            return "response"

        mw = mw_mod.PosthogContextMiddleware(view)
        rf = RequestFactory()
        req = rf.get("/shop/cart?x=1", HTTP_USER_AGENT="UA/1.0",
                     HTTP_X_FORWARDED_FOR="203.0.113.9",
                     HTTP_X_POSTHOG_DISTINCT_ID="front-user",
                     HTTP_X_POSTHOG_SESSION_ID="front-session")
        user = types.SimpleNamespace(is_authenticated=True, pk=42, email="a@b.c")
        req.user = user
        assert mw(req) == "response"
        req2 = rf.post("/login")
        req2.user = user  # no headers: the authenticated user's pk
        mw(req2)

    o, t = _both(server, make_client, run)
    assert len(o) == len(t) == 2
    for a, b in zip(o, t):
        _compare(a, b)
    p = o[0]["properties"]
    assert o[0]["distinct_id"] == "front-user" and p["$session_id"] == "front-session"
    assert p["$current_url"] == "http://testserver/shop/cart?x=1"
    assert (p["$request_method"], p["$request_path"], p["$ip"], p["$user_agent"],
            p["email"], p["tenant"], p["own"]) == \
        ("GET", "/shop/cart", "203.0.113.9", "UA/1.0", "a@b.c", "t1", 1)
    assert o[1]["distinct_id"] == "42" and "$session_id" not in o[1]["properties"]


def test_django_middleware_filter_and_exceptions(server, make_client, django_settings,
                                                 monkeypatch):
    from django.test import RequestFactory

    from libposthog.integrations.django import PosthogContextMiddleware

    seen = []
    client = make_client()
    client.capture_exception = lambda e: seen.append(e)  # what error tracking provides
    monkeypatch.setattr(django_settings, "POSTHOG_MW_CLIENT", client, raising=False)
    monkeypatch.setattr(django_settings, "POSTHOG_MW_CAPTURE_EXCEPTIONS", True, raising=False)
    monkeypatch.setattr(django_settings, "POSTHOG_MW_REQUEST_FILTER",
                        lambda req: not req.path.startswith("/health"), raising=False)

    def view(request):
        client.capture("in view", distinct_id="u")
        return "ok"

    mw = PosthogContextMiddleware(view)
    rf = RequestFactory()
    mw(rf.get("/health"))
    mw.process_exception(rf.get("/health"), ValueError("filtered"))
    mw(rf.get("/work"))
    mw.process_exception(rf.get("/work"), ValueError("boom"))
    client.flush()
    ev = server.events()
    assert "$request_path" not in ev[0]["properties"]
    assert ev[1]["properties"]["$request_path"] == "/work"
    assert [str(e) for e in seen] == ["boom"]


def test_django_async_chain(server, make_client, django_settings):
    import asyncio

    from django.test import RequestFactory

    from libposthog.integrations.django import PosthogContextMiddleware

    client = make_client()

    async def view(request):
        client.capture("async view")
        return "ok"

    mw = PosthogContextMiddleware(view)
    req = RequestFactory().get("/a", HTTP_X_POSTHOG_DISTINCT_ID="d1")

    async def auser():
        return types.SimpleNamespace(is_authenticated=False)

    req.auser = auser
    assert asyncio.run(mw(req)) == "ok"
    client.flush()
    (e,) = server.events()
    assert e["distinct_id"] == "d1" and e["properties"]["$request_path"] == "/a"


# ------------------------------------------------------------------ Flask

def test_flask_integration_matches_posthog_python(server, make_client, monkeypatch):
    monkeypatch.setenv("POSTHOG_CAPTURE_MODE", "v0")
    flask = pytest.importorskip("flask")
    import importlib

    def run(pkg, client):
        mod = importlib.import_module(pkg + ".integrations.flask")
        app = flask.Flask("app_" + pkg)

        @app.route("/items/<int:n>")
        def item(n):
            client.capture("item viewed", properties={"n": n})
            return "ok"

        mod.PosthogFlaskIntegration(app, client=client, capture_exceptions=False,
                                    extra_properties=lambda req: {"tenant": "t1"})
        r = app.test_client().get("/items/7?secret=1", headers={
            "User-Agent": "UA/2", "X-POSTHOG-DISTINCT-ID": "fu", "X-POSTHOG-SESSION-ID": "fs"})
        assert r.status_code == 200
        client.capture("after the request", distinct_id="x")

    o, t = _both(server, make_client, run)
    assert len(o) == len(t) == 2
    for a, b in zip(o, t):
        _compare(a, b)
    p = o[0]["properties"]
    assert o[0]["distinct_id"] == "fu" and p["$session_id"] == "fs"
    assert p["$current_url"] == "http://localhost/items/7"  # no query string
    assert p["$request_route"] == "/items/<int:n>" and p["tenant"] == "t1"
    assert "$context_tags" not in o[1]["properties"]


def test_flask_unhandled_exception_is_captured(server, make_client):
    flask = pytest.importorskip("flask")
    from libposthog.integrations.flask import PosthogFlaskIntegration

    seen = []
    client = make_client()
    client.capture_exception = lambda e: seen.append(e)
    app = flask.Flask("boom")

    @app.route("/boom")
    def boom():
        raise KeyError("nope")

    PosthogFlaskIntegration(app, client=client, capture_exceptions=True)
    assert app.test_client().get("/boom").status_code == 500
    assert [type(e) for e in seen] == [KeyError]
    with pytest.raises(RuntimeError):
        PosthogFlaskIntegration(app)  # once per app


# ------------------------------------------------------------------ Celery

class _Request:
    def __init__(self, headers):
        self.headers = headers
        self.hostname = "worker-1"
        self.retries = 0
        self.delivery_info = {"exchange": "", "routing_key": "celery", "queue": "celery"}
        self.id = "task-1"


def test_celery_propagates_the_context_and_reports_the_lifecycle(server, make_client):
    from libposthog.integrations.celery import PosthogCeleryIntegration

    client = make_client()
    seen = []
    client.capture_exception = lambda e: seen.append(e)
    integ = PosthogCeleryIntegration(client=client)
    integ._celery_version = "5.x"
    # publisher side: the context goes into the task's headers
    headers = {"id": "task-1"}
    with libposthog.new_context():
        libposthog.identify_context("publisher-user")
        libposthog.set_context_session("s-1")
        libposthog.tag("origin", "web")
        integ._on_before_task_publish(headers=headers)
    integ._on_after_task_publish(sender="app.tasks.charge", headers=headers, exchange="",
                                 routing_key="celery")
    # worker side: the nested headers, as Celery protocol 2 delivers them
    sender = types.SimpleNamespace(name="app.tasks.charge", request=_Request(headers["headers"]))
    integ._on_task_prerun(task_id="task-1", sender=sender)
    client.capture("charged")  # inside the task: the publisher's identity and tags
    integ._on_task_failure(task_id="task-1", sender=sender, exception=RuntimeError("card declined"))
    client.capture("outside", distinct_id="x")
    client.flush()
    ev = {e["event"]: e for e in server.events()}
    assert set(ev) == {"celery task published", "celery task started", "charged",
                       "celery task failure", "outside"}
    assert ev["celery task published"]["properties"]["celery_state"] == "published"
    charged = ev["charged"]
    assert charged["distinct_id"] == "publisher-user"
    assert charged["properties"]["$session_id"] == "s-1"
    assert charged["properties"]["origin"] == "web"
    assert charged["properties"]["celery_task_name"] == "app.tasks.charge"
    fail = ev["celery task failure"]["properties"]
    assert (fail["error_type"], fail["error_message"]) == ("RuntimeError", "card declined")
    assert fail["celery_task_duration_ms"] >= 0 and fail["celery_queue"] == "celery"
    assert [str(e) for e in seen] == ["card declined"]
    assert "origin" not in ev["outside"]["properties"]
    assert libposthog.get_tags() == {}

"""Issue 9: what the application learns when something is wrong - drop
reasons by name, before_send raising BaseException, self-referencing data,
the server's answer in on_error, option errors that say what to write,
log_level, and flush telling delivered from dropped."""

from __future__ import annotations

import logging
import threading

import pytest

from libposthog import Posthog, PosthogError, _native


def _names(events):
    return [e["event"] for e in events]


# ------------------------------------------------------------ drop reasons


def test_every_c_drop_reason_has_its_name():
    names = _native.drop_reason_names()
    assert names[:7] == ["queue_full", "invalid", "too_large", "rejected",
                         "retries_exhausted", "before_send", "shutdown"]
    assert names[7:11] == ["storage_full", "expired", "corrupt", "server_dropped"]
    for i, n in enumerate(names):
        assert _native.drop_reason_name(i) == n
    assert _native.drop_reason_name(len(names)) == "unknown_%d" % len(names)


def test_on_error_gets_server_dropped_by_name(server, make_client):
    seen = []
    done = threading.Event()

    def on_error(err, batch):
        seen.append(err)
        done.set()

    c = make_client(on_error=on_error, capture_mode="v1")
    server.faults([{"verdicts": [{"match": {"index": 0}, "result": "drop",
                                  "details": "billing_limit_exceeded"}]}])
    c.capture("over-quota", distinct_id="u")
    c.flush()
    assert done.wait(5)
    assert seen[0].reason == "server_dropped"  # was the string '10'
    assert "billing_limit_exceeded" in seen[0].message
    assert c.stats()["dropped_server_dropped"] == 1


# ------------------------------------------------------------ the server's answer


def test_on_error_receives_the_server_body(server, make_client):
    seen = []
    done = threading.Event()
    c = make_client(on_error=lambda err, batch: (seen.append(err), done.set()), max_retries=0)
    server.faults([{"status": 401,
                    "body": '{"type":"authentication_error","detail":"Project API key invalid"}'}])
    c.capture("e", distinct_id="u")
    c.flush()
    assert done.wait(5)
    assert seen[0].status == 401 and seen[0].reason == "rejected"
    assert "Project API key invalid" in seen[0].message


# ------------------------------------------------------------ before_send raising BaseException


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_before_send_base_exception_drops_and_propagates(server, make_client, exc):
    def bs(msg):
        if msg["event"] == "interrupted":
            raise exc()
        return msg

    c = make_client(before_send=bs)
    with pytest.raises(exc):
        c.capture("interrupted", distinct_id="u")
    assert c.capture("kept", distinct_id="u") is not None
    c.flush()
    # the unfiltered event was never sent; its drop is counted
    assert _names(server.wait_events(1)) == ["kept"]
    assert c.stats()["dropped_before_send"] == 1


# ------------------------------------------------------------ self-referencing data


def test_self_referencing_properties_refused_and_counted(server, make_client, caplog):
    c = make_client()
    props = {"a": {"b": 1}}
    props["a"]["self"] = props["a"]
    with caplog.at_level(logging.ERROR, logger="libposthog"):
        assert c.capture("loop", distinct_id="u", properties=props) is None
    assert "reference cycle" in caplog.text and "properties['a']['self']" in caplog.text
    assert "Traceback" not in caplog.text and len(caplog.text) < 2000
    lst = [1]
    lst.append(lst)
    assert c.set(distinct_id="u", properties={"l": lst}) is None
    assert c.capture("fine", distinct_id="u") is not None
    c.flush()
    assert _names(server.wait_events(1)) == ["fine"]
    st = c.stats()
    assert st["dropped_invalid"] == 2 and st["captured"] == 1


def test_self_referencing_properties_raise_with_debug(server, make_client):
    c = make_client(debug=True)
    d = {}
    d["d"] = d
    with pytest.raises(PosthogError, match="reference cycle"):
        c.capture("loop", distinct_id="u", properties=d)
    assert c.stats()["dropped_invalid"] == 1


# ------------------------------------------------------------ options


def test_option_errors_name_key_value_and_choices(server, make_client, caplog):
    with caplog.at_level(logging.ERROR, logger="libposthog"):
        c = make_client(options={"max_queue_bytes": "32M"})
    assert 'max_queue_bytes="32M" is invalid: expected a whole number from 65536' in caplog.text
    assert not c.disabled  # an ignored tuning option leaves a working client


def test_refused_host_disables_instead_of_default_host(server, make_client, caplog):
    with caplog.at_level(logging.ERROR, logger="libposthog"):
        c = make_client(host="ftp://eu.posthog.com")
    assert c.disabled
    assert 'host="ftp://eu.posthog.com" is invalid' in caplog.text
    assert "https://" in caplog.text
    assert c.capture("e", distinct_id="u") is None


def test_refused_api_key_is_masked(server, make_client, caplog, monkeypatch):
    monkeypatch.setenv("POSTHOG_API_KEY", "phc_from_the_environment")
    with caplog.at_level(logging.ERROR, logger="libposthog"):
        c = make_client(project_api_key="phc_verysecretvalue\x01tail")
    assert "api_key" in caplog.text and "phc_****" in caplog.text
    assert "verysecret" not in caplog.text
    # not silently sent with the environment's key instead
    assert c.disabled


def test_log_level_silences_library_warnings(server, make_client, caplog):
    with caplog.at_level(logging.WARNING, logger="libposthog"):
        make_client(options={"tls_verify": False})
    assert "tls_verify=0" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="libposthog"):
        make_client(options={"tls_verify": False, "log_level": "error"})
    assert "tls_verify=0" not in caplog.text


# ------------------------------------------------------------ flush result


def test_flush_says_whether_everything_was_delivered(server, make_client, caplog):
    c = make_client(max_retries=0)
    c.capture("ok", distinct_id="u")
    assert c.flush() is True
    server.faults([{"status": 400}])
    c.capture("doomed", distinct_id="u")
    with caplog.at_level(logging.WARNING, logger="libposthog"):
        assert c.flush() is False
    assert "dropped instead of delivered" in caplog.text

"""waf module through the real binary, in front of the real backend: every engine phase and
every intervention as the client sees it (status, redirect, drop), nothing of a denied request
reaching the backend, nothing of a denied response reaching the client in `buffer` mode, the
CRS in blocking and detection mode, the CVE-2024-1019 path trick, audit events with redaction,
metrics, and rule errors refused by `gatehouse check` and by a reload."""

import json
import re
import os
import signal
import time
from pathlib import Path

import pytest

import harness
from admin_helpers import admin_port, scrape
from harness import Client

MODULES = ("round_robin", "waf", "compress")
CRS = Path("/usr/share/modsecurity-crs/rules")

# Rules of our own, no CRS: one per phase and action.
RULES = r"""
SecRule REQUEST_HEADERS:X-Evil "@streq 1" "id:1001,phase:1,deny,status:406,log,msg:'evil header'"
SecRule ARGS:go "@streq away" "id:1002,phase:1,redirect:https://example.com/blocked,log"
SecRule ARGS:drop "@streq 1" "id:1003,phase:1,drop,log"
SecRule ARGS:password "@streq tripwire" "id:1008,phase:2,pass,log,msg:'password seen',logdata:'%{MATCHED_VAR_NAME}=%{MATCHED_VAR}'"
SecRule ARGS_POST:evil "@streq 1" "id:1004,phase:2,deny,log,msg:'evil argument'"
SecRule RESPONSE_HEADERS:X-Backend-Private "@streq secret" "id:1005,phase:3,deny,log"
SecRule RESPONSE_BODY "@contains line 1500:" "id:1006,phase:4,deny,log,msg:'leak'"
SecRule REQUEST_FILENAME "@contains <script>" "id:1007,phase:1,deny,log,msg:'script in path'"
SecRule ARGS:act2 "@streq deny" "id:1102,phase:2,deny,status:451,log"
SecRule ARGS:act2 "@streq redirect" "id:1103,phase:2,redirect:https://example.com/p2,log"
SecRule ARGS:act2 "@streq drop" "id:1104,phase:2,drop,log"
SecRule ARGS:act3 "@streq deny" "id:1105,phase:3,deny,status:451,log"
SecRule ARGS:act3 "@streq redirect" "id:1106,phase:3,redirect:https://example.com/p3,log"
SecRule ARGS:act3 "@streq drop" "id:1107,phase:3,drop,log"
SecRule ARGS:act4 "@streq deny" "id:1108,phase:4,deny,status:451,log"
SecRule ARGS:act4 "@streq redirect" "id:1109,phase:4,redirect:https://example.com/p4,log"
SecRule ARGS:act4 "@streq drop" "id:1110,phase:4,drop,log"
"""


def waf_config(backend, module_table="", route_extra="", extra="", admin=False):
    text = harness.proxy_config([backend], route='filters = ["waf"]\n' + route_extra,
                                extra=extra + "\n[filter.waf]\n" + module_table)
    if admin:
        text = text.replace("[[listener]]", "[admin]\nlisten = \"127.0.0.1:0\"\n\n[[listener]]", 1)
    return text.replace(harness.modules_toml(), harness.modules_toml(MODULES))


def own_rules_table(tmp, extra=""):
    path = Path(tmp) / "own.conf"
    path.write_text(RULES)
    return ('crs = false\nrules = [%s]\naudit_log = %s\nengine_log = %s\n%s'
            % (json.dumps(str(path)), json.dumps(str(Path(tmp) / "audit.json")),
               json.dumps(str(Path(tmp) / "engine.log")), extra))


@pytest.fixture(scope="module")
def own(module_processes):
    """gatehouse with our own rules (no CRS), response_body = buffer (the default)."""
    tmp = module_processes.tmp_path
    backend = harness.Backend(tmp, "waf-own")
    module_processes.backends.append(backend)
    g = harness.Gatehouse(tmp, waf_config(backend, own_rules_table(tmp), admin=True,
                                          route_extra='body_limit = "2m"\n'), name="own")
    module_processes.gatehouses.append(g)
    g.backend = backend
    g.tmp = Path(tmp)
    return g


def audit_events(g, timeout=3.0):
    path = g.tmp / "audit.json"

    def read():
        if not path.exists():
            return []
        # Whole lines only: the writer may be in the middle of the last one.
        lines = path.read_text().split("\n")[:-1]
        return [json.loads(l) for l in lines if l.strip()]
    harness.wait_until(lambda: read(), timeout)
    return read()


def event_for(g, predicate, timeout=3.0):
    found = harness.wait_until(lambda: [e for e in audit_events(g, 0.1) if predicate(e)], timeout)
    assert found, audit_events(g, 0.1)
    return found[-1]


def backend_saw(g, fragment):
    return any(fragment in t for t in g.backend.targets())


# ---- phase 1 ----------------------------------------------------------------------------------

def test_phase1_deny_with_the_rule_status_and_nothing_upstream(own):
    r = harness.get(own.port, "/echo/p1-deny", headers=[("X-Evil", "1")])
    assert r.status == 406
    assert b"406" in r.body
    assert not backend_saw(own, "p1-deny")
    r = harness.get(own.port, "/echo/p1-clean", headers=[("X-Evil", "0")])
    assert r.status == 200 and json.loads(r.body)["target"] == "/echo/p1-clean"


def test_redirect_intervention(own):
    r = harness.get(own.port, "/echo/p1-redirect?go=away")
    assert r.status == 302
    assert r.header("location") == "https://example.com/blocked"
    assert not backend_saw(own, "p1-redirect")


def test_drop_closes_without_a_response(own):
    reply = harness.raw_request(own.port, Client.build("GET", "/echo/p1-drop?drop=1"), timeout=3)
    assert reply.closed and reply == b"", reply
    assert not backend_saw(own, "p1-drop")
    e = event_for(own, lambda e: "p1-drop" in e["uri"])
    assert e["action"] == "dropped" and e["phase"] == 1


def test_encoded_query_mark_does_not_hide_the_path(own):
    # CVE-2024-1019: libmodsecurity 3.0.9 cut REQUEST_FILENAME at a decoded %3F.
    for target in ("/x%3F<script>alert(1)</script>", "/x%3f/<script>", "/a/b%3F%3Cscript%3E"):
        r = harness.get(own.port, target)
        assert r.status == 403, target
    assert harness.get(own.port, "/echo/x%3Fplain").status == 200


@pytest.mark.parametrize("phase", [2, 3, 4])
@pytest.mark.parametrize("action", ["deny", "redirect", "drop"])
def test_every_intervention_in_every_phase(own, phase, action):
    """What the client gets for each action in each phase; nothing of the upstream's response
    (an HTML page, inspected in phase 4) reaches it."""
    target = "/text/3000?type=text/html&act%d=%s&mark=%d%s" % (phase, action, phase, action)
    reply = harness.raw_request(own.port, Client.build("GET", target), timeout=5)
    assert b"quick brown fox" not in reply
    if action == "drop":
        assert reply.closed and reply == b"", reply[:200]
    elif action == "redirect":
        assert reply.status == 302, reply[:200]
        assert b"\r\nLocation: https://example.com/p%d\r\n" % phase in reply
    else:
        assert reply.status == 451 and b"451" in reply, reply[:200]
    upstream_saw = backend_saw(own, "mark=%d%s" % (phase, action))
    assert upstream_saw == (phase > 2), "phases 1-2 decide before any upstream is contacted"
    e = event_for(own, lambda e: "mark=%d%s" % (phase, action) in e["uri"])
    assert e["phase"] == phase
    assert e["action"] == {"deny": "blocked", "redirect": "redirected", "drop": "dropped"}[action]


# ---- phase 2: bodies ---------------------------------------------------------------------------

FORM = [("Content-Type", "application/x-www-form-urlencoded")]


@pytest.mark.parametrize("size", [10, 100_000, 1_500_000])
def test_phase2_deny_holds_the_body_and_sends_nothing_upstream(own, size):
    marker = "p2-deny-%d" % size
    body = b"pad=" + b"a" * size + b"&evil=1"
    r = harness.request(own.port, "POST", "/echo/" + marker, FORM, body, timeout=20)
    assert r.status == 403
    assert not backend_saw(own, marker)
    clean = b"pad=" + b"a" * size + b"&evil=0"
    r = harness.request(own.port, "POST", "/echo/" + marker + "-ok", FORM, clean, timeout=20)
    assert r.status == 200
    assert json.loads(r.body)["body_length"] == len(clean)


def test_phase2_chunked_body_arrives_slowly(own):
    with Client(own.port, timeout=10) as c:
        c.send(b"POST /echo/p2-chunked HTTP/1.1\r\nHost: test.local\r\n"
               b"Content-Type: application/x-www-form-urlencoded\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n")
        for piece in (b"a=1&", b"b=2&", b"evil=1"):
            c.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            time.sleep(0.05)
        c.send(b"0\r\n\r\n")
        r = c.read_response("POST")
    assert r.status == 403
    assert not backend_saw(own, "p2-chunked")


def test_request_body_over_body_limit_is_413(own):
    body = b"pad=" + b"a" * (2 * 1024 * 1024 + 10)
    r = harness.request(own.port, "POST", "/echo/p2-over", FORM, body, timeout=20)
    assert r.status == 413
    assert not backend_saw(own, "p2-over")


def test_request_body_over_the_limit_passes_unchecked_with_overflow_pass(module_processes,
                                                                         tmp_path):
    import hashlib
    backend = harness.Backend(tmp_path, "waf-pass")
    module_processes.backends.append(backend)
    g = harness.Gatehouse(tmp_path, waf_config(
        backend, own_rules_table(tmp_path),
        route_extra='body_limit = "64k"\nbody_overflow = "pass"\n'), name="reqpass")
    module_processes.gatehouses.append(g)
    g.backend = backend
    early = b"evil=1&pad=" + b"a" * 200_000           # inside the first 64 KiB: judged
    late = b"pad=" + b"a" * 200_000 + b"&evil=1"      # past it: goes up unchecked
    r = harness.request(g.port, "POST", "/echo/pass-early", FORM, early, timeout=20)
    assert r.status == 403
    assert not backend_saw(g, "pass-early")
    r = harness.request(g.port, "POST", "/echo/pass-late", FORM, late, timeout=20)
    assert r.status == 200
    seen = json.loads(r.body)
    assert seen["body_length"] == len(late)
    assert seen["body_sha256"] == hashlib.sha256(late).hexdigest()
    for name, body in (("chunked-early", early), ("chunked-late", late)):
        with Client(g.port, timeout=20) as c:
            c.send(b"POST /echo/%s HTTP/1.1\r\nHost: test.local\r\n"
                   b"Content-Type: application/x-www-form-urlencoded\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n" % name.encode())
            try:
                for i in range(0, len(body), 30_000):
                    piece = body[i:i + 30_000]
                    c.send(b"%x\r\n%s\r\n" % (len(piece), piece))
                    time.sleep(0.01)
                c.send(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # denied before the client finished: the answer is already there
            r = c.read_response("POST")
        if name == "chunked-early":
            assert r.status == 403
        else:
            assert r.status == 200
            seen = json.loads(r.body)
            assert seen["body_length"] == len(body)
            assert seen["body_sha256"] == hashlib.sha256(body).hexdigest()


# ---- phases 3 and 4 ----------------------------------------------------------------------------

def test_phase3_deny_replaces_the_response(own):
    r = harness.get(own.port, "/hop")
    assert r.status == 403
    assert b"hop" not in r.body and r.header("x-backend-public") is None


@pytest.mark.parametrize("query", ["", "&chunks=20&pause_ms=30"])
def test_phase4_buffer_deny_sends_no_upstream_byte(own, query):
    # The marker is near the end of a body that arrives in pieces with pauses between them.
    reply = harness.raw_request(
        own.port, Client.build("GET", "/text/100000?type=text/html" + query), timeout=10)
    assert reply.status == 403, reply[:300]
    assert b"quick brown fox" not in reply
    assert b"line 0:" not in reply


def test_phase4_buffer_passes_a_clean_body_whole(own):
    import backend as backend_module
    r = harness.get(own.port, "/text/50000?type=text/html&chunks=7&pause_ms=20", timeout=10)
    assert r.status == 200
    assert r.body == backend_module.text_body(50000)
    # Held whole and unchanged: it goes out with its length, even though the upstream chunked it.
    assert r.header("content-length") == "50000" and r.header("transfer-encoding") is None
    r = harness.get(own.port, "/text/30000?type=text/html")
    assert r.header("content-length") == "30000" and r.header("transfer-encoding") is None


def test_phase4_other_types_are_not_held(own):
    # application/octet-stream is not in response_types: streamed, not inspected.
    r = harness.get(own.port, "/text/100000?type=application/octet-stream")
    assert r.status == 200 and len(r.body) == 100000


def test_phase4_stream_mode_closes_on_deny(module_processes, tmp_path):
    backend = harness.Backend(tmp_path, "waf-stream")
    module_processes.backends.append(backend)
    g = harness.Gatehouse(tmp_path, waf_config(
        backend, own_rules_table(tmp_path, 'response_body = "stream"\n')), name="stream")
    module_processes.gatehouses.append(g)
    reply = harness.raw_request(g.port, Client.build("GET", "/text/100000?type=text/html"),
                                timeout=10)
    assert reply.status == 200  # the head was out before the body could be judged
    assert reply.closed
    head, _, body = bytes(reply).partition(b"\r\n\r\n")
    assert len(body) < 100000  # cut short: never the whole response
    clean = harness.get(g.port, "/text/1000?type=text/html")
    assert clean.status == 200 and len(clean.body) == 1000
    assert clean.header("content-length") == "1000"  # inspected, not changed: framing kept


def test_response_over_body_limit(module_processes, tmp_path):
    backend = harness.Backend(tmp_path, "waf-limit")
    module_processes.backends.append(backend)
    g = harness.Gatehouse(tmp_path, waf_config(backend, own_rules_table(tmp_path),
                                               route_extra='body_limit = "64k"\n'), name="rej")
    module_processes.gatehouses.append(g)
    r = harness.get(g.port, "/text/100000?type=text/html")
    assert r.status == 502
    assert b"quick brown fox" not in r.body
    g2 = harness.Gatehouse(tmp_path, waf_config(
        backend, own_rules_table(tmp_path),
        route_extra='body_limit = "64k"\nbody_overflow = "pass"\n'), name="pass")
    module_processes.gatehouses.append(g2)
    # The marker (line 1500) is past the first 64 KiB: inspected partly, passed on.
    r = harness.get(g2.port, "/text/100000?type=text/html", timeout=10)
    assert r.status == 200 and len(r.body) == 100000
    # Within the limit a deny still holds.
    r = harness.get(g2.port, "/text/60000?type=text/html")
    assert r.status == 200  # line 1500 is not in the first 60000 bytes
    assert harness.get(g2.port, "/hop").status == 403


def test_waf_sees_the_body_before_compression(module_processes, tmp_path):
    """waf (an inspector) runs before compress (an encoder): phase 4 matches the plain text in
    both modes, and a clean page still goes out compressed."""
    import gzip
    backend = harness.Backend(tmp_path, "waf-compress")
    module_processes.backends.append(backend)
    for mode in ("buffer", "stream"):
        g = harness.Gatehouse(tmp_path, waf_config(
            backend, own_rules_table(tmp_path, 'response_body = "%s"\n' % mode),
            route_extra='filters = ["waf", "compress"]\n').replace(
                'filters = ["waf"]\nfilters', 'filters'), name="wc-" + mode)
        module_processes.gatehouses.append(g)
        gz = [("Accept-Encoding", "gzip")]
        reply = harness.raw_request(
            g.port, Client.build("GET", "/text/100000?type=text/html", gz), timeout=10)
        if mode == "buffer":
            assert reply.status == 403, reply[:200]
        else:
            assert reply.closed and reply.status == 200
            assert not bytes(reply).endswith(b"0\r\n\r\n")  # cut short, never completed
        with Client(g.port, timeout=10) as c:
            r = c.request("GET", "/text/20000?type=text/html", gz)
        assert r.status == 200 and r.header("content-encoding") == "gzip"
        import backend as backend_module
        assert gzip.decompress(r.body) == backend_module.text_body(20000)


# ---- audit, metrics ----------------------------------------------------------------------------

def test_audit_event_redacts_and_names_the_rules(own):
    body = b"user=bob&password=tripwire&evil=1"
    r = harness.request(own.port, "POST", "/echo/audit-me?token=s3cr3tvalue", FORM, body)
    assert r.status == 403
    e = event_for(own, lambda e: "audit-me" in e["uri"])
    assert e["action"] == "blocked" and e["status"] == 403 and e["phase"] == 2
    ids = [x["id"] for x in e["rules"]]
    assert 1004 in ids and 1008 in ids
    text = json.dumps(e)
    assert "tripwire" not in text and "s3cr3tvalue" not in text
    assert "[redacted]" in text
    assert e["id"] and e["method"] == "POST" and e["route"]
    # The engine's lines have a writer of their own: wait for this request's.
    log = own.tmp / "engine.log"
    assert harness.wait_until(
        lambda: any('[id "1004"]' in line and e["id"] in line
                    for line in log.read_text().splitlines()), 3), log.read_text()[-2000:]


def test_clean_requests_write_no_audit_event(own):
    harness.get(own.port, "/echo/quiet-one")
    time.sleep(0.3)
    assert not [e for e in audit_events(own, 0.1) if "quiet-one" in e["uri"]]


def test_metrics(own):
    harness.get(own.port, "/echo/m", headers=[("X-Evil", "1")])
    # Hits are counted after the response went out (phase 5): the client can be first.
    def counted():
        text = scrape(admin_port(own))
        return text if 'gatehouse_waf_rule_hits_total{rule="1001"}' in text else None
    text = harness.wait_until(counted, 3.0) or scrape(admin_port(own))
    assert 'gatehouse_waf_interventions_total{phase="1",action="deny"}' in text
    assert 'gatehouse_waf_rule_hits_total{rule="1001"}' in text
    assert 'gatehouse_waf_requests_total{mode="on"}' in text
    assert 'gatehouse_waf_engine_seconds_bucket{phase="1"' in text


# ---- the CRS -----------------------------------------------------------------------------------

needs_crs = pytest.mark.skipif(not CRS.is_dir(), reason="modsecurity-crs is not installed "
                               "(contrib/scripts/deps.sh installs it)")


@needs_crs
def test_crs_blocks_attacks_and_passes_clean_traffic(module_processes, tmp_path):
    backend = harness.Backend(tmp_path, "waf-crs")
    module_processes.backends.append(backend)
    extra = ('[[route]]\npath = "/api/"\nupstream = "app"\nfilters = ["waf"]\n'
             'filter_config = { waf = { mode = "detect" } }\n')
    table = 'audit_log = %s\n' % json.dumps(str(tmp_path / "audit.json"))
    g = harness.Gatehouse(tmp_path, waf_config(backend, table, extra=extra), name="crs")
    module_processes.gatehouses.append(g)
    attacks = ["/echo?id=1%27%20or%201=1--", "/echo?q=<script>alert(1)</script>",
               "/echo?file=../../../../etc/passwd", "/echo?cmd=;cat%20/etc/passwd"]
    for t in attacks:
        assert harness.get(g.port, t).status == 403, t
        # detection-only route: let through, but flagged
        assert harness.get(g.port, "/api" + t).status == 200, t
    assert harness.get(g.port, "/echo?q=hello+world&page=2").status == 200
    r = harness.request(g.port, "POST", "/echo/form", FORM, b"name=Alice&comment=Nice+day")
    assert r.status == 200
    r = harness.request(g.port, "POST", "/echo/json", [("Content-Type", "application/json")],
                        b'{"q": "1\' UNION SELECT password FROM users--"}')
    assert r.status == 403
    g.tmp = tmp_path
    events = audit_events(g)
    detected = [e for e in events if e["uri"].startswith("/api") and e["action"] == "detected"]
    assert len(detected) == len(attacks)
    assert all(e["mode"] == "detect" for e in detected)
    assert any(949110 in [x["id"] for x in e["rules"]] for e in events if e["action"] == "blocked")


@needs_crs
def test_engine_threads_yielding_often_still_judge_every_body(module_processes, tmp_path):
    # Every body goes to the engine threads (offload_above = 0), whose timers interrupt them
    # every 50 µs (the shortest slice allowed): the CRS still blocks the attack hidden at the end
    # of a big form, passes the clean one whole, and the phase-2 actions of our rules still act.
    backend = harness.Backend(tmp_path, "waf-slice")
    module_processes.backends.append(backend)
    own = Path(tmp_path) / "own.conf"
    own.write_text(RULES)
    table = 'offload_above = 0\nengine_slice_us = 50\nrules = [%s]\n' % json.dumps(str(own))
    g = harness.Gatehouse(tmp_path, waf_config(backend, table, admin=True,
                                               route_extra='body_limit = "2m"\n'), name="slice")
    module_processes.gatehouses.append(g)
    words = "+".join(["delivery", "window", "before", "nine", "please"] * 6)
    clean = "&".join("note_%d=%s" % (i, words) for i in range(900)).encode()
    attack = clean + b"&q=1%27+UNION+SELECT+password+FROM+users--"
    for _ in range(3):
        r = harness.request(g.port, "POST", "/echo/big", FORM, attack, timeout=60)
        assert r.status == 403
        r = harness.request(g.port, "POST", "/echo/big", FORM, clean, timeout=60)
        assert r.status == 200 and json.loads(r.body)["body_length"] == len(clean)
    expected = {"deny": 451, "redirect": 302}
    for action, status in expected.items():
        r = harness.request(g.port, "POST", "/echo/a", FORM, b"act2=" + action.encode())
        assert r.status == status, action
    reply = harness.raw_request(g.port, Client.build("POST", "/echo/a", FORM, b"act2=drop"),
                                timeout=5)
    assert reply.closed and reply == b"", reply[:200]
    assert "gatehouse_waf_engine_errors_total{" not in scrape(admin_port(g))
    assert "engine thread" not in g.log_text()


# ---- configuration errors ----------------------------------------------------------------------

def test_check_reports_seclang_errors_with_their_line(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text('SecRule ARGS "@rx a" "id:1,phase:1,deny"\nSecRule ARGS "@rx b" "phase:1,nosuchaction"\n')
    text = waf_config("127.0.0.1:9", 'crs = false\nrules = [%s]\n' % json.dumps(str(bad)))
    rc, err = harness.run_check(tmp_path, text)
    assert rc != 0
    assert "bad.conf" in err and "Line: 2" in err, err
    assert "[filter.waf.rules]" in err, err
    text = waf_config("127.0.0.1:9", "crs = false\nrules_inline = ['SecRule ARGS \"@rx a\"']\n")
    rc, err = harness.run_check(tmp_path, text)
    assert rc != 0 and "rules_inline[0]" in err, err
    text = waf_config("127.0.0.1:9", 'crs = false\nrules = ["/nonexistent/*.conf"]\n')
    rc, err = harness.run_check(tmp_path, text)
    assert rc != 0 and "no file matches /nonexistent/*.conf" in err, err
    text = waf_config("127.0.0.1:9", 'paranoia = 5\n')
    rc, err = harness.run_check(tmp_path, text)
    assert rc != 0 and "paranoia" in err, err
    text = waf_config("127.0.0.1:9", 'engine_slice_us = 10\n')
    rc, err = harness.run_check(tmp_path, text)
    assert rc != 0 and "[filter.waf.engine_slice_us]" in err and "at least 50" in err, err
    text = waf_config("127.0.0.1:9", "", route_extra='filter_config = { waf = { engine_slice_us = 500 } }\n')
    rc, err = harness.run_check(tmp_path, text)
    assert rc != 0 and "engine_slice_us" in err, err


def test_a_log_file_that_cannot_be_opened_stops_the_start(tmp_path):
    # `check` passes (the folder may be made by the service manager); the start names the key.
    text = waf_config("127.0.0.1:9", 'crs = false\naudit_log = "/nonexistent/waf.json"\n')
    rc, err = harness.run_check(tmp_path, text)
    assert rc == 0, err
    path = tmp_path / "g.toml"
    path.write_text(text)
    done = harness.run_cli(["-c", str(path)])
    assert done.returncode != 0
    assert '[filter.waf] audit_log = "/nonexistent/waf.json": cannot open' in done.stderr, \
        done.stderr


def test_reload_with_a_bad_rule_keeps_the_old_rules(module_processes, tmp_path):
    backend = harness.Backend(tmp_path, "waf-reload")
    module_processes.backends.append(backend)
    good = waf_config(backend, own_rules_table(tmp_path))
    g = harness.Gatehouse(tmp_path, good, name="reload")
    module_processes.gatehouses.append(g)
    assert harness.get(g.port, "/echo", headers=[("X-Evil", "1")]).status == 406
    g.config_path.write_text(good.replace("crs = false", "crs = false\nrules_inline = ['SecRule ARGS']"))
    os.kill(g.pid, signal.SIGHUP)
    assert g.wait_log(r"reload.*(refused|failed|kept)", 10), g.log_text()[-2000:]
    assert "rules_inline" in g.log_text()
    assert harness.get(g.port, "/echo", headers=[("X-Evil", "1")]).status == 406
    assert harness.get(g.port, "/echo").status == 200


# ---- many routes, one compile --------------------------------------------------------------------

@needs_crs
def test_two_hundred_routes_cost_one_crs_load(module_processes, tmp_path):
    """200 WAF routes (some detect-only, some at paranoia 2) compile the CRS once and hold about
    the memory of one route."""
    backend = harness.Backend(tmp_path, "waf-routes")
    module_processes.backends.append(backend)

    def config(n, waf=True):
        routes = ""
        for i in range(n):
            routes += '[[route]]\npath = "/r%d/"\nupstream = "app"\n' % i
            if waf:
                routes += 'filters = ["waf"]\n'
                if i % 10 == 3:
                    routes += 'filter_config = { waf = { paranoia = 2 } }\n'
                elif i % 2:
                    routes += 'filter_config = { waf = { mode = "detect" } }\n'
        text = harness.proxy_config([backend], extra=routes)
        text = text.replace('[[route]]\npath = "/"\nupstream = "app"\n', "", 1)
        return text.replace(harness.modules_toml(),
                            harness.modules_toml(MODULES if waf else ("round_robin",)))

    rss = {}
    for name, n, waf in (("none", 1, False), ("one", 1, True), ("many", 200, True)):
        g = harness.Gatehouse(tmp_path, config(n, waf), name=name)
        module_processes.gatehouses.append(g)
        assert harness.get(g.port, "/r0/echo").status == 200
        rss[name] = g.proc_status("VmRSS")
        if name == "many":
            assert harness.get(g.port, "/r199/echo?q=<script>alert(1)</script>").status == 200
            assert harness.get(g.port, "/r198/echo?q=<script>alert(1)</script>").status == 403
            assert re.search(r"rules loaded: 1 rule set\(s\) compiled in [0-9.]+ s, 3 mode/paranoia",
                             g.log_text()), g.log_text()
        g.stop()
    crs_load = rss["one"] - rss["none"]
    print("RSS KiB: no waf %d, one route %d, 200 routes %d" % (rss["none"], rss["one"], rss["many"]))
    assert crs_load > 5000, rss  # the CRS is really loaded (about 26 MB)
    assert rss["many"] - rss["one"] <= 0.25 * crs_load, rss

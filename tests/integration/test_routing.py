"""Routing: host (exact, wildcard, any) first, then path (exact, longest prefix); normalised path."""

import pytest

from harness import Backend, Client, Gatehouse, get, modules_toml, raw_request

ROUTES = [
    # (backend id, host, path, match)
    ("host-exact", "example.com", "/", None),
    ("host-www", "www.example.com", "/", None),
    ("host-wild", "*.example.com", "/", None),
    ("host-wild-api", "*.api.example.com", "/", None),
    ("default", None, "/", None),
    ("api", None, "/api/", None),
    ("api-v2", None, "/api/v2/", None),
    ("exact", None, "/exact", "exact"),
    ("norm", None, "/norm/b", "exact"),
    ("upper", None, "/ABC/", None),
]


def routing_config(backends):
    text = "[server]\nworkers = 2\n\n" + modules_toml() + "\n[[listener]]\nlisten = \"127.0.0.1:0\"\n\n"
    for name, b in backends.items():
        text += "[upstream.%s]\nservers = [{ address = \"%s\" }]\n\n" % (name.replace("-", "_"), b.address)
    for name, host, path, match in ROUTES:
        text += "[[route]]\nname = \"%s\"\n" % name
        if host:
            text += "host = \"%s\"\n" % host
        text += "path = \"%s\"\n" % path
        if match:
            text += "match = \"%s\"\n" % match
        text += "upstream = \"%s\"\n\n" % name.replace("-", "_")
    return text


@pytest.fixture(scope="module")
def routed(module_processes):
    """One gatehouse and one backend per route, shared by the module (routing is read-only)."""
    tmp = module_processes.tmp_path
    backends = {}
    for name, _, _, _ in ROUTES:
        backends[name] = Backend(tmp, name)
        module_processes.backends.append(backends[name])
    gh = Gatehouse(tmp, routing_config(backends))
    module_processes.gatehouses.append(gh)
    return gh


def served_by(port, target, host="test.local"):
    r = get(port, target, host=host)
    assert r.status == 200, (target, host, r)
    info = r.json()
    return info["id"], info["target"]


@pytest.mark.parametrize("host, expected", [
    ("example.com", "host-exact"),
    ("EXAMPLE.com:8080", "host-exact"),
    ("www.example.com", "host-www"),
    ("shop.example.com", "host-wild"),
    ("x.api.example.com", "host-wild-api"),
    ("example.org", "default"),
    ("notexample.com", "default"),
])
def test_host_routing(routed, host, expected):
    assert served_by(routed.port, "/echo", host=host)[0] == expected


def test_host_match_wins_over_a_longer_path_on_another_route(routed):
    assert served_by(routed.port, "/api/v2/x", host="example.com")[0] == "host-exact"


@pytest.mark.parametrize("target, expected", [
    ("/", "default"),
    ("/api/x", "api"),
    ("/api/v2/x", "api-v2"),
    ("/api/v2/", "api-v2"),
    ("/api", "default"),
    ("/apix", "default"),
    ("/exact", "exact"),
    ("/exact?q=1", "exact"),
    ("/exact/", "default"),
    ("/exactly", "default"),
    ("/exact/more", "default"),
])
def test_path_routing(routed, target, expected):
    assert served_by(routed.port, target)[0] == expected


@pytest.mark.parametrize("target, expected_id, forwarded", [
    ("/norm/a/../b", "norm", "/norm/b"),
    ("/norm/./b", "norm", "/norm/b"),
    ("/norm//b", "norm", "/norm/b"),
    ("/x/../norm/b?q=/../1", "norm", "/norm/b?q=/../1"),
    ("/%41BC/x", "upper", "/ABC/x"),
    ("/%6Eorm/b", "norm", "/norm/b"),
    ("/api/%2e%2e/exact", "exact", "/exact"),
    ("/api/%2E%2E/exact", "exact", "/exact"),
])
def test_path_is_normalised_before_routing_and_forwarded_normalised(routed, target, expected_id,
                                                                     forwarded):
    assert served_by(routed.port, target) == (expected_id, forwarded)


def test_encoded_slash_is_not_decoded(routed):
    backend_id, forwarded = served_by(routed.port, "/norm%2Fb")
    assert backend_id == "default"
    assert forwarded.lower() == "/norm%2fb"


@pytest.mark.parametrize("target", ["/../x", "/a/../../x", "/%2e%2e/x", "/a/%2E%2E/%2e%2e/x"])
def test_path_climbing_above_root_is_400(routed, target):
    reply = raw_request(routed.port, Client.build("GET", target))
    assert reply.status == 400, bytes(reply[:200])


def test_no_matching_route_is_404(start_backend, start_gatehouse):
    b = start_backend("only")
    gh = start_gatehouse(
        "[server]\nworkers = 2\n" + modules_toml() + "\n[[listener]]\nlisten = \"127.0.0.1:0\"\n"
        "[upstream.app]\nservers = [{ address = \"%s\" }]\n"
        "[[route]]\nhost = \"example.com\"\nupstream = \"app\"\n"
        "[[route]]\nhost = \"other.example\"\npath = \"/only/\"\nupstream = \"app\"\n" % b.address)
    assert get(gh.port, "/", host="example.com").status == 200
    assert get(gh.port, "/", host="unknown.example").status == 404
    assert get(gh.port, "/elsewhere", host="other.example").status == 404
    assert get(gh.port, "/only/x", host="other.example").status == 200
    assert b.stats()["requests"] == 2


def test_absolute_form_authority_is_what_gets_routed(routed):
    # RFC 9112 §3.2.2: with an absolute-form target the Host header is ignored. Routing on one
    # and forwarding the other would let a client reach a route it was not matched against.
    raw = b"GET http://example.com/echo HTTP/1.1\r\nHost: elsewhere.example\r\n\r\n"
    with Client(routed.port) as c:
        c.send(raw)
        r = c.read_response()
    if r.status == 400:
        return
    assert r.status == 200, r
    info = r.json()
    assert info["id"] == "host-exact"
    hosts = [v for n, v in info["headers"] if n.lower() == "host"]
    assert hosts == ["example.com"] or info["target"].startswith("http://example.com/")

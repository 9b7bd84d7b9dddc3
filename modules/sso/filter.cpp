// sso: the filter's hooks -- sessions, the authorization code flow with PKCE, logout.
#include "filter.hpp"

#include <gatehouse/sdk/http/cookie.hpp>
#include <gatehouse/sdk/http/query.hpp>

#include <chrono>

namespace sso {

using json = nlohmann::json;

// Per stream: alive while the stream is, shared with callouts and provider waits so a client
// that leaves meanwhile is noticed.
struct StreamState {
    bool ended = false;
    std::vector<std::string> set_cookies; // added to the upstream's response
    bool body_held = false;               // the back-channel logout body is being read
    bool body_too_big = false;
    std::string body;
};

constexpr size_t kMaxLogoutBody = 64 * 1024;
constexpr const char *kBackchannelEvent = "http://schemas.openid.net/event/backchannel-logout";

// Per worker: sessions already opened, by their exact sealed cookie value, so a cookie is
// decrypted and parsed once per worker rather than on every request. Two generations of at most
// kOpenedPerWorker entries (an approximate LRU in O(1)); an entry counts only under the sealer
// that opened it (a reload with other secrets misses). Expiry and revocation are checked on
// every request all the same.
struct Opened {
    Session session;
    const Sealer *sealer = nullptr;
    // The idle-timeout slide made from this cookie: handed again, not sealed again, to requests
    // that still carry it (a client that keeps an old cookie costs one seal a minute).
    std::vector<std::string> slid;
    int64_t slid_at = 0;
};

constexpr size_t kOpenedPerWorker = 1024;

class OpenedCache {
  public:
    std::shared_ptr<Opened> find(const std::string &sealed) {
        if (auto it = now_.find(sealed); it != now_.end())
            return it->second;
        auto it = before_.find(sealed);
        if (it == before_.end())
            return nullptr;
        std::shared_ptr<Opened> hit = it->second;
        put(sealed, hit);
        return hit;
    }
    void put(const std::string &sealed, std::shared_ptr<Opened> opened) {
        if (now_.size() >= kOpenedPerWorker) {
            before_ = std::move(now_);
            now_.clear();
        }
        now_[sealed] = std::move(opened);
    }

  private:
    std::unordered_map<std::string, std::shared_ptr<Opened>> now_, before_;
};

static thread_local OpenedCache t_opened;

// Per worker: bearer tokens already verified, by their exact text, until they expire -- a client
// sends the same token for its lifetime, so its signature is checked once per worker (as
// Envoy's jwt_authn cache does). Same two-generation bound as the sessions.
struct Verified {
    const Provider *provider = nullptr;
    std::string audience;
    std::string sub;
    json claims;
    int64_t exp = 0;
};

class VerifiedCache {
  public:
    const Verified *find(const std::string &token) {
        if (auto it = now_.find(token); it != now_.end())
            return &it->second;
        auto it = before_.find(token);
        if (it == before_.end())
            return nullptr;
        return put(token, std::move(it->second));
    }
    const Verified *put(const std::string &token, Verified v) {
        if (now_.size() >= kOpenedPerWorker) {
            before_ = std::move(now_);
            now_.clear();
        }
        return &(now_[token] = std::move(v));
    }

  private:
    std::unordered_map<std::string, Verified> now_, before_;
};

static thread_local VerifiedCache t_verified;

namespace {

struct Slot {
    std::shared_ptr<StreamState> st;
};

int64_t now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::shared_ptr<StreamState> state_of(gh::Stream s) {
    if (Slot *slot = s.ctx<Slot>())
        return slot->st;
    auto st = std::make_shared<StreamState>();
    s.emplace_ctx<Slot>(Slot{st});
    return st;
}

std::string html_escape(std::string_view in) {
    std::string out;
    for (char c : in) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
        }
    }
    return out;
}

// Every value of the cookie `name` in the request's Cookie fields.
std::optional<std::string> request_cookie(gh::Stream s, std::string_view name) {
    const size_t n = s.header_count(GH_HEADERS_REQUEST);
    for (size_t i = 0; i < n; ++i) {
        auto f = s.header_at(GH_HEADERS_REQUEST, i);
        if (!f || !gh::http::iequals(f->first, "cookie"))
            continue;
        if (auto v = gh::http::cookie_value(f->second, name))
            return std::string(*v);
    }
    return std::nullopt;
}

// name, name_1 .. name_7: the session cookie and its chunks.
bool is_chunk_name(std::string_view cookie, std::string_view name) {
    if (cookie == name)
        return true;
    if (cookie.size() != name.size() + 2 || cookie.substr(0, name.size()) != name ||
        cookie[name.size()] != '_')
        return false;
    const char d = cookie.back();
    return d >= '1' && d < static_cast<char>('0' + kMaxChunks);
}

std::string login_prefix(const Config &c) { return c.cookie_name + "_login_"; }

bool own_cookie(std::string_view cookie, const Config &c) {
    return is_chunk_name(cookie, c.cookie_name) || cookie.rfind(login_prefix(c), 0) == 0;
}

std::string set_cookie(const Config &c, std::string name, std::string value, std::string path,
                       int64_t max_age) {
    gh::http::SetCookie k;
    k.name = std::move(name);
    k.value = std::move(value);
    k.path = std::move(path);
    if (!c.cookie_domain.empty())
        k.domain = c.cookie_domain;
    k.max_age = max_age;
    k.secure = c.cookie_secure;
    k.http_only = true;
    k.same_site = gh::http::SameSite::lax;
    return gh::http::format_set_cookie(k).value_or(std::string());
}

bool public_path(const Config &c, std::string_view path) {
    for (const std::string &p : c.public_paths) {
        if (!p.empty() && p.back() == '*') {
            if (path.substr(0, p.size() - 1) == std::string_view(p).substr(0, p.size() - 1))
                return true;
        } else if (path == p)
            return true;
    }
    return false;
}

// Where to send the browser after the login: the request's own path and query; never an
// absolute or scheme-relative URL (no open redirect).
std::string return_to(gh::Stream s) {
    if (s.method() != "GET" && s.method() != "HEAD")
        return "/";
    std::string_view t = s.raw_target();
    if (t.empty() || t.front() != '/' || (t.size() > 1 && (t[1] == '/' || t[1] == '\\')))
        return "/";
    return std::string(t);
}

bool safe_return(std::string_view r) {
    return !r.empty() && r.front() == '/' && (r.size() == 1 || (r[1] != '/' && r[1] != '\\')) &&
           r.find_first_of("\r\n") == std::string_view::npos;
}

std::string redirect_uri(gh::Stream s, const Config &c) {
    if (!c.redirect_uri.empty())
        return c.redirect_uri;
    auto host = s.request_header("host");
    return gh::cat(s.scheme(), "://", host ? *host : s.host_name(), c.callback_path);
}

std::string with_query(std::string_view url, const std::vector<gh::http::QueryParam> &params) {
    return gh::cat(url, url.find('?') == std::string_view::npos ? "?" : "&",
                   gh::http::format_query(params, false));
}

std::string claim_text(const json &v) {
    if (v.is_string())
        return v.get<std::string>();
    if (v.is_array()) {
        std::string out;
        for (const json &x : v) {
            if (!out.empty())
                out += ',';
            out += x.is_string() ? x.get<std::string>() : x.dump();
        }
        return out;
    }
    return v.is_null() ? std::string() : v.dump();
}

// A header value must not carry CR, LF or NUL.
bool header_safe(std::string_view v) {
    return v.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

} // namespace

SsoFilter::SsoFilter() { set_fetch_counter(&fetches_); }

std::unique_ptr<Config> SsoFilter::parse_config(gh::ConfigNode table, const Config &base) {
    return sso::parse_config(table, base);
}

gh_action_t SsoFilter::fail(gh::Stream s, const char *reason, unsigned status,
                            std::string_view detail, std::vector<std::string> cookies) {
    failures_.inc({reason});
    gh::log_info(gh::cat("sign-in refused (", reason, "): ", detail));
    std::vector<gh::HeaderField> headers = {{"Content-Type", "text/html; charset=utf-8"},
                                            {"Cache-Control", "no-store"}};
    for (const std::string &k : cookies)
        if (!k.empty())
            headers.emplace_back("Set-Cookie", k);
    const std::string body = gh::cat(
        "<!doctype html><title>Sign-in failed</title><h1>Sign-in failed</h1><p>",
        status >= 500 ? "The sign-in service cannot be reached. Try again in a moment."
                      : "The sign-in could not be completed. Start again from the page you wanted.",
        "</p><p><small>", html_escape(reason), "</small></p>\n");
    if (s.respond(status, headers, body) != GH_OK)
        return GH_ERROR;
    return GH_RESPOND;
}

void SsoFilter::strip_identity_headers(gh::Stream s, const Config &c) {
    for (const std::string *h : {&c.user_header, &c.email_header, &c.groups_header})
        if (!h->empty())
            s.remove_header(GH_HEADERS_REQUEST, *h);
    for (const auto &[header, claim] : c.claim_headers)
        s.remove_header(GH_HEADERS_REQUEST, header);
    if (c.pass_access_token)
        s.remove_header(GH_HEADERS_REQUEST, "authorization");
}

void SsoFilter::strip_own_cookies(gh::Stream s, const Config &c) {
    std::string kept;
    bool any_own = false;
    const size_t n = s.header_count(GH_HEADERS_REQUEST);
    for (size_t i = 0; i < n; ++i) {
        auto f = s.header_at(GH_HEADERS_REQUEST, i);
        if (!f || !gh::http::iequals(f->first, "cookie"))
            continue;
        for (const auto &k : gh::http::parse_cookie_header(f->second)) {
            if (own_cookie(k.name, c)) {
                any_own = true;
                continue;
            }
            if (!kept.empty())
                kept += "; ";
            kept += gh::cat(k.name, "=", k.value);
        }
    }
    if (!any_own)
        return;
    s.remove_header(GH_HEADERS_REQUEST, "cookie");
    if (!kept.empty())
        s.set_header(GH_HEADERS_REQUEST, "Cookie", kept);
}

std::shared_ptr<Opened> SsoFilter::read_session(gh::Stream s, const Config &c, int64_t now) {
    auto first = request_cookie(s, c.cookie_name);
    if (!first)
        return nullptr;
    std::string sealed = std::move(*first);
    for (size_t i = 1; sealed.size() == i * kChunk && i < kMaxChunks; ++i) {
        auto more = request_cookie(s, gh::cat(c.cookie_name, "_", i));
        if (!more)
            break;
        sealed += *more;
    }
    std::shared_ptr<Opened> opened = t_opened.find(sealed);
    if (!opened || opened->sealer != c.session_sealer.get()) {
        auto text = c.session_sealer ? c.session_sealer->open(sealed, c.cookie_name) : std::nullopt;
        auto session = text ? decode_session(*text) : std::nullopt;
        if (!session) {
            failures_.inc({"session_cookie"});
            return nullptr;
        }
        opened = std::make_shared<Opened>();
        opened->session = std::move(*session);
        opened->sealer = c.session_sealer.get();
        t_opened.put(sealed, opened);
    }
    const Session &session = opened->session;
    if (session.provider != c.chosen->config().name) {
        failures_.inc({"session_cookie"});
        return nullptr;
    }
    if (now - session.created > static_cast<int64_t>(c.session_lifetime_ms / 1000) ||
        now - session.seen > static_cast<int64_t>(c.session_idle_ms / 1000)) {
        failures_.inc({"session_expired"});
        return nullptr;
    }
    if (revoked_count_.load(std::memory_order_relaxed) != 0 && revoked(session)) {
        failures_.inc({"session_revoked"});
        return nullptr;
    }
    return opened;
}

std::vector<std::string> SsoFilter::session_cookies(gh::Stream s, const Config &c,
                                                    const Session &session) {
    const std::string sealed = c.session_sealer->seal(encode_session(session), c.cookie_name);
    const std::vector<std::string> chunks = split_chunks(sealed);
    const auto max_age = static_cast<int64_t>(c.session_lifetime_ms / 1000) -
                         (session.seen - session.created);
    std::vector<std::string> out;
    for (size_t i = 0; i < chunks.size() && i < kMaxChunks; ++i)
        out.push_back(set_cookie(c, i == 0 ? c.cookie_name : gh::cat(c.cookie_name, "_", i),
                                 chunks[i], c.cookie_path, std::max<int64_t>(max_age, 1)));
    for (size_t i = chunks.size(); i < kMaxChunks; ++i)
        if (request_cookie(s, gh::cat(c.cookie_name, "_", i)))
            out.push_back(set_cookie(c, gh::cat(c.cookie_name, "_", i), "", c.cookie_path, 0));
    return out;
}

std::vector<std::string> SsoFilter::clear_session_cookies(gh::Stream s, const Config &c) {
    std::vector<std::string> out;
    for (size_t i = 0; i < kMaxChunks; ++i) {
        std::string name = i == 0 ? c.cookie_name : gh::cat(c.cookie_name, "_", i);
        if (request_cookie(s, name))
            out.push_back(set_cookie(c, name, "", c.cookie_path, 0));
    }
    return out;
}

void SsoFilter::pass_identity(gh::Stream s, const Config &c, const Session &session) {
    pass_identity(s, c, session.sub, session.claims, session.access_token);
}

void SsoFilter::pass_identity(gh::Stream s, const Config &c, const std::string &sub,
                              const json &claims, const std::string &access_token) {
    auto claim = [&](const std::string &name) -> std::string {
        if (name == "sub")
            return sub;
        auto it = claims.find(name);
        return it == claims.end() ? std::string() : claim_text(*it);
    };
    auto put = [&](const std::string &header, const std::string &value) {
        if (!header.empty() && !value.empty() && header_safe(value))
            s.set_header(GH_HEADERS_REQUEST, header, value);
    };
    put(c.user_header, claim(c.user_claim));
    put(c.email_header, claim("email"));
    put(c.groups_header, claim("groups"));
    for (const auto &[header, name] : c.claim_headers)
        put(header, claim(name));
    if (c.pass_access_token && !access_token.empty())
        put("Authorization", gh::cat("Bearer ", access_token));
}

gh_action_t SsoFilter::on_access(gh::Stream s, const Config &c) {
    if (!c.chosen || !c.session_sealer)
        return GH_CONTINUE;
    std::optional<std::string> token;
    if (c.bearer)
        if (auto auth = s.request_header("authorization"))
            if (auto creds = gh::http::parse_credentials(*auth);
                creds && gh::http::iequals(creds->scheme, "bearer") && !creds->token68.empty())
                token = std::string(creds->token68);
    // No client-supplied identity ever reaches the upstream, on any path of the route.
    strip_identity_headers(s, c);
    if (token)
        return bearer(s, c, *token, false);
    const std::string_view path = s.path();
    if (path == c.callback_path)
        return callback(s, c);
    if (path == c.logout_path)
        return logout(s, c);
    if (path == c.backchannel_path)
        return backchannel(s, c);
    const int64_t now = now_s();
    if (c.redis_store)
        return stored_session(s, c, now);
    if (std::shared_ptr<Opened> opened = read_session(s, c, now))
        return with_session(s, c, opened->session, opened.get(), now);
    return without_session(s, c);
}

gh_action_t SsoFilter::with_session(gh::Stream s, const Config &c, const Session &found,
                                    Opened *opened, int64_t now) {
    const Session *session = &found;
    if (!allowed(c, session->sub, session->claims))
        return forbidden(s, c, session->sub);
    Session renewed;
    if (c.refresh && !session->refresh_token.empty() && session->access_expires != 0 &&
        now + static_cast<int64_t>(c.refresh_margin_ms / 1000) >= session->access_expires) {
        bool renew = false;
        {
            std::lock_guard g(refresh_lock_);
            auto it = renewed_.find(session->id);
            if (it != renewed_.end() && it->second.session.access_token != session->access_token) {
                // Renewed a moment ago by another request: take its result.
                renewed = it->second.session;
                session = &renewed;
                state_of(s)->set_cookies = it->second.cookies;
            } else if (refreshing_.insert(session->id).second) {
                if (it != renewed_.end())
                    renewed_.erase(it); // this request carries that renewal already
                renew = true;
            }
            // else another request is renewing it: go on with what this one carries.
        }
        if (renew) {
            requests_.inc({"session"});
            return c.redis_store ? locked_refresh(s, c, *session) : refresh(s, c, *session);
        }
    }
    requests_.inc({"session"});
    pass_identity(s, c, *session);
    strip_own_cookies(s, c);
    if (session == &found && now - session->seen >= 60) {
        // Slide the idle timeout, at most once a minute (per cookie, or in the store).
        if (c.redis_store) {
            Session slid = *session;
            slid.seen = now;
            store_session(c, slid, [](bool) {});
        } else if (opened != nullptr) {
            if (opened->slid_at == 0 || now - opened->slid_at >= 60) {
                Session slid = *session;
                slid.seen = now;
                opened->slid = session_cookies(s, c, slid);
                opened->slid_at = now;
            }
            state_of(s)->set_cookies = opened->slid;
        }
    }
    return GH_CONTINUE;
}

gh_action_t SsoFilter::without_session(gh::Stream s, const Config &c) {
    if (public_path(c, s.path())) {
        requests_.inc({"public"});
        strip_own_cookies(s, c);
        return GH_CONTINUE;
    }
    if (c.on_missing == OnMissing::deny) {
        requests_.inc({"denied"});
        const std::string body = R"({"error":"unauthorized","error_description":"a session or bearer token is required"})";
        if (s.respond(401,
                      {{"Content-Type", "application/json"},
                       {"WWW-Authenticate", "Bearer realm=\"gatehouse\""},
                       {"Cache-Control", "no-store"}},
                      body) != GH_OK)
            return GH_ERROR;
        return GH_RESPOND;
    }
    requests_.inc({"login"});
    return login(s, c);
}

// ---- store = "redis": the cookie holds a sealed session id, redis the session ---------------

namespace {
constexpr std::string_view kStoredTag = "redis:";
}

std::optional<std::string> SsoFilter::stored_id(gh::Stream s, const Config &c) {
    auto cookie = request_cookie(s, c.cookie_name);
    if (!cookie)
        return std::nullopt;
    auto text = c.session_sealer->open(*cookie, c.cookie_name);
    if (!text || text->rfind(kStoredTag, 0) != 0 || text->size() == kStoredTag.size()) {
        failures_.inc({"session_cookie"});
        return std::nullopt;
    }
    return text->substr(kStoredTag.size());
}

void SsoFilter::store_session(const Config &c, const Session &session,
                              std::function<void(bool)> done) {
    const int64_t now = now_s();
    const int64_t left = static_cast<int64_t>(c.session_lifetime_ms / 1000) - (now - session.created);
    const int64_t ttl = std::min<int64_t>(static_cast<int64_t>(c.session_idle_ms / 1000), left);
    std::vector<std::string> indexes = {gh::cat("sub:", session.provider, "|", session.sub)};
    if (!session.sid.empty())
        indexes.push_back(gh::cat("sid:", session.provider, "|", session.sid));
    c.redis_store->put(session.id, encode_session(session), ttl, indexes, std::move(done));
}

gh_action_t SsoFilter::store_unavailable(gh::Stream s) {
    failures_.inc({"store_unavailable"});
    if (s.respond(503,
                  {{"Content-Type", "text/html; charset=utf-8"},
                   {"Cache-Control", "no-store"},
                   {"Retry-After", "5"}},
                  "<!doctype html><title>Unavailable</title><h1>Sign-in is unavailable</h1>"
                  "<p>The session store cannot be reached. Try again in a moment.</p>\n") != GH_OK)
        return GH_ERROR;
    return GH_RESPOND;
}

gh_action_t SsoFilter::stored_session(gh::Stream s, const Config &c, int64_t now) {
    std::optional<std::string> id = stored_id(s, c);
    if (!id)
        return without_session(s, c);
    auto st = state_of(s);
    gh_stream_t *raw = s.raw();
    const Config *cfg = &c;
    c.redis_store->get(*id, [this, st, raw, cfg, now](bool ok, std::optional<std::string> value) {
        if (st->ended)
            return;
        gh::Stream stream(raw);
        const Config &c = *cfg;
        gh_action_t a;
        std::optional<Session> session = value ? decode_session(*value) : std::nullopt;
        if (!ok)
            a = store_unavailable(stream);
        else if (!session || session->provider != c.chosen->config().name ||
                 now - session->created > static_cast<int64_t>(c.session_lifetime_ms / 1000) ||
                 now - session->seen > static_cast<int64_t>(c.session_idle_ms / 1000)) {
            if (value)
                failures_.inc({"session_expired"});
            a = without_session(stream, c); // gone from the store: expired or revoked
        } else
            a = with_session(stream, c, *session, nullptr, now);
        if (a != GH_PAUSE)
            stream.resume(a);
    });
    return GH_PAUSE;
}

gh_action_t SsoFilter::login(gh::Stream s, const Config &c) {
    auto st = state_of(s);
    gh_stream_t *raw = s.raw();
    LoginState l;
    l.state = random_token(16);
    l.nonce = random_token(16);
    l.verifier = random_token(32);
    l.return_to = return_to(s);
    l.provider = c.chosen->config().name;
    l.created = now_s();
    std::string redirect = redirect_uri(s, c);
    // Login state cookies already in the browser: at most logins_in_flight, the oldest go. They
    // have Path=/ (as mod_auth_openidc's) so this can count them; they never go upstream.
    std::vector<std::pair<int64_t, std::string>> inflight;
    const size_t n = s.header_count(GH_HEADERS_REQUEST);
    const std::string prefix = login_prefix(c);
    for (size_t i = 0; i < n; ++i) {
        auto f = s.header_at(GH_HEADERS_REQUEST, i);
        if (!f || !gh::http::iequals(f->first, "cookie"))
            continue;
        for (const auto &k : gh::http::parse_cookie_header(f->second))
            if (k.name.rfind(prefix, 0) == 0) {
                auto text = c.state_sealer->open(k.value, k.name);
                auto old = text ? decode_login(*text) : std::nullopt;
                inflight.emplace_back(old ? old->created : 0, std::string(k.name));
            }
    }
    std::sort(inflight.begin(), inflight.end());
    std::vector<std::string> cookies;
    const size_t keep = static_cast<size_t>(c.logins_in_flight) - 1;
    for (size_t i = 0; i + keep < inflight.size(); ++i)
        cookies.push_back(set_cookie(c, inflight[i].second, "", c.cookie_path, 0));
    const std::string name = prefix + l.state;
    cookies.push_back(set_cookie(c, name, c.state_sealer->seal(encode_login(l), name),
                                 c.cookie_path,
                                 static_cast<int64_t>(c.login_timeout_ms / 1000)));
    std::shared_ptr<Provider> provider = c.chosen;
    provider->reachable([this, st, raw, provider, l, redirect, cookies](bool ok,
                                                                     const std::string &error) {
        if (st->ended)
            return;
        gh::Stream stream(raw);
        auto meta = provider->metadata();
        if (!ok || !meta)
            return stream.resume(fail(stream, "provider_unreachable", 502, error));
        const ProviderConfig &p = provider->config();
        std::string scope;
        for (const std::string &x : p.scopes)
            scope += (scope.empty() ? "" : " ") + x;
        const std::string location = with_query(
            meta->authorization_endpoint,
            {{"response_type", "code"},
             {"client_id", p.client_id},
             {"redirect_uri", redirect},
             {"scope", scope},
             {"state", l.state},
             {"nonce", l.nonce},
             {"code_challenge", b64url_encode(sha256(l.verifier))},
             {"code_challenge_method", "S256"}});
        std::vector<gh::HeaderField> headers = {{"Location", location},
                                                {"Cache-Control", "no-store"}};
        for (const std::string &k : cookies)
            headers.emplace_back("Set-Cookie", k);
        stream.resume(stream.respond(302, headers) == GH_OK ? GH_RESPOND : GH_ERROR);
    });
    return GH_PAUSE;
}

gh_action_t SsoFilter::bearer_refused(gh::Stream s, const char *reason) {
    bearer_rejected_.inc({reason});
    requests_.inc({"denied"});
    const std::string challenge =
        gh::cat("Bearer realm=\"gatehouse\", error=\"invalid_token\", error_description=\"",
                reason, "\"");
    const std::string body =
        gh::cat(R"({"error":"invalid_token","error_description":")", reason, "\"}");
    if (s.respond(401,
                  {{"Content-Type", "application/json"},
                   {"WWW-Authenticate", challenge},
                   {"Cache-Control", "no-store"}},
                  body) != GH_OK)
        return GH_ERROR;
    return GH_RESPOND;
}

gh_action_t SsoFilter::bearer(gh::Stream s, const Config &c, const std::string &token,
                              bool refetched) {
    const std::string &audience =
        c.bearer_audience.empty() ? c.chosen->config().client_id : c.bearer_audience;
    if (const Verified *v = t_verified.find(token);
        v && v->provider == c.chosen.get() && v->audience == audience) {
        if (now_s() > v->exp + c.clock_skew_s)
            return bearer_refused(s, "expired");
        if (!allowed(c, v->sub, v->claims))
            return forbidden(s, c, v->sub);
        requests_.inc({"bearer"});
        pass_identity(s, c, v->sub, v->claims, {});
        strip_own_cookies(s, c);
        return GH_CONTINUE;
    }
    std::string why;
    std::optional<Jws> jws = parse_jws(token, why);
    if (!jws)
        return bearer_refused(s, "malformed");
    const ProviderConfig &p = c.chosen->config();
    Expect e;
    e.issuer = p.issuer;
    e.client_id = c.bearer_audience.empty() ? p.client_id : c.bearer_audience;
    e.algs = p.algs;
    e.now = now_s();
    e.skew = c.clock_skew_s;
    e.check_azp = false;
    if (Reject r = check_header(*jws, e); r != Reject::none)
        return bearer_refused(s, reject_name(r));
    const Reject sig = check_signature(c, *jws);
    if (sig == Reject::unknown_kid && !refetched) {
        // No keys yet, or none for this kid: ask the provider (once per cool-down), then again.
        auto st = state_of(s);
        gh_stream_t *raw = s.raw();
        const Config *cfg = &c;
        auto again = [this, st, raw, cfg, token](bool, const std::string &) {
            if (!st->ended)
                gh::Stream(raw).resume(bearer(gh::Stream(raw), *cfg, token, true));
        };
        c.chosen->refetch_keys(again);
        return GH_PAUSE;
    }
    if (sig == Reject::unknown_kid)
        return bearer_refused(s, c.chosen->keys()->empty() ? "provider_unreachable" : "unknown_kid");
    if (sig != Reject::none)
        return bearer_refused(s, "signature");
    if (Reject r = check_claims(jws->claims, e); r != Reject::none)
        return bearer_refused(s, reject_name(r));
    auto sub_it = jws->claims.find("sub");
    if (sub_it == jws->claims.end() || !sub_it->is_string())
        return bearer_refused(s, "claims");
    const std::string sub = sub_it->get<std::string>();
    if (auto exp = jws->claims.find("exp"); exp != jws->claims.end() && exp->is_number())
        t_verified.put(token, Verified{c.chosen.get(), audience, sub, jws->claims,
                                       static_cast<int64_t>(exp->get<double>())});
    if (!allowed(c, sub, jws->claims))
        return forbidden(s, c, sub);
    requests_.inc({"bearer"});
    pass_identity(s, c, sub, jws->claims, {});
    strip_own_cookies(s, c);
    return GH_CONTINUE;
}

bool SsoFilter::allowed(const Config &c, const std::string &sub, const json &claims) const {
    if (c.require_all.empty() && c.require_any.empty())
        return true;
    for (const Rule &r : c.require_all)
        if (!rule_matches(r, claims, &sub))
            return false;
    if (c.require_any.empty())
        return true;
    for (const Rule &r : c.require_any)
        if (rule_matches(r, claims, &sub))
            return true;
    return false;
}

gh_action_t SsoFilter::forbidden(gh::Stream s, const Config &c, const std::string &sub) {
    requests_.inc({"forbidden"});
    gh::log_info(gh::cat("sso: ", sub, " is not allowed on route ", s.route()));
    const bool api = c.on_missing == OnMissing::deny;
    const gh_status_t st =
        api ? s.respond(403, {{"Content-Type", "application/json"}, {"Cache-Control", "no-store"}},
                        R"({"error":"forbidden","error_description":"the identity does not satisfy this route's rules"})")
            : s.respond(403,
                        {{"Content-Type", "text/html; charset=utf-8"},
                         {"Cache-Control", "no-store"}},
                        "<!doctype html><title>Access denied</title><h1>Access denied</h1>"
                        "<p>You are signed in, but this page is not open to your account.</p>\n");
    return st == GH_OK ? GH_RESPOND : GH_ERROR;
}

Reject SsoFilter::check_signature(const Config &c, const Jws &jws) const {
    auto keys = c.chosen->keys();
    bool matched = false;
    for (const Jwk &k : *keys)
        if (jws.kid.empty() || k.kid == jws.kid) {
            matched = true;
            if (verify_signature(jws, k))
                return Reject::none;
        }
    return matched ? Reject::signature : Reject::unknown_kid;
}

gh_status_t SsoFilter::token_request(const Config &c, std::vector<gh::http::QueryParam> form,
                                     std::function<void(const gh::CalloutResponse &)> done) {
    const ProviderConfig &p = c.chosen->config();
    auto meta = c.chosen->metadata();
    if (!meta)
        return GH_ERR_STATE;
    std::string basic;
    if (p.client_secret.empty() || p.client_auth == ProviderConfig::ClientAuth::post) {
        form.push_back({"client_id", p.client_id});
        if (!p.client_secret.empty())
            form.push_back({"client_secret", p.client_secret});
    } else {
        // RFC 6749 §2.3.1: both parts form-urlencoded before base64.
        basic = gh::cat("Basic ",
                        b64_encode(gh::cat(gh::http::percent_encode(p.client_id, true), ":",
                                           gh::http::percent_encode(p.client_secret, true))));
    }
    const std::string body = gh::http::format_query(form, true);
    const std::string target = Provider::target_of(meta->token_endpoint);
    gh::CalloutRequest req;
    req.upstream = p.upstream;
    req.method = "POST";
    req.target = target;
    req.headers = {{"Content-Type", "application/x-www-form-urlencoded"},
                   {"Accept", "application/json"}};
    if (!basic.empty())
        req.headers.emplace_back("Authorization", basic);
    req.body = body;
    req.timeout_ms = static_cast<uint32_t>(p.timeout_ms);
    return gh::callout(req, std::move(done));
}

gh_action_t SsoFilter::refresh(gh::Stream s, const Config &c, Session session) {
    auto st = state_of(s);
    gh_stream_t *raw = s.raw();
    const Config *cfg = &c;
    const std::string id = session.id;
    auto done = [this, st, raw, cfg, session, id](const gh::CalloutResponse &r) mutable {
        auto release = [&](std::optional<Renewed> result) {
            std::lock_guard g(refresh_lock_);
            refreshing_.erase(id);
            const int64_t now = now_s();
            for (auto it = renewed_.begin(); it != renewed_.end();)
                it = now - it->second.at > 60 ? renewed_.erase(it) : std::next(it);
            if (result)
                renewed_[id] = std::move(*result);
        };
        const Config &c = *cfg;
        json tokens = r.ok() ? json::parse(r.body(), nullptr, false) : json();
        if (!r.ok() || r.status() >= 500) {
            // The provider is away: the session goes on as it is; the next request tries again.
            refreshes_.inc({"error"});
            release(std::nullopt);
            if (st->ended)
                return;
            gh::Stream stream(raw);
            pass_identity(stream, c, session);
            strip_own_cookies(stream, c);
            return stream.resume(GH_CONTINUE);
        }
        std::optional<std::string> refused;
        auto str = [&](const char *name) {
            auto it = tokens.find(name);
            return it != tokens.end() && it->is_string() ? it->get<std::string>() : std::string();
        };
        if (r.status() != 200 || !tokens.is_object() || str("access_token").empty())
            refused = gh::cat("the provider answered ", r.status());
        if (!refused && !str("id_token").empty()) {
            // A new ID token must be the same user's, from the same provider (Core §12.2).
            std::string why;
            auto jws = parse_jws(str("id_token"), why);
            Expect e;
            e.issuer = c.chosen->config().issuer;
            e.client_id = c.chosen->config().client_id;
            e.algs = c.chosen->config().algs;
            e.now = now_s();
            e.skew = c.clock_skew_s;
            Reject rj = !jws ? Reject::malformed : check_header(*jws, e);
            if (rj == Reject::none)
                rj = check_signature(c, *jws);
            if (rj == Reject::none)
                rj = check_claims(jws->claims, e);
            if (rj == Reject::none && jws->claims.value("sub", std::string()) != session.sub)
                rj = Reject::claims;
            if (rj != Reject::none)
                refused = gh::cat("the renewed ID token: ", reject_name(rj));
            else
                session.id_token = str("id_token");
        }
        if (refused) {
            refreshes_.inc({"refused"});
            gh::log_info(gh::cat("session renewal refused: ", *refused));
            release(std::nullopt);
            if (st->ended)
                return;
            if (c.redis_store)
                c.redis_store->remove(session.id, [](bool) {});
            gh::Stream stream(raw);
            // The session is over: clear it and send the browser back to the same URL (it signs
            // in again), or 401 on an API route.
            std::vector<std::string> cookies = clear_session_cookies(stream, c);
            if (c.on_missing == OnMissing::deny) {
                std::vector<gh::HeaderField> headers = {
                    {"Content-Type", "application/json"},
                    {"WWW-Authenticate", "Bearer realm=\"gatehouse\""}};
                for (const std::string &k : cookies)
                    headers.emplace_back("Set-Cookie", k);
                return stream.resume(
                    stream.respond(401, headers, R"({"error":"unauthorized","error_description":"the session has ended"})") == GH_OK
                        ? GH_RESPOND
                        : GH_ERROR);
            }
            const std::string back = return_to(stream);
            std::vector<gh::HeaderField> headers = {{"Location", back},
                                                    {"Cache-Control", "no-store"}};
            for (const std::string &k : cookies)
                headers.emplace_back("Set-Cookie", k);
            return stream.resume(stream.respond(302, headers) == GH_OK ? GH_RESPOND : GH_ERROR);
        }
        const int64_t now = now_s();
        session.access_token = str("access_token");
        if (!str("refresh_token").empty())
            session.refresh_token = str("refresh_token");
        auto ei = tokens.find("expires_in");
        session.access_expires = ei != tokens.end() && ei->is_number_integer()
                                     ? now + ei->get<int64_t>()
                                     : 0;
        session.seen = now;
        refreshes_.inc({"ok"});
        if (st->ended) {
            release(std::nullopt); // nobody to hand the new cookie to: the next request renews
            return;
        }
        gh::Stream stream(raw);
        if (c.redis_store) {
            // The store keeps the renewed session; the cookie (its id) stays as it is.
            store_session(c, session, [](bool) {});
            release(Renewed{session, {}, now});
        } else {
            std::vector<std::string> cookies = session_cookies(stream, c, session);
            release(Renewed{session, cookies, now});
            st->set_cookies = std::move(cookies);
        }
        pass_identity(stream, c, session);
        strip_own_cookies(stream, c);
        stream.resume(GH_CONTINUE);
    };
    if (token_request(c, {{"grant_type", "refresh_token"}, {"refresh_token", session.refresh_token}},
                      done) != GH_OK) {
        {
            std::lock_guard g(refresh_lock_);
            refreshing_.erase(id);
        }
        refreshes_.inc({"error"});
        pass_identity(s, c, session);
        strip_own_cookies(s, c);
        return GH_CONTINUE;
    }
    return GH_PAUSE;
}

gh_action_t SsoFilter::locked_refresh(gh::Stream s, const Config &c, Session session) {
    // With a shared store, one renewal per session across every gatehouse: a lock in redis
    // (expiring by itself, in case the one holding it goes away).
    auto st = state_of(s);
    gh_stream_t *raw = s.raw();
    const Config *cfg = &c;
    const std::string id = session.id;
    c.redis_store->try_lock(gh::cat("lock:", id), 15000,
                            [this, st, raw, cfg, session, id](bool ok, bool acquired) {
        if (!(ok && acquired)) {
            std::lock_guard g(refresh_lock_);
            refreshing_.erase(id);
        }
        if (st->ended) {
            if (ok && acquired) { // nobody to renew for: the next request will
                std::lock_guard g(refresh_lock_);
                refreshing_.erase(id);
            }
            return;
        }
        gh::Stream stream(raw);
        if (ok && acquired) {
            const gh_action_t a = refresh(stream, *cfg, session);
            if (a != GH_PAUSE)
                stream.resume(a);
            return;
        }
        // Another gatehouse renews it (or redis is away): go on with this session.
        pass_identity(stream, *cfg, session);
        strip_own_cookies(stream, *cfg);
        stream.resume(GH_CONTINUE);
    });
    return GH_PAUSE;
}

bool SsoFilter::revoked(const Session &session) {
    std::lock_guard g(revoke_lock_);
    for (const std::string &key : {gh::cat("sid:", session.provider, "|", session.sid),
                                   gh::cat("sub:", session.provider, "|", session.sub)}) {
        if (key.rfind("sid:", 0) == 0 && session.sid.empty())
            continue;
        if (auto it = revoked_.find(key); it != revoked_.end() && it->second.first >= session.created)
            return true;
    }
    return false;
}

void SsoFilter::revoke(const std::string &key, int64_t now, int64_t keep) {
    std::lock_guard g(revoke_lock_);
    for (auto it = revoked_.begin(); it != revoked_.end();)
        it = it->second.second < now ? revoked_.erase(it) : std::next(it);
    revoked_[key] = {now, now + keep};
    revoked_count_.store(revoked_.size(), std::memory_order_relaxed);
}

gh_action_t SsoFilter::logout_token_refused(gh::Stream s, const char *reason) {
    logout_rejected_.inc({reason});
    gh::log_info(gh::cat("back-channel logout token refused: ", reason));
    const std::string body =
        gh::cat(R"({"error":"invalid_request","error_description":")", reason, "\"}");
    if (s.respond(400, {{"Content-Type", "application/json"}, {"Cache-Control", "no-store"}},
                  body) != GH_OK)
        return GH_ERROR;
    return GH_RESPOND;
}

gh_action_t SsoFilter::backchannel(gh::Stream s, const Config &c) {
    auto st = state_of(s);
    if (st->body_held) { // the GH_HOLD re-run: the whole body is here
        st->body_held = false;
        if (st->body_too_big)
            return logout_token_refused(s, "too_large");
        return logout_token(s, c, st, false);
    }
    requests_.inc({"backchannel"});
    if (s.method() != "POST") {
        if (s.respond(405, {{"Allow", "POST"}}) != GH_OK)
            return GH_ERROR;
        return GH_RESPOND;
    }
    auto length = s.request_header("content-length");
    if (!s.request_header("transfer-encoding") && (!length || *length == "0"))
        return logout_token_refused(s, "no_logout_token"); // no body at all
    if (s.body_subscribe(GH_DIR_REQUEST, GH_BODY_STREAM) != GH_OK)
        return logout_token_refused(s, "no_logout_token");
    st->body_held = true;
    return GH_HOLD;
}

int32_t SsoFilter::on_request_body(gh::Stream s, const gh::Chunk &chunk, const Config &) {
    Slot *slot = s.ctx<Slot>();
    if (slot == nullptr || !slot->st->body_held)
        return GH_BODY_PASS;
    StreamState &st = *slot->st;
    if (st.body.size() + chunk.data.size() > kMaxLogoutBody)
        st.body_too_big = true;
    else
        st.body.append(chunk.data);
    return GH_BODY_PASS;
}

gh_action_t SsoFilter::logout_token(gh::Stream s, const Config &c,
                                    std::shared_ptr<StreamState> st, bool refetched) {
    auto value = gh::http::query_value(st->body, "logout_token");
    if (!value || value->empty())
        return logout_token_refused(s, "no_logout_token");
    std::string why;
    std::optional<Jws> jws = parse_jws(*value, why);
    if (!jws)
        return logout_token_refused(s, "malformed");
    const ProviderConfig &p = c.chosen->config();
    Expect e;
    e.issuer = p.issuer;
    e.client_id = p.client_id;
    e.algs = p.algs;
    e.now = now_s();
    e.skew = c.clock_skew_s;
    e.require_exp = false; // optional in Back-Channel Logout 1.0; checked when present
    if (Reject r = check_header(*jws, e); r != Reject::none)
        return logout_token_refused(s, reject_name(r));
    Reject r = check_signature(c, *jws);
    if (r == Reject::unknown_kid && !refetched) {
        gh_stream_t *raw = s.raw();
        const Config *cfg = &c;
        auto again = [this, st, raw, cfg](bool, const std::string &) {
            if (!st->ended)
                gh::Stream(raw).resume(logout_token(gh::Stream(raw), *cfg, st, true));
        };
        c.chosen->refetch_keys(again);
        return GH_PAUSE;
    }
    if (r == Reject::none)
        r = check_claims(jws->claims, e);
    if (r != Reject::none)
        return logout_token_refused(s, reject_name(r));
    // Back-Channel Logout 1.0 §2.6: the event, no nonce, a sid or a sub, a jti used once.
    const json &claims = jws->claims;
    auto events = claims.find("events");
    if (events == claims.end() || !events->is_object() || !events->contains(kBackchannelEvent))
        return logout_token_refused(s, "events");
    if (claims.contains("nonce"))
        return logout_token_refused(s, "nonce");
    const std::string sid = claims.value("sid", std::string());
    const std::string sub = claims.value("sub", std::string());
    if (sid.empty() && sub.empty())
        return logout_token_refused(s, "no_sid_or_sub");
    const std::string jti = claims.value("jti", std::string());
    const int64_t now = now_s();
    const auto keep = static_cast<int64_t>(c.session_lifetime_ms / 1000);
    if (jti.empty())
        return logout_token_refused(s, "jti");
    if (state_used(gh::cat("jti:", p.name, "|", jti), now, keep))
        return logout_token_refused(s, "jti_replay");
    // Every session of that provider session (sid), or of that user (sub alone), made before now.
    const std::string index = !sid.empty() ? gh::cat("sid:", p.name, "|", sid)
                                           : gh::cat("sub:", p.name, "|", sub);
    if (c.redis_store) {
        gh_stream_t *raw = s.raw();
        const std::string what = sid.empty() ? gh::cat("sub ", sub) : gh::cat("sid ", sid);
        c.redis_store->revoke(index, [this, st, raw, what, name = p.name](bool ok) {
            if (st->ended)
                return;
            gh::Stream stream(raw);
            if (!ok) // the provider retries a logout that was not acknowledged
                return stream.resume(store_unavailable(stream));
            logouts_.inc({"backchannel"});
            gh::log_info(gh::cat("back-channel logout from ", name, ": ", what));
            stream.resume(stream.respond(200, {{"Cache-Control", "no-store"}}) == GH_OK ? GH_RESPOND
                                                                                       : GH_ERROR);
        });
        return GH_PAUSE;
    }
    revoke(index, now, keep);
    logouts_.inc({"backchannel"});
    gh::log_info(gh::cat("back-channel logout from ", p.name, ": ",
                         sid.empty() ? gh::cat("sub ", sub) : gh::cat("sid ", sid)));
    if (s.respond(200, {{"Cache-Control", "no-store"}}) != GH_OK)
        return GH_ERROR;
    return GH_RESPOND;
}

bool SsoFilter::state_used(const std::string &state, int64_t now, int64_t ttl) {
    std::lock_guard g(used_lock_);
    while (!used_order_.empty() && (used_order_.front().first < now - ttl ||
                                    used_order_.size() > 100000)) {
        used_states_.erase(used_order_.front().second);
        used_order_.pop_front();
    }
    if (!used_states_.emplace(state, now).second)
        return true;
    used_order_.emplace_back(now, state);
    return false;
}

gh_action_t SsoFilter::callback(gh::Stream s, const Config &c) {
    requests_.inc({"callback"});
    auto params = gh::http::parse_query(s.query());
    auto param = [&](std::string_view name) -> std::optional<std::string> {
        if (params)
            for (const auto &p : *params)
                if (p.name == name)
                    return p.value;
        return std::nullopt;
    };
    const auto state = param("state");
    if (!state || state->empty() || !gh::http::is_token(*state))
        return fail(s, "state", 400, "no state in the callback");
    const std::string name = login_prefix(c) + *state;
    std::vector<std::string> clear = {set_cookie(c, name, "", c.cookie_path, 0)};
    auto cookie = request_cookie(s, name);
    auto text = cookie ? c.state_sealer->open(*cookie, name) : std::nullopt;
    auto login = text ? decode_login(*text) : std::nullopt;
    const int64_t now = now_s();
    if (!login || !equal_ct(login->state, *state) || login->provider != c.chosen->config().name)
        return fail(s, "state", 400, "no login state for this callback (expired or tampered)",
                    clear);
    if (now - login->created > static_cast<int64_t>(c.login_timeout_ms / 1000))
        return fail(s, "state_expired", 400, "the login took longer than login_timeout", clear);
    if (state_used(login->state, now, static_cast<int64_t>(c.login_timeout_ms / 1000)))
        return fail(s, "state_replay", 400, "this login state was used already", clear);
    if (auto error = param("error"))
        return fail(s, "provider_error", 403,
                    gh::cat("the provider answered ", *error, ": ",
                            param("error_description").value_or("")),
                    clear);
    auto meta = c.chosen->metadata();
    if (!meta)
        return fail(s, "provider_unreachable", 502, "no provider metadata", clear);
    const auto iss = param("iss");
    if ((meta->iss_parameter && !iss) || (iss && *iss != c.chosen->config().issuer))
        return fail(s, "iss", 400, "the callback's iss is not the provider's (RFC 9207)", clear);
    auto code = param("code");
    if (!code || code->empty())
        return fail(s, "code", 400, "no code in the callback", clear);
    auto st = state_of(s);
    st->set_cookies = std::move(clear);
    exchange_code(s, c, st, std::move(*login), std::move(*code));
    return GH_PAUSE;
}

void SsoFilter::exchange_code(gh::Stream s, const Config &c, std::shared_ptr<StreamState> st,
                              LoginState login, std::string code) {
    gh_stream_t *raw = s.raw();
    const Config *cfg = &c;
    std::vector<gh::http::QueryParam> form = {{"grant_type", "authorization_code"},
                                              {"code", code},
                                              {"redirect_uri", redirect_uri(s, c)},
                                              {"code_verifier", login.verifier}};
    const gh_status_t sent = token_request(c, std::move(form), [this, st, raw, cfg, login](
                                                                   const gh::CalloutResponse &r) {
        if (st->ended)
            return;
        gh::Stream stream(raw);
        if (!r.ok())
            return stream.resume(fail(stream, "provider_unreachable", 502,
                                      gh::cat("token request failed: ", r.error()),
                                      std::move(st->set_cookies)));
        json tokens = json::parse(r.body(), nullptr, false);
        if (r.status() != 200 || !tokens.is_object())
            return stream.resume(fail(stream, "token", r.status() >= 500 ? 502 : 403,
                                      gh::cat("token endpoint answered ", r.status(), ": ",
                                              r.body().substr(0, 200)),
                                      std::move(st->set_cookies)));
        finish_login(stream, *cfg, st, login, tokens, false);
    });
    if (sent != GH_OK)
        s.resume(fail(s, "provider_unreachable", 502,
                      gh::cat("cannot reach upstream \"", c.chosen->config().upstream, "\""),
                      std::move(st->set_cookies)));
}

void SsoFilter::finish_login(gh::Stream s, const Config &c, std::shared_ptr<StreamState> st,
                             const LoginState &login, const json &tokens, bool refetched) {
    auto id_token = tokens.find("id_token");
    if (id_token == tokens.end() || !id_token->is_string())
        return s.resume(fail(s, "id_token", 403, "the token response has no id_token",
                             std::move(st->set_cookies)));
    const std::string compact = id_token->get<std::string>();
    std::string why;
    std::optional<Jws> jws = parse_jws(compact, why);
    if (!jws)
        return s.resume(fail(s, "id_token", 403, why, std::move(st->set_cookies)));
    const ProviderConfig &p = c.chosen->config();
    Expect e;
    e.issuer = p.issuer;
    e.client_id = p.client_id;
    e.algs = p.algs;
    e.now = now_s();
    e.skew = c.clock_skew_s;
    e.nonce = login.nonce;
    if (Reject r = check_header(*jws, e); r != Reject::none)
        return s.resume(fail(s, reject_name(r), 403, "ID token header refused", std::move(st->set_cookies)));
    const Reject sig = check_signature(c, *jws);
    if (sig == Reject::unknown_kid && !refetched) {
        // A key the provider rotated in: fetch the keys again (once per cool-down).
        gh_stream_t *raw = s.raw();
        const Config *cfg = &c;
        std::shared_ptr<Provider> provider = c.chosen;
        provider->refetch_keys([this, st, raw, cfg, login, tokens](bool, const std::string &) {
            if (st->ended)
                return;
            finish_login(gh::Stream(raw), *cfg, st, login, tokens, true);
        });
        return;
    }
    if (sig != Reject::none)
        return s.resume(fail(s, reject_name(sig), 403,
                             sig == Reject::unknown_kid ? gh::cat("no key \"", jws->kid, "\"")
                                                        : std::string("ID token signature does not verify"),
                             std::move(st->set_cookies)));
    if (Reject r = check_claims(jws->claims, e); r != Reject::none)
        return s.resume(fail(s, reject_name(r), 403, "ID token claims refused", std::move(st->set_cookies)));
    auto sub = jws->claims.find("sub");
    if (sub == jws->claims.end() || !sub->is_string() || sub->get_ref<const std::string &>().empty())
        return s.resume(fail(s, "claims", 403, "ID token without sub", std::move(st->set_cookies)));

    Session session;
    session.id = random_token(12);
    session.provider = p.name;
    session.sub = sub->get<std::string>();
    if (auto sid = jws->claims.find("sid"); sid != jws->claims.end() && sid->is_string())
        session.sid = sid->get<std::string>();
    session.claims = identity_claims(jws->claims);
    session.id_token = compact;
    if (auto at = tokens.find("access_token"); at != tokens.end() && at->is_string())
        session.access_token = at->get<std::string>();
    if (auto rt = tokens.find("refresh_token"); rt != tokens.end() && rt->is_string())
        session.refresh_token = rt->get<std::string>();
    session.created = session.seen = now_s();
    if (auto ei = tokens.find("expires_in"); ei != tokens.end() && ei->is_number())
        session.access_expires = session.created + ei->get<int64_t>();
    // Back to the page the sign-in started from, with the session's cookie(s).
    auto done = [this, st, login](gh::Stream s, std::vector<std::string> session_set) {
        std::vector<gh::HeaderField> headers = {{"Location", safe_return(login.return_to)
                                                                 ? std::string_view(login.return_to)
                                                                 : std::string_view("/")},
                                                {"Cache-Control", "no-store"}};
        std::vector<std::string> cookies = std::move(st->set_cookies);
        st->set_cookies.clear();
        for (std::string &k : session_set)
            cookies.push_back(std::move(k));
        for (const std::string &k : cookies)
            if (!k.empty())
                headers.emplace_back("Set-Cookie", k);
        s.resume(s.respond(302, headers) == GH_OK ? GH_RESPOND : GH_ERROR);
    };
    if (!c.redis_store) {
        logins_.inc({p.name});
        return done(s, session_cookies(s, c, session));
    }
    gh_stream_t *raw = s.raw();
    const Config *cfg = &c;
    const std::string provider_name = p.name;
    store_session(c, session, [this, st, raw, cfg, done, id = session.id, provider_name](bool ok) {
        if (st->ended)
            return;
        gh::Stream stream(raw);
        if (!ok)
            return stream.resume(store_unavailable(stream));
        logins_.inc({provider_name});
        const Config &c = *cfg;
        const std::string sealed = c.session_sealer->seal(gh::cat(kStoredTag, id), c.cookie_name);
        done(stream, {set_cookie(c, c.cookie_name, sealed, c.cookie_path,
                                 static_cast<int64_t>(c.session_lifetime_ms / 1000))});
    });
}

gh_action_t SsoFilter::logout(gh::Stream s, const Config &c) {
    requests_.inc({"logout"});
    logouts_.inc({"rp"});
    if (c.redis_store) {
        if (std::optional<std::string> id = stored_id(s, c)) {
            // The session leaves the store (for every device) before the browser leaves.
            auto st = state_of(s);
            gh_stream_t *raw = s.raw();
            const Config *cfg = &c;
            c.redis_store->get(*id, [this, st, raw, cfg, id = *id](bool, std::optional<std::string> v) {
                if (st->ended)
                    return;
                cfg->redis_store->remove(id, [](bool) {});
                std::optional<Session> session = v ? decode_session(*v) : std::nullopt;
                gh::Stream stream(raw);
                stream.resume(logout_redirect(stream, *cfg, session ? &*session : nullptr));
            });
            return GH_PAUSE;
        }
        return logout_redirect(s, c, nullptr);
    }
    std::shared_ptr<Opened> opened = read_session(s, c, now_s());
    return logout_redirect(s, c, opened ? &opened->session : nullptr);
}

gh_action_t SsoFilter::logout_redirect(gh::Stream s, const Config &c, const Session *session) {
    std::string after = "/";
    if (auto params = gh::http::parse_query(s.query()))
        for (const auto &p : *params)
            if (p.name == "rd" && std::find(c.post_logout_redirects.begin(),
                                            c.post_logout_redirects.end(),
                                            p.value) != c.post_logout_redirects.end())
                after = p.value;
    std::string location = after;
    auto meta = c.chosen->metadata();
    if (meta && !meta->end_session_endpoint.empty()) {
        std::vector<gh::http::QueryParam> q = {{"client_id", c.chosen->config().client_id}};
        if (session && !session->id_token.empty())
            q.push_back({"id_token_hint", session->id_token});
        if (after != "/")
            q.push_back({"post_logout_redirect_uri", after});
        location = with_query(meta->end_session_endpoint, q);
    }
    std::vector<gh::HeaderField> headers = {{"Location", location}, {"Cache-Control", "no-store"}};
    std::vector<std::string> cookies = clear_session_cookies(s, c);
    for (const std::string &k : cookies)
        headers.emplace_back("Set-Cookie", k);
    if (s.respond(302, headers) != GH_OK)
        return GH_ERROR;
    return GH_RESPOND;
}

gh_action_t SsoFilter::on_response_headers(gh::Stream s, const Config &) {
    Slot *slot = s.ctx<Slot>();
    if (slot == nullptr || slot->st->set_cookies.empty())
        return GH_CONTINUE;
    for (const std::string &k : slot->st->set_cookies)
        if (!k.empty())
            s.add_header(GH_HEADERS_RESPONSE, "Set-Cookie", k);
    slot->st->set_cookies.clear();
    return GH_CONTINUE;
}

void SsoFilter::worker_exit(Config &c) {
    if (c.redis_store)
        c.redis_store->close_worker();
}

void SsoFilter::on_stream_end(gh::Stream s, const Config &) {
    if (Slot *slot = s.ctx<Slot>()) {
        slot->st->ended = true;
        s.take_ctx<Slot>();
    }
}

} // namespace sso

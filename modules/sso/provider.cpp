// sso: provider discovery and keys over callouts (see provider.hpp).
#include "provider.hpp"

#include <nlohmann/json.hpp>

namespace sso {

namespace {

std::string str(const json &j, const char *name) {
    auto it = j.find(name);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Cache-Control max-age in ms, or 0.
uint64_t max_age_ms(std::optional<std::string_view> cc) {
    if (!cc)
        return 0;
    const size_t at = cc->find("max-age=");
    if (at == std::string_view::npos)
        return 0;
    uint64_t v = 0;
    for (size_t i = at + 8; i < cc->size() && (*cc)[i] >= '0' && (*cc)[i] <= '9'; ++i)
        v = std::min<uint64_t>(v * 10 + static_cast<uint64_t>((*cc)[i] - '0'), 86400 * 7);
    return v * 1000;
}

const gh::Counter *g_fetches = nullptr;

} // namespace

void set_fetch_counter(const gh::Counter *counter) { g_fetches = counter; }

Provider::Provider(ProviderConfig config) : config_(std::move(config)) {}

std::shared_ptr<const Metadata> Provider::metadata() const {
    std::lock_guard g(lock_);
    return metadata_;
}

std::shared_ptr<const std::vector<Jwk>> Provider::keys() const {
    std::lock_guard g(lock_);
    return keys_;
}

std::string Provider::target_of(std::string_view url) {
    size_t scheme = url.find("://");
    if (scheme == std::string_view::npos)
        return {};
    std::string_view s = url.substr(0, scheme);
    if (s != "http" && s != "https")
        return {};
    size_t path = url.find_first_of("/?#", scheme + 3);
    if (path == std::string_view::npos)
        return "/";
    std::string_view rest = url.substr(path);
    rest = rest.substr(0, rest.find('#'));
    return rest.empty() || rest.front() != '/' ? gh::cat("/", rest) : std::string(rest);
}

void Provider::count(const char *what, const char *result) const {
    if (g_fetches != nullptr)
        g_fetches->inc({config_.name, what, result});
}

void Provider::ready(Done done) {
    const uint64_t now = gh::now_ms();
    {
        std::lock_guard g(lock_);
        const bool meta_fresh = metadata_ && now - metadata_at_ < config_.metadata_refresh_ms;
        const bool keys_fresh = !keys_->empty() && now - keys_at_ < keys_ttl_;
        if ((meta_fresh && keys_fresh) || (fetching_ && metadata_ && !keys_->empty())) {
            // Fresh, or stale but usable while a refresh runs.
            gh::post(gh::current_worker(), [done = std::move(done)] { done(true, {}); });
            return;
        }
        if (metadata_ && !keys_->empty() && !fetching_) {
            // Stale but usable: refresh in the background, serve what we have.
            fetching_ = true;
            gh::post(gh::current_worker(), [done = std::move(done)] { done(true, {}); });
        } else {
            waiters_.push_back({gh::current_worker(), std::move(done)});
            if (fetching_)
                return;
            fetching_ = true;
        }
    }
    fetch_metadata();
}

void Provider::reachable(Done done) {
    const uint64_t now = gh::now_ms();
    {
        std::lock_guard g(lock_);
        if (metadata_ && !keys_->empty() && now - reached_at_ < kReachedWithinMs) {
            gh::post(gh::current_worker(), [done = std::move(done)] { done(true, {}); });
            return;
        }
        strict_waiters_.push_back({gh::current_worker(), std::move(done)});
        if (fetching_)
            return;
        fetching_ = true;
    }
    fetch_metadata();
}

void Provider::refetch_keys(Done done) {
    if (keys()->empty())
        return ready(std::move(done)); // nothing fetched yet: the first fetch, no cool-down
    const uint64_t now = gh::now_ms();
    {
        std::lock_guard g(lock_);
        if (last_refetch_ != 0 && now - last_refetch_ < config_.jwks_cooldown_ms) {
            gh::post(gh::current_worker(), [done = std::move(done)] { done(false, "cool-down"); });
            return;
        }
        waiters_.push_back({gh::current_worker(), std::move(done)});
        if (fetching_)
            return;
        fetching_ = true;
        last_refetch_ = now;
    }
    if (metadata())
        fetch_keys();
    else
        fetch_metadata();
}

void Provider::fetch_metadata() {
    std::string issuer = config_.issuer;
    while (!issuer.empty() && issuer.back() == '/')
        issuer.pop_back();
    const std::string target = target_of(issuer + "/.well-known/openid-configuration");
    gh::CalloutRequest req;
    req.upstream = config_.upstream;
    req.target = target;
    req.headers = {{"Accept", "application/json"}};
    req.timeout_ms = static_cast<uint32_t>(config_.timeout_ms);
    const gh_status_t st = gh::callout(req, [this, self = shared_from_this()](const gh::CalloutResponse &r) {
        if (!r.ok() || r.status() != 200) {
            count("metadata", "error");
            return finish(r.ok() ? gh::cat("discovery answered ", r.status())
                                 : gh::cat("discovery failed: ", r.error()));
        }
        json doc = json::parse(r.body(), nullptr, false);
        auto m = std::make_shared<Metadata>();
        if (doc.is_object()) {
            m->issuer = str(doc, "issuer");
            m->authorization_endpoint = str(doc, "authorization_endpoint");
            m->token_endpoint = str(doc, "token_endpoint");
            m->jwks_uri = str(doc, "jwks_uri");
            m->end_session_endpoint = str(doc, "end_session_endpoint");
            auto iss = doc.find("authorization_response_iss_parameter_supported");
            m->iss_parameter = iss != doc.end() && iss->is_boolean() && iss->get<bool>();
        }
        if (m->issuer != config_.issuer) {
            count("metadata", "invalid");
            return finish(gh::cat("discovery names issuer \"", m->issuer, "\", not \"",
                                  config_.issuer, "\""));
        }
        if (target_of(m->authorization_endpoint).empty() || target_of(m->token_endpoint).empty() ||
            target_of(m->jwks_uri).empty()) {
            count("metadata", "invalid");
            return finish("discovery lacks an http(s) authorization, token or jwks endpoint");
        }
        count("metadata", "ok");
        {
            std::lock_guard g(lock_);
            metadata_ = std::move(m);
            metadata_at_ = reached_at_ = gh::now_ms();
        }
        fetch_keys();
    });
    if (st != GH_OK) {
        count("metadata", "error");
        finish(gh::cat("cannot reach upstream \"", config_.upstream, "\" (", st, ")"));
    }
}

void Provider::fetch_keys() {
    const std::string target = target_of(metadata()->jwks_uri);
    gh::CalloutRequest req;
    req.upstream = config_.upstream;
    req.target = target;
    req.headers = {{"Accept", "application/json"}};
    req.timeout_ms = static_cast<uint32_t>(config_.timeout_ms);
    const gh_status_t st = gh::callout(req, [this, self = shared_from_this()](const gh::CalloutResponse &r) {
        if (!r.ok() || r.status() != 200) {
            count("jwks", "error");
            return finish(r.ok() ? gh::cat("jwks answered ", r.status())
                                 : gh::cat("jwks fetch failed: ", r.error()));
        }
        std::string error;
        std::vector<Jwk> keys = parse_jwks(r.body(), error);
        if (keys.empty()) {
            count("jwks", "invalid");
            return finish(gh::cat("jwks: ", error));
        }
        count("jwks", "ok");
        const uint64_t ttl = max_age_ms(r.header("cache-control"));
        {
            std::lock_guard g(lock_);
            keys_ = std::make_shared<const std::vector<Jwk>>(std::move(keys));
            keys_at_ = gh::now_ms();
            keys_ttl_ = ttl != 0 ? std::max<uint64_t>(ttl, 60 * 1000) : config_.jwks_refresh_ms;
        }
        finish({});
    });
    if (st != GH_OK) {
        count("jwks", "error");
        finish(gh::cat("cannot reach upstream \"", config_.upstream, "\" (", st, ")"));
    }
}

void Provider::finish(const std::string &error) {
    std::vector<Waiter> waiters, strict;
    bool usable;
    {
        std::lock_guard g(lock_);
        fetching_ = false;
        waiters.swap(waiters_);
        strict.swap(strict_waiters_);
        usable = metadata_ && !keys_->empty();
    }
    // Those who asked whether the provider answers now get the plain answer.
    for (Waiter &w : strict)
        if (gh::post(w.worker, [done = std::move(w.done), ok = error.empty() && usable, error] {
                done(ok, error.empty() ? std::string("no usable keys") : error);
            }) != GH_OK)
            gh::log_warn("sso: could not hand a provider fetch back to its worker");
    if (!error.empty())
        gh::log_warn(gh::cat("provider ", config_.name, ": ", error,
                             usable ? " (keeping the keys fetched before)" : ""));
    // A failed refresh still leaves usable state: the waiters go on with it.
    const bool ok = error.empty() || usable;
    for (Waiter &w : waiters)
        if (gh::post(w.worker, [done = std::move(w.done), ok, error] { done(ok, error); }) != GH_OK)
            gh::log_warn("sso: could not hand a provider fetch back to its worker");
}

} // namespace sso

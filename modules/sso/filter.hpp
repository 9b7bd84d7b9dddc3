// sso: the filter's hooks (registered by module.cpp). Cryptography is in crypto.hpp, tokens and
// keys in jose.hpp, providers in provider.hpp, the cookie contents in session.hpp.
//
// Phases: ACCESS (the callback and logout paths, the session check, identity headers, the
// redirect to the provider; paused while a provider is asked something), RESPONSE_HEADERS (a
// session cookie renewed on the way back).
#pragma once

#include "config.hpp"
#include "jose.hpp"
#include "provider.hpp"
#include "session.hpp"
#include "store.hpp"

#include <gatehouse/sdk.hpp>
#include <gatehouse/sdk/http/query.hpp>

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace sso {

struct StreamState;
struct Opened;

class SsoFilter : public gh::Filter<SsoFilter, Config> {
  public:
    SsoFilter();

    std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base);
    gh_action_t on_access(gh::Stream s, const Config &c);
    int32_t on_request_body(gh::Stream s, const gh::Chunk &chunk, const Config &c);
    gh_action_t on_response_headers(gh::Stream s, const Config &c);
    void on_stream_end(gh::Stream s, const Config &c);
    void worker_exit(Config &c); // closes this worker's redis connection (store = "redis")

  private:
    gh_action_t login(gh::Stream s, const Config &c);
    // A request with a valid session (`opened`: its per-worker cache entry, cookie store only).
    gh_action_t with_session(gh::Stream s, const Config &c, const Session &session, Opened *opened,
                             int64_t now);
    // A request without one: public path, 401, or the redirect to the provider.
    gh_action_t without_session(gh::Stream s, const Config &c);
    // store = "redis": the session id the cookie seals, the session from redis, storing one.
    std::optional<std::string> stored_id(gh::Stream s, const Config &c);
    gh_action_t stored_session(gh::Stream s, const Config &c, int64_t now);
    void store_session(const Config &c, const Session &session, std::function<void(bool)> done);
    gh_action_t store_unavailable(gh::Stream s);
    gh_action_t callback(gh::Stream s, const Config &c);
    gh_action_t logout(gh::Stream s, const Config &c);
    // Clears the session cookies and sends the browser to the provider's end_session_endpoint.
    gh_action_t logout_redirect(gh::Stream s, const Config &c, const Session *session);
    // An `Authorization: Bearer` JWT on a `bearer` route; `refetched` once the keys were asked
    // for again (missing, or no key for its kid).
    gh_action_t bearer(gh::Stream s, const Config &c, const std::string &token, bool refetched);
    gh_action_t bearer_refused(gh::Stream s, const char *reason);
    // require_all / require_any on the identity's claims (`sub` included).
    bool allowed(const Config &c, const std::string &sub, const nlohmann::json &claims) const;
    gh_action_t forbidden(gh::Stream s, const Config &c, const std::string &sub);
    // OpenID Back-Channel Logout: the POSTed logout_token, once the body is held.
    gh_action_t backchannel(gh::Stream s, const Config &c);
    gh_action_t logout_token(gh::Stream s, const Config &c, std::shared_ptr<StreamState> st,
                             bool refetched);
    gh_action_t logout_token_refused(gh::Stream s, const char *reason);
    // Renew `session` with its refresh token; the request waits, then goes on with the new one.
    gh_action_t refresh(gh::Stream s, const Config &c, Session session);
    gh_action_t locked_refresh(gh::Stream s, const Config &c, Session session);
    // The provider's answer to a token request: the form, with the client's authentication.
    gh_status_t token_request(const Config &c, std::vector<gh::http::QueryParam> form,
                              std::function<void(const gh::CalloutResponse &)> done);
    // Reject::none when a key of the provider verifies `jws`; unknown_kid when none matches its
    // kid (the caller may refetch); signature when the matching key does not verify it.
    Reject check_signature(const Config &c, const Jws &jws) const;
    bool revoked(const Session &session);
    void revoke(const std::string &key, int64_t now, int64_t keep);
    void exchange_code(gh::Stream s, const Config &c, std::shared_ptr<StreamState> st,
                       LoginState login, std::string code);
    void finish_login(gh::Stream s, const Config &c, std::shared_ptr<StreamState> st,
                      const LoginState &login, const nlohmann::json &tokens, bool refetched);
    // The session the request's cookies carry, if valid and not expired.
    std::shared_ptr<Opened> read_session(gh::Stream s, const Config &c, int64_t now);
    void pass_identity(gh::Stream s, const Config &c, const Session &session);
    void pass_identity(gh::Stream s, const Config &c, const std::string &sub,
                       const nlohmann::json &claims, const std::string &access_token);
    void strip_identity_headers(gh::Stream s, const Config &c);
    void strip_own_cookies(gh::Stream s, const Config &c);
    // Set-Cookie values that store `session` (and clear chunks the browser has beyond them).
    std::vector<std::string> session_cookies(gh::Stream s, const Config &c, const Session &session);
    std::vector<std::string> clear_session_cookies(gh::Stream s, const Config &c);
    gh_action_t fail(gh::Stream s, const char *reason, unsigned status, std::string_view detail,
                     std::vector<std::string> cookies = {});
    bool state_used(const std::string &state, int64_t now, int64_t ttl);

    gh::Counter requests_{"sso_requests_total",
                          "requests the filter decided, by result (session, public, login, "
                          "denied, callback, logout)",
                          {"result"}};
    gh::Counter logins_{"sso_logins_total", "completed sign-ins, by provider", {"provider"}};
    gh::Counter failures_{"sso_login_failures_total",
                          "refused or failed sign-ins and session cookies, by reason",
                          {"reason"}};
    gh::Counter bearer_rejected_{"sso_bearer_rejected_total",
                                 "bearer tokens refused with 401, by reason", {"reason"}};
    gh::Counter refreshes_{"sso_refreshes_total",
                           "token renewals with the refresh token, by result (ok, refused, error)",
                           {"result"}};
    gh::Counter logout_rejected_{"sso_logout_tokens_rejected_total",
                                 "back-channel logout tokens refused, by reason", {"reason"}};
    gh::Counter logouts_{"sso_logouts_total", "logouts, by kind (rp, backchannel)", {"kind"}};
    gh::Counter fetches_{"sso_provider_fetches_total",
                         "discovery and key fetches, by provider, what and result",
                         {"provider", "what", "result"}};

    // States of finished logins, so a replayed callback is refused (across workers).
    std::mutex used_lock_;
    std::unordered_map<std::string, int64_t> used_states_;
    std::deque<std::pair<int64_t, std::string>> used_order_;

    // Renewals: sessions being renewed now, and the result of recent ones (a request that
    // still carries the old cookie gets the new one instead of renewing again).
    struct Renewed {
        Session session;
        std::vector<std::string> cookies;
        int64_t at;
    };
    std::mutex refresh_lock_;
    std::unordered_set<std::string> refreshing_;
    std::unordered_map<std::string, Renewed> renewed_;

    // Back-channel logouts without a session store: "sid:PROVIDER|SID" / "sub:PROVIDER|SUB" ->
    // (when, kept until), for sessions made before then.
    std::mutex revoke_lock_;
    std::unordered_map<std::string, std::pair<int64_t, int64_t>> revoked_;
    std::atomic<size_t> revoked_count_{0};
};

} // namespace sso

// sso: one OpenID provider at run time -- its discovery metadata and signing keys, fetched with
// the SDK's callouts through the provider's upstream and shared read-only by every worker. One
// fetch of each kind is in flight at a time; streams that need it meanwhile wait (their
// continuations are posted back to their own workers). Keys are kept and used while the
// provider is unreachable; an unknown `kid` refetches the keys once per cool-down.
#pragma once

#include "config.hpp"
#include "jose.hpp"

#include <gatehouse/sdk.hpp>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace sso {

struct Metadata {
    std::string issuer;
    std::string authorization_endpoint, token_endpoint, jwks_uri, end_session_endpoint;
    bool iss_parameter = false; // RFC 9207 authorization_response_iss_parameter_supported
};

// The counter provider fetches are counted in, {provider, what, result} (the filter's; set once
// when it is made, before any fetch).
void set_fetch_counter(const gh::Counter *counter);

// Held by shared_ptr: a fetch in flight keeps its provider alive across a reload.
class Provider : public std::enable_shared_from_this<Provider> {
  public:
    explicit Provider(ProviderConfig config);
    const ProviderConfig &config() const { return config_; }

    // The metadata, or null before the first successful discovery.
    std::shared_ptr<const Metadata> metadata() const;
    // The keys (empty before the first successful fetch).
    std::shared_ptr<const std::vector<Jwk>> keys() const;

    // Completion: ok, or the reason it failed. Runs on the calling worker, never inside the call.
    using Done = std::function<void(bool ok, const std::string &error)>;
    // Fresh metadata and keys (fetched when missing or stale). Thread: a worker.
    void ready(Done done);
    // Like ready(), but the provider must have answered within the last second (discovery is
    // asked again otherwise, and a failure is a failure even with usable state): before sending
    // a browser to it, so a provider that is down gets the user a clear error page instead.
    void reachable(Done done);
    static constexpr uint64_t kReachedWithinMs = 1000;
    // Keys again because a token names a `kid` they lack: one refetch per cool-down (or the
    // first fetch, when there are no keys yet); the caller looks the kid up again after `done`.
    void refetch_keys(Done done);

    // The origin-form target of an absolute provider URL ("" for a URL that is not http(s)).
    static std::string target_of(std::string_view url);

  private:
    struct Waiter {
        gh_worker_t *worker;
        Done done;
    };
    void fetch_metadata();
    void fetch_keys();
    void finish(const std::string &error); // wakes the waiters; lock_ not held
    void count(const char *what, const char *result) const;

    ProviderConfig config_;
    mutable std::mutex lock_;
    std::shared_ptr<const Metadata> metadata_;
    std::shared_ptr<const std::vector<Jwk>> keys_ = std::make_shared<const std::vector<Jwk>>();
    uint64_t metadata_at_ = 0, keys_at_ = 0, keys_ttl_ = 0, last_refetch_ = 0;
    uint64_t reached_at_ = 0; // the last discovery that succeeded
    bool fetching_ = false;
    std::vector<Waiter> waiters_, strict_waiters_;
};

} // namespace sso

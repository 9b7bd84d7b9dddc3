// sso: the optional server-side session store in redis-server. Sessions live in redis (the cookie
// then carries only a sealed session id): revocation takes effect everywhere at once, tokens of
// any size fit, and back-channel logouts reach every gatehouse that shares the store.
//
// hiredis's async client on each worker's own loop (SDK 1.3 readiness watches): one connection
// per worker and config generation, made on first use and closed in worker_exit; no thread,
// no lock. Every command has a deadline (a worker timer); a connection that failed is not tried
// again for a second, so a dead redis costs a fast answer, not a wait per request.
#pragma once

#include <gatehouse/sdk.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace sso {

class RedisStore {
  public:
    struct Options {
        std::string host = "127.0.0.1";
        int port = 6379;
        std::string prefix = "gatehouse:sso:";
        uint32_t timeout_ms = 500;
    };
    explicit RedisStore(Options o) : o_(std::move(o)) {}
    const Options &options() const { return o_; }

    // Completions run later on the calling worker, never inside the call. `ok` is false when
    // redis could not answer (unreachable, timeout, an error reply).
    using Got = std::function<void(bool ok, std::optional<std::string> value)>;
    using Done = std::function<void(bool ok)>;

    // The session stored under `id` (nullopt: none, expired or revoked). Thread: a worker.
    void get(const std::string &id, Got done);
    // Store a session for `ttl_s` seconds, listed under each index key (its provider session
    // and its user) for back-channel logout. Thread: a worker.
    void put(const std::string &id, const std::string &value, int64_t ttl_s,
             const std::vector<std::string> &indexes, Done done);
    // Delete one session. Thread: a worker.
    void remove(const std::string &id, Done done);
    // SET NX PX: `acquired` when this call took the key (it expires after ttl_ms). Thread: a
    // worker.
    void try_lock(const std::string &key, uint64_t ttl_ms,
                  std::function<void(bool ok, bool acquired)> done);
    // Delete every session listed under an index key. Thread: a worker.
    void revoke(const std::string &index, Done done);

    // Close this worker's connection (worker_exit). Thread: a worker.
    void close_worker();

    struct Conn; // a worker's connection (store.cpp)

  private:
    Conn *conn();
    // Send argv; `done(reply or nullptr)` with the reply's type/value read by the caller.
    void command(std::vector<std::string> argv,
                 std::function<void(bool ok, int type, std::string str, long long n)> done);
    Options o_;
};

} // namespace sso

// cache_disk: request collapsing. Concurrent misses for one key make one origin request (the
// leader's); the others (waiters) pause, and once the leader's response head is known each is
// answered from it as the body arrives -- streamed with respond_stream/reply_write, not after
// it completes -- or released to go upstream itself when the response turns out unusable for it
// (not storable, another variant, the leader failed, or `collapse_timeout` passed).
//
// Threads: a Fill is shared by the leader's worker and every waiter's worker; its fields are
// guarded by its mutex. Every change is announced by posting catch_up to each waiter's worker,
// which takes what is new under the mutex and writes it on its own stream.
#pragma once

#include "policy.hpp"

#include <gatehouse/sdk.hpp>

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace cache_disk {

struct StreamState;

struct Config;

struct Waiter {
    // waiting -> attaching (reply head prepared, the kernel not sending it yet) -> attached
    // (body pieces go out) -> finished; or waiting -> released (goes upstream itself).
    enum class Phase { waiting, attaching, attached, released, finished };
    gh_worker_t *worker = nullptr;
    gh_stream_t *stream = nullptr;
    const Config *config = nullptr;     // the waiter's route config
    std::shared_ptr<StreamState> state; // the waiter's own stream state (ended = gone)
    Phase phase = Phase::waiting;
    size_t sent = 0; // body bytes handed to the waiter's reply
};

struct Fill {
    std::mutex mu;
    bool head_ready = false; // status, headers, length and Vary are known
    bool complete = false;   // the whole body is in `body`
    bool abandoned = false;  // the leader will not complete it
    unsigned status = 0;
    Fields headers; // the stored form (no Content-Length, no Cache-Status)
    std::vector<std::string> vary_names;
    std::vector<std::string> vary_values; // the leader's request's values for them
    uint64_t length = UINT64_MAX; // the body's Content-Length when the client gets one
    Timing timing;
    std::shared_ptr<std::string> body = std::make_shared<std::string>();
    std::vector<std::shared_ptr<Waiter>> waiters;
};

// The fills in progress of one store, by primary key.
class Fills {
  public:
    // The fill for `key`: an existing one (leader = false) or a new one the caller leads.
    std::shared_ptr<Fill> join_or_lead(const std::string &key, bool &leader) {
        std::lock_guard lock(mu_);
        auto &slot = by_key_[key];
        leader = slot == nullptr;
        if (leader)
            slot = std::make_shared<Fill>();
        return slot;
    }
    // The leader is done with `fill` (complete or not): new requests no longer join it.
    void finish(const std::string &key, const std::shared_ptr<Fill> &fill) {
        std::lock_guard lock(mu_);
        auto it = by_key_.find(key);
        if (it != by_key_.end() && it->second == fill)
            by_key_.erase(it);
    }

  private:
    std::mutex mu_;
    std::unordered_map<std::string, std::shared_ptr<Fill>> by_key_;
};

} // namespace cache_disk

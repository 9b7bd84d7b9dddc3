// cache_disk: the filter's hooks (registered by module.cpp; filter.cpp, with answering from the
// store in serve.cpp, collapsing in collapse.cpp, serving stale in stale.cpp and the admin
// endpoint in admin.cpp). The RFC rules are in policy.hpp, the files and index in store.hpp,
// the configuration in config.hpp.
//
// Phases: PRE_UPSTREAM (look up; serve a hit, or add validators to revalidate a stale object),
// RESPONSE_HEADERS (304 -> update and serve the stored object; decide storability; invalidate
// after unsafe methods), RESPONSE_BODY (observe class: collect the body as the client gets it,
// i.e. after compress), STREAM_END (free).
#pragma once

#include "collapse.hpp"
#include "config.hpp"
#include "policy.hpp"
#include "store.hpp"

#include <gatehouse/sdk.hpp>

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <memory>
#include <string>

namespace cache_disk {

// Per-stream state; only for streams on a cache route with a cacheable method.
struct StreamState {
    std::shared_ptr<Store> store;
    std::string key;
    Fields request;            // the client's request fields
    ObjectPtr candidate;       // the stored variant being revalidated
    int64_t request_ms = 0;    // when the request went upstream
    int64_t response_ms = 0;   // when the response head arrived
    bool invalidate = false;   // an unsafe method: invalidate on success
    bool ended = false;        // STREAM_END ran: completions must not touch the stream
    std::string status_detail; // Cache-Status after the cache name ("fwd=miss", ...)
    Freshness freshness;                 // of the chosen object at lookup
    const Object *freshness_of = nullptr; // which object `freshness` describes
    // Storing the response:
    bool storing = false;
    bool captured = false; // headers taken (at the first body chunk, after every filter)
    unsigned status = 0;
    Fields headers;
    std::vector<std::string> vary_names;
    uint64_t length = UINT64_MAX; // Content-Length of the body as the client gets it
    std::shared_ptr<std::string> body = std::make_shared<std::string>();
    uint64_t charged = 0; // body bytes counted against the store's collecting budget
    // Collapsing: the fill this stream leads, or the waiter it is.
    std::shared_ptr<Fill> fill;
    std::weak_ptr<Waiter> waiter; // weak: the waiter holds this state (no cycle)
    bool no_collapse = false; // released by a fill: go upstream, do not wait again
};

// The stream's state (nullptr if the filter keeps none for it). Worker thread.
std::shared_ptr<StreamState> stream_state(gh::Stream s);

class CacheFilter : public gh::Filter<CacheFilter, Config> {
  public:
    static constexpr uint32_t response_body_class = GH_BODY_CLASS_OBSERVE;

    CacheFilter();
    ~CacheFilter();
    std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base);
    void activate(Config &c);
    gh_action_t on_pre_upstream(gh::Stream s, const Config &c);
    gh_action_t on_response_headers(gh::Stream s, const Config &c);
    gh_action_t on_upstream_error(gh::Stream s, const Config &c);
    int32_t on_response_body(gh::Stream s, const gh::Chunk &chunk, const Config &c);
    void on_stream_end(gh::Stream s, const Config &c);

  private:
    gh_action_t serve(gh::Stream s, const Config &c, StreamState &st, ObjectPtr o,
                      const char *result, std::string suffix = {});
    // stale-if-error / grace: may the stale candidate answer for a failed origin?
    bool stale_if_error_ok(const Config &c, const StreamState &st) const;
    void revalidate_in_background(gh::Stream s, const Config &c, const StreamState &st,
                                  ObjectPtr o);
    // Collapsing (collapse.cpp): join or lead the key's fill; an action when the stream waits.
    std::optional<gh_action_t> collapse(gh::Stream s, const Config &c,
                                        const std::shared_ptr<StreamState> &st);
    void publish_head(StreamState &st);
    void notify(const std::shared_ptr<Fill> &fill);
    void abandon_fill(StreamState &st);
    void catch_up(const std::shared_ptr<Fill> &fill, const std::shared_ptr<Waiter> &w);
    void release(const std::shared_ptr<Waiter> &w, const char *why);
    gh_action_t revalidated(gh::Stream s, const Config &c, StreamState &st);
    using BodyDone =
        std::function<void(std::shared_ptr<const Object>, std::shared_ptr<const std::string>)>;
    gh_status_t load_body(std::shared_ptr<Store> store, ObjectPtr o, BodyDone done);
    void answer(gh::Stream s, const Config &c, const StreamState &st, const Object &obj,
                const std::string &body, std::string_view status_value, int64_t age);
    gh_status_t answer(gh::Stream s, const Config &c, const Object &obj, const struct Plan &p,
                       const std::string *body, std::string_view status_value, int64_t age);
    gh_action_t serve_from_file(gh::Stream s, const Config &c, StreamState &st, ObjectPtr o,
                                const char *result, std::string suffix);
    void persist(std::shared_ptr<Store> store, std::shared_ptr<Object> o,
                 std::shared_ptr<const std::string> body);
    void invalidate(gh::Stream s, const Config &c, StreamState &st);
    void finish_store(StreamState &st, const Config &c);
    void set_status_header(gh::Stream s, const Config &c, std::string_view detail);
    gh_action_t only_if_cached(gh::Stream s, const Config &c);

    // The admin endpoint (SDK 1.2): /modules/cache_disk/purge and /stats. Admin thread.
    static void admin(void *self, const gh_admin_request_t *request,
                      gh_admin_response_t *response);
    std::string admin_reply_; // the last admin response body (admin thread only)

    std::mutex stores_mu_; // stores_ is read by the admin thread
    std::map<std::string, std::weak_ptr<Store>> stores_; // by path

    gh::Counter requests_{"cache_disk_requests_total",
                          "GET/HEAD requests on cache routes, by result", {"result"}};
    gh::Counter stores_total_{"cache_disk_store_decisions_total",
                              "responses considered for storing, by verdict", {"verdict"}};
    gh::Counter revalidations_{"cache_disk_revalidations_total",
                               "conditional requests sent for stale objects, by outcome",
                               {"outcome"}};
    gh::Counter collapsed_{"cache_disk_collapsed_waiters_total",
                           "requests that waited for another request's origin response, by "
                           "outcome",
                           {"outcome"}};
    gh::Counter background_{"cache_disk_background_revalidations_total",
                            "stale-while-revalidate background requests, by outcome",
                            {"outcome"}};
    gh::Counter purged_{"cache_disk_purged_total", "objects removed through the admin endpoint"};
    gh::Counter invalidations_{"cache_disk_invalidations_total",
                               "objects removed after unsafe methods"};
    gh::Counter evictions_{"cache_disk_evictions_total", "objects evicted, by reason",
                           {"reason"}};
    gh::Counter write_errors_{"cache_disk_write_errors_total", "objects that failed to write"};
    gh::Counter read_errors_{"cache_disk_read_errors_total",
                             "stored objects unreadable or failing their checksum"};
    gh::Counter bytes_written_{"cache_disk_bytes_written_total", "bytes of objects written"};
    gh::Gauge bytes_{"cache_disk_bytes", "bytes of stored objects", {"path"}};
    gh::Gauge objects_{"cache_disk_objects", "stored objects", {"path"}};
    gh::Gauge memory_{"cache_disk_memory_bytes",
                      "bytes of stored bodies also kept in memory (the hot tier)", {"path"}};
};

} // namespace cache_disk

// waf: the filter's hooks (registered by module.cpp). The engine is behind engine.hpp, the
// configuration and rule sets in config.hpp, the audit trail in audit.hpp.
//
// Phases: ACCESS (engine phases 1 and 2: connection, URI, headers; the request body, held by the
// kernel until the rules allowed it), REQUEST_BODY (feeds the engine as the body arrives),
// RESPONSE_HEADERS (phase 3, and phase 4 on the held response in `buffer` mode), RESPONSE_BODY
// (phase 4 in `stream` mode), LOG (phase 5, audit), STREAM_END (phase 5 for aborted requests).
#pragma once

#include "audit.hpp"
#include "config.hpp"
#include "engine.hpp"

#include <gatehouse/sdk.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>

namespace waf {

struct StreamState;

class WafFilter : public gh::Filter<WafFilter, Config> {
  public:
    // Reads bodies before any transform (compression) and never changes them: responses keep
    // their Content-Length.
    static constexpr uint32_t response_body_class = GH_BODY_CLASS_INSPECT;

    WafFilter();

    std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base);
    void activate(Config &c);
    void deactivate(Config &c);
    gh_action_t on_access(gh::Stream s, const Config &c);
    int32_t on_request_body(gh::Stream s, const gh::Chunk &chunk, const Config &c);
    gh_action_t on_response_headers(gh::Stream s, const Config &c);
    int32_t on_response_body(gh::Stream s, const gh::Chunk &chunk, const Config &c);
    void on_log(gh::Stream s, const Config &c);
    void on_stream_end(gh::Stream s, const Config &c);

  private:
    gh_action_t start(gh::Stream s, const Config &c);
    gh_action_t request_body_done(gh::Stream s, const Config &c, StreamState &st);
    gh_action_t response_body_held(gh::Stream s, const Config &c, StreamState &st);
    gh_action_t decide(gh::Stream s, StreamState &st, int phase);
    gh_action_t off_worker(gh::Stream s, StreamState &st, int phase, void (Transaction::*call)());
    gh_action_t engine_failed(const Config &c, const char *where);
    void finish(StreamState &st, int status, bool aborted);
    // Run an engine call and add its wall time to the request's total for that phase.
    template <class F>
    void timed(StreamState &st, int phase, F &&f);
    void count_hits(const StreamState &st);

    gh::Counter inspected_{"waf_requests_total", "requests the engine inspected, by mode",
                           {"mode"}};
    gh::Counter interventions_{"waf_interventions_total",
                               "requests the rules blocked, by engine phase and action",
                               {"phase", "action"}};
    gh::Counter detected_{"waf_detections_total",
                          "requests flagged in detect mode (would have been blocked), by phase",
                          {"phase"}};
    gh::Counter hits_{"waf_rule_hits_total",
                      "logged rule matches, by rule id (the first 500 ids seen; then \"other\")",
                      {"rule"}};
    gh::Histogram engine_time_{"waf_engine_seconds", "engine time per request and phase",
                               {0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                0.01, 0.025, 0.05, 0.1, 0.25, 1},
                               {"phase"}};
    gh::Counter errors_{"waf_engine_errors_total",
                        "requests the engine failed on (see on_error), by phase", {"phase"}};
    gh::Counter audit_dropped_{"waf_audit_dropped_total",
                               "audit lines dropped because the writer fell behind"};

    std::mutex hit_ids_lock_;
    std::unordered_set<int64_t> hit_ids_;
    std::atomic<uint64_t> next_id_{0};
    uint64_t id_prefix_ = 0;
};

} // namespace waf

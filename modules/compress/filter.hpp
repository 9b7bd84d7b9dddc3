// compress: the filter's hooks (registered by module.cpp). The rules are in compress.hpp, the
// encoders in encoder.hpp, the CPU guard in cpu_guard.hpp.
//
// Phases: UPSTREAM_REQUEST (If-None-Match carries the strong forms of our weak tags),
// RESPONSE_HEADERS (decide, edit headers, subscribe), RESPONSE_BODY (encode), STREAM_END (free).
#pragma once

#include "compress.hpp"
#include "config.hpp"
#include "encoder.hpp"

#include <gatehouse/sdk.hpp>

#include <atomic>
#include <memory>
#include <string>

namespace compress_filter {

// Why a response went out uncompressed: the `reason` label of compress_skipped_total.
enum class SkipReason {
    informational,   // 1xx, 101
    no_content,      // 204
    not_modified,    // 304
    head,            // HEAD request
    already_encoded, // Content-Encoding present
    type,            // Content-Type missing or outside `types`
    no_transform,    // Cache-Control: no-transform
    range,           // 206 or Content-Range
    client_refused,  // no enabled coding acceptable, or identity preferred
    too_small,       // Content-Length below min_length
    cpu_guard,       // the worker is busier than max_cpu_percent
    failed,          // the kernel refused the body subscription
};

std::string_view skip_reason_name(SkipReason r) noexcept;

// Per-stream state; allocated only for streams that need it, freed in STREAM_END.
struct StreamState {
    std::unique_ptr<Encoder> encoder;
    Coding coding = Coding::identity;
    bool always_flush = false;
    size_t reported_memory = 0;     // encoder bytes already added to the memory gauge
    std::string client_inm;         // the client's If-None-Match, when we added strong tags
    bool peeked = false;            // asked the kernel for the first min_length body bytes
};

class CompressFilter : public gh::Filter<CompressFilter, Config> {
  public:
    static constexpr uint32_t response_body_class = GH_BODY_CLASS_ENCODE;

    CompressFilter();

    std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base);
    gh_action_t on_upstream_request(gh::Stream s, const Config &c);
    gh_action_t on_response_headers(gh::Stream s, const Config &c);
    int32_t on_response_body(gh::Stream s, const gh::Chunk &chunk, const Config &c);
    void on_stream_end(gh::Stream s, const Config &c);

  private:
    gh_action_t skip(SkipReason reason);
    void on_not_modified(gh::Stream s, const Config &c);
    bool cpu_guard_tripped(const Config &c);
    gh_action_t start_encoding(gh::Stream s, const Config &c, Coding coding);
    void account_memory(StreamState &st);
    void release_memory(StreamState &st);

    gh::Counter responses_{"compress_responses_total", "responses compressed, by codec",
                           {"codec"}};
    gh::Counter bytes_in_{"compress_bytes_in_total", "body bytes fed to the encoder, by codec",
                          {"codec"}};
    gh::Counter bytes_out_{"compress_bytes_out_total", "encoded body bytes sent, by codec",
                           {"codec"}};
    gh::Counter skipped_{"compress_skipped_total",
                         "compressible-route responses sent uncompressed, by reason",
                         {"reason"}};
    gh::Gauge memory_{"compress_encoder_memory_bytes",
                      "bytes held by live encoders (all workers), by codec", {"codec"}};
    gh::Gauge peak_{"compress_encoder_peak_bytes",
                    "largest memory one encoder has held since start, by codec", {"codec"}};
    gh::Gauge busy_{"compress_worker_busy_ratio",
                    "worker thread CPU time over wall time in the last CPU-guard window",
                    {"worker"}};
    std::atomic<size_t> peak_gzip_{0};
    std::atomic<size_t> peak_br_{0};
    std::atomic<unsigned> next_worker_{0};
};

} // namespace compress_filter

// waf: the audit trail -- JSON events and the engine's native lines, written by a thread of the
// module's own so a slow disk never holds a worker.
#pragma once

#include "engine.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace waf {

// Appends lines to one file from a background thread. write() never blocks on I/O: past
// kMaxPending waiting lines it drops the line and counts it.
class LogWriter {
  public:
    static constexpr size_t kMaxPending = 65536;

    // Opens `path` for appending; error() says why when it could not.
    explicit LogWriter(std::string path);
    ~LogWriter(); // writes what is pending, then stops
    LogWriter(const LogWriter &) = delete;
    LogWriter &operator=(const LogWriter &) = delete;

    const std::string &error() const noexcept { return error_; }
    const std::string &path() const noexcept { return path_; }
    // Thread: any. `line` without its newline.
    void write(std::string line);
    uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
    // The lines dropped since the last call (for a counter). Thread: any.
    uint64_t take_dropped() noexcept {
        return dropped_.load(std::memory_order_relaxed) == 0
                   ? 0
                   : dropped_.exchange(0, std::memory_order_relaxed);
    }
    // Waits until everything written so far is on disk (tests, shutdown).
    void flush();

  private:
    void run();

    std::string path_;
    std::string error_;
    std::FILE *file_ = nullptr;
    std::mutex lock_;
    std::condition_variable wake_;
    std::condition_variable drained_;
    std::deque<std::string> pending_;
    bool writing_ = false;
    bool stop_ = false;
    std::atomic<uint64_t> dropped_{0};
    std::thread thread_;
};

// What the audit event says about one request.
struct AuditInput {
    std::string id;     // the module's request id (also in the access log as waf.id)
    std::string client; // ip:port
    std::string method, host, uri, route;
    std::string mode;   // "on" / "detect"
    std::string action; // "blocked", "redirected", "dropped", "detected", "passed"
    int phase = 0;      // of the decision (0: none)
    int status = 0;     // what the client got (0 if nothing was sent)
    std::string inbound_score, outbound_score;
    const std::vector<Hit> *hits = nullptr;
    // Values to hide (from the redacted names), and the names themselves.
    std::vector<std::string> secret_values;
    const std::vector<std::string> *redact_names = nullptr;
    size_t match_max = 256;
};

// One JSON line (no newline). Matched data and messages are cut to match_max bytes and have the
// values of redacted fields replaced by "[redacted]".
std::string audit_event(const AuditInput &in);

// `text` with every secret value and every value the engine quotes for a redacted variable
// ("ARGS:password: x", "variable `ARGS:password' (Value: `x' )") replaced by "[redacted]".
std::string redact(std::string_view text, const std::vector<std::string> &names,
                   const std::vector<std::string> &values);

} // namespace waf

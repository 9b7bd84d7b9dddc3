// The access log: one line per request, formatted on the worker thread that served it and
// written by one writer thread, so a slow disk or a blocked stdout never stalls a worker.
//
// Hand-over design (why the per-line path takes no lock):
// - Each worker owns a slot holding an atomic pointer to its current buffer. write() takes the
//   buffer out of the slot with one atomic exchange, appends the formatted line, and puts it
//   back. Nobody else can touch the buffer while the slot is empty.
// - A buffer of >= 32 KiB is handed to the writer's queue under a mutex (once per batch) and
//   replaced by a recycled one in the same critical section.
// - Every ~100 ms the writer steals the partly filled buffers (exchange with nullptr) of the
//   slots that hold lines, so the lines of a quiet worker still reach the file. A worker that
//   finds its slot empty takes a fresh buffer (one lock, once per steal).
// - Stealing happens while the writer holds the queue mutex, so a worker's buffers enter the
//   queue in the order they were filled: lines of one worker are never reordered.
// - If the writer falls behind by more than 64 MiB, full buffers are dropped and counted
//   (dropped_lines(), and a warning in the kernel log) instead of blocking or growing forever.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace gatehouse::config {
class TableReader;
}

namespace gatehouse::accesslog {

struct AccessLogConfig {
    enum class Format { combined, json };
    std::string path; // "" = off, "stdout", or a file path (absolute once loaded)
    Format format = Format::combined;
};

// Reads `[access_log]`: `path` (relative paths are resolved against `base_dir`, the config
// file's directory) and `format`. Errors go to the table's diagnostics; calls table.finish().
void read_access_log_config(config::TableReader& table, const std::string& base_dir,
                            AccessLogConfig& out);

// One finished (or abandoned) request. Views are valid only during AccessLog::write().
struct AccessRecord {
    std::chrono::system_clock::time_point start;
    std::string_view client_address; // "127.0.0.1:5555" or "[::1]:5555"
    std::string_view method;         // empty when the request line could not be parsed
    std::string_view target;
    std::string_view host;
    std::string_view user_agent;
    std::string_view referer;
    std::string_view route;            // route name, empty if none matched
    std::string_view upstream;         // pool name
    std::string_view upstream_address; // the server that answered (last attempt)
    unsigned version = 11;             // 10 or 11
    unsigned status = 0;
    uint64_t bytes_sent = 0;     // to the client, head and body
    uint64_t bytes_received = 0; // from the client, head and body
    // Microseconds since the first byte of the request; -1 = not applicable.
    int64_t header_read_us = -1;
    int64_t upstream_connect_us = -1;
    int64_t upstream_first_byte_us = -1;
    int64_t total_us = -1;
    // completed, client_abort, upstream_reset, upstream_error, timeout, rejected, local_reply
    std::string_view termination;
    bool tls = false;
    uint32_t attempts = 0; // upstream attempts (retries and stale-connection replays included)
    // Fields modules added (name, value), after the kernel's own.
    std::span<const std::pair<std::string, std::string>> fields;
};

// Appends one line (with its '\n') in `format` to `out`. Never throws on bad bytes: combined
// escapes them as \xHH, json replaces invalid UTF-8 with U+FFFD.
void format_access_line(AccessLogConfig::Format format, const AccessRecord& record,
                        std::string& out);

class AccessLog {
public:
    // Workers are numbered 0..kMaxWorkers-1; a higher number still works, through a locked
    // path (one lock per line).
    static constexpr unsigned kMaxWorkers = 256;

    // Opens (appending) or uses stdout, and starts the writer thread. nullptr with `error` set
    // if the file cannot be opened; an empty path (off) returns nullptr with `error` empty.
    static std::unique_ptr<AccessLog> open(const AccessLogConfig& config, std::string& error);
    ~AccessLog(); // flushes, stops and joins the writer

    AccessLog(const AccessLog&) = delete;
    AccessLog& operator=(const AccessLog&) = delete;

    // Thread: worker `worker` only (one thread per number). Formats and buffers; never blocks
    // on I/O, takes no lock except when a buffer is handed over.
    void write(unsigned worker, const AccessRecord& record);
    // Thread: any; async-signal-safe (sets a flag). The writer reopens the path (appending)
    // within ~100 ms, before it writes any line written after this call.
    void reopen();
    // Thread: any. Returns once every line written before the call is in the file (write(2)).
    void flush();
    // Lines dropped because the writer fell too far behind.
    uint64_t dropped_lines() const { return dropped_lines_.load(std::memory_order_relaxed); }

private:
    struct Buffer {
        std::string text;
        uint64_t lines = 0;
    };
    struct alignas(64) Slot {
        std::atomic<Buffer*> current{nullptr};
        // Bytes in `current`, so the writer steals only buffers that hold lines.
        std::atomic<size_t> pending{0};
    };
    using BufferPtr = std::unique_ptr<Buffer>;

    AccessLog(const AccessLogConfig& config, int fd);
    void write_unslotted(const AccessRecord& record);
    // Queues `full` (or drops it if the writer is too far behind); returns an empty buffer.
    Buffer* hand_over(Buffer* full);
    Buffer* take_free_buffer();
    void queue_locked(BufferPtr buffer);
    void steal_partial_buffers_locked();
    void run_writer();
    void write_batch(std::vector<BufferPtr>& batch);
    void write_all(const std::string& text);
    void reopen_file();
    void report_drops();

    AccessLogConfig config_;
    int fd_; // writer thread only, after construction
    std::unique_ptr<Slot[]> slots_;

    std::mutex mutex_; // guards everything below up to the thread
    std::condition_variable wake_; // writer: work queued, flush or stop requested
    std::condition_variable flushed_;
    std::vector<BufferPtr> queue_;
    std::vector<BufferPtr> free_;
    size_t queued_bytes_ = 0;
    uint64_t flush_requested_ = 0;
    uint64_t flush_done_ = 0;
    bool stop_ = false;

    std::atomic<bool> reopen_requested_{false};
    std::atomic<uint64_t> dropped_lines_{0};
    uint64_t dropped_reported_ = 0; // writer thread only
    bool write_failed_ = false;     // writer thread only: report a failing fd once
    std::thread writer_;
};

} // namespace gatehouse::accesslog

// AccessLog runtime: per-worker buffers, hand-over to the writer thread, reopen and flush.
// The design (and why the per-line path is lock-free) is described in access_log.hpp.
#include "accesslog/access_log.hpp"

#include "log.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <system_error>
#include <unistd.h>

namespace gatehouse::accesslog {

namespace {

constexpr size_t kHandOverBytes = 32 * 1024;
// Room for the line that crosses kHandOverBytes, so a typical buffer never reallocates.
constexpr size_t kBufferReserve = kHandOverBytes + 8 * 1024;
// A buffer grown far past this by huge lines is freed rather than kept for reuse.
constexpr size_t kMaxRecycledCapacity = 4 * kBufferReserve;
constexpr size_t kMaxFreeBuffers = 64;
// Beyond this much unwritten text (disk full, stdout pipe not read) lines are dropped.
constexpr size_t kMaxQueuedBytes = 64 * 1024 * 1024;
constexpr auto kPollInterval = std::chrono::milliseconds(100);

bool is_stdout(const AccessLogConfig& config) { return config.path == "stdout"; }

int open_append(const std::string& path) {
    return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

} // namespace

std::unique_ptr<AccessLog> AccessLog::open(const AccessLogConfig& config, std::string& error) {
    error.clear();
    if (config.path.empty())
        return nullptr;
    int fd = STDOUT_FILENO;
    if (!is_stdout(config)) {
        fd = open_append(config.path);
        if (fd < 0) {
            error = fmt::format("cannot open access log '{}': {}", config.path,
                                std::strerror(errno));
            return nullptr;
        }
    }
    try {
        return std::unique_ptr<AccessLog>(new AccessLog(config, fd));
    } catch (const std::system_error& e) {
        if (fd != STDOUT_FILENO)
            ::close(fd);
        error = fmt::format("cannot start the access log writer thread: {}", e.what());
        return nullptr;
    }
}

AccessLog::AccessLog(const AccessLogConfig& config, int fd)
    : config_(config), fd_(fd), slots_(std::make_unique<Slot[]>(kMaxWorkers)) {
    writer_ = std::thread([this] { run_writer(); });
}

AccessLog::~AccessLog() {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    wake_.notify_one();
    // The writer's last round steals every slot's buffer and writes it.
    writer_.join();
    for (unsigned i = 0; i < kMaxWorkers; ++i)
        delete slots_[i].current.load(std::memory_order_acquire);
    if (fd_ != STDOUT_FILENO)
        ::close(fd_);
}

void AccessLog::write(unsigned worker, const AccessRecord& record) {
    if (worker >= kMaxWorkers)
        return write_unslotted(record);
    Slot& slot = slots_[worker];
    // While the slot is empty the buffer is ours alone; the writer's steal finds nullptr.
    Buffer* buffer = slot.current.exchange(nullptr, std::memory_order_acquire);
    if (!buffer)
        buffer = take_free_buffer();
    size_t before = buffer->text.size();
    try {
        format_access_line(config_.format, record, buffer->text);
        ++buffer->lines;
    } catch (...) {
        // Out of memory: lose this line, keep the ones already buffered.
        buffer->text.resize(before);
    }
    if (buffer->text.size() >= kHandOverBytes)
        buffer = hand_over(buffer);
    slot.pending.store(buffer->text.size(), std::memory_order_relaxed);
    slot.current.store(buffer, std::memory_order_release);
}

void AccessLog::write_unslotted(const AccessRecord& record) {
    auto buffer = std::make_unique<Buffer>();
    format_access_line(config_.format, record, buffer->text);
    buffer->lines = 1;
    {
        std::lock_guard lock(mutex_);
        queue_locked(std::move(buffer));
    }
    wake_.notify_one();
}

void AccessLog::reopen() { reopen_requested_.store(true, std::memory_order_release); }

void AccessLog::flush() {
    std::unique_lock lock(mutex_);
    uint64_t target = ++flush_requested_;
    wake_.notify_one();
    flushed_.wait(lock, [&] { return flush_done_ >= target; });
}

AccessLog::Buffer* AccessLog::hand_over(Buffer* full) {
    Buffer* fresh = nullptr;
    {
        std::lock_guard lock(mutex_);
        queue_locked(BufferPtr(full));
        if (!free_.empty()) {
            fresh = free_.back().release();
            free_.pop_back();
        }
    }
    wake_.notify_one();
    if (!fresh) {
        fresh = new Buffer;
        fresh->text.reserve(kBufferReserve);
    }
    return fresh;
}

AccessLog::Buffer* AccessLog::take_free_buffer() {
    {
        std::lock_guard lock(mutex_);
        if (!free_.empty()) {
            Buffer* buffer = free_.back().release();
            free_.pop_back();
            return buffer;
        }
    }
    auto* buffer = new Buffer;
    buffer->text.reserve(kBufferReserve);
    return buffer;
}

void AccessLog::queue_locked(BufferPtr buffer) {
    if (queued_bytes_ + buffer->text.size() > kMaxQueuedBytes) {
        dropped_lines_.fetch_add(buffer->lines, std::memory_order_relaxed);
        buffer->text.clear();
        buffer->lines = 0;
        if (free_.size() < kMaxFreeBuffers)
            free_.push_back(std::move(buffer));
        return;
    }
    queued_bytes_ += buffer->text.size();
    queue_.push_back(std::move(buffer));
}

// Under mutex_, so no worker queues a newer buffer between our steal and our queueing.
void AccessLog::steal_partial_buffers_locked() {
    for (unsigned i = 0; i < kMaxWorkers; ++i) {
        Slot& slot = slots_[i];
        if (slot.pending.load(std::memory_order_relaxed) == 0)
            continue;
        Buffer* buffer = slot.current.exchange(nullptr, std::memory_order_acquire);
        if (!buffer)
            continue; // the worker holds it right now, or it was stolen already
        if (buffer->text.empty())
            free_.emplace_back(buffer);
        else
            queue_locked(BufferPtr(buffer));
    }
}

void AccessLog::run_writer() {
    std::vector<BufferPtr> batch;
    auto next_poll = std::chrono::steady_clock::now() + kPollInterval;
    for (;;) {
        uint64_t flush_target = 0;
        bool stopping = false;
        {
            std::unique_lock lock(mutex_);
            wake_.wait_until(lock, next_poll, [&] {
                return !queue_.empty() || stop_ || flush_requested_ != flush_done_;
            });
            flush_target = flush_requested_;
            stopping = stop_;
            auto now = std::chrono::steady_clock::now();
            if (now >= next_poll || stopping || flush_target != flush_done_) {
                steal_partial_buffers_locked();
                next_poll = now + kPollInterval;
            }
            batch.swap(queue_);
            queued_bytes_ = 0;
        }
        // Checked after the batch was taken: a line written after reopen() returned is in
        // this batch only if the flag is already visible here.
        if (reopen_requested_.exchange(false, std::memory_order_acq_rel))
            reopen_file();
        write_batch(batch);
        report_drops();
        {
            std::lock_guard lock(mutex_);
            for (auto& buffer : batch) {
                if (free_.size() >= kMaxFreeBuffers ||
                    buffer->text.capacity() > kMaxRecycledCapacity)
                    continue;
                buffer->text.clear();
                buffer->lines = 0;
                free_.push_back(std::move(buffer));
            }
            flush_done_ = flush_target;
        }
        batch.clear();
        flushed_.notify_all();
        if (stopping)
            return;
    }
}

void AccessLog::write_batch(std::vector<BufferPtr>& batch) {
    for (const auto& buffer : batch)
        write_all(buffer->text);
}

void AccessLog::write_all(const std::string& text) {
    const char* data = text.data();
    size_t left = text.size();
    while (left > 0) {
        ssize_t n = ::write(fd_, data, left);
        if (n >= 0) {
            data += n;
            left -= static_cast<size_t>(n);
            continue;
        }
        if (errno == EINTR)
            continue;
        // stdout may be a non-blocking pipe shared with another process: wait, we may block.
        if (errno == EAGAIN) {
            pollfd pfd{fd_, POLLOUT, 0};
            ::poll(&pfd, 1, -1);
            continue;
        }
        if (!write_failed_)
            log::error("access log: cannot write to '{}': {}", config_.path, std::strerror(errno));
        write_failed_ = true; // report once until a write succeeds again
        return;
    }
    write_failed_ = false;
}

void AccessLog::reopen_file() {
    if (is_stdout(config_))
        return;
    int fd = open_append(config_.path);
    if (fd < 0) {
        log::error("access log: cannot reopen '{}': {}; still writing to the old file",
                   config_.path, std::strerror(errno));
        return;
    }
    ::close(fd_);
    fd_ = fd;
}

void AccessLog::report_drops() {
    uint64_t dropped = dropped_lines_.load(std::memory_order_relaxed);
    if (dropped == dropped_reported_)
        return;
    log::warn("access log: {} lines dropped, the writer is behind on '{}'",
              dropped - dropped_reported_, config_.path);
    dropped_reported_ = dropped;
}

} // namespace gatehouse::accesslog

/*
 * gatehouse SDK, C++ wrapper -- async services with C++ callables: timers, offload, post,
 * readiness watches (1.3) and HTTP callouts.
 *
 * Each helper moves the callable to the heap, hands the host a noexcept trampoline, and deletes
 * the callable after it ran (or when a timer is cancelled). An exception escaping a callable is
 * caught and logged: it cannot be turned into GH_ERROR because no hook is on the stack, so a
 * callable that completes a paused stream must call Stream::resume itself, also on failure.
 * Ownership: the wrapper owns the callables; captured state is the module's. Thread: as each
 * function says. Include <gatehouse/sdk.hpp> rather than this file.
 */
#ifndef GATEHOUSE_SDK_ASYNC_HPP
#define GATEHOUSE_SDK_ASYNC_HPP

#include "gatehouse/sdk/core.hpp"

#include <memory>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace gh {

namespace detail {
template <class F>
struct Task {
    F fn;
    // gh_task_fn: run the callable once, then free it.
    static void run(void *arg) noexcept {
        std::unique_ptr<Task> task(static_cast<Task *>(arg));
        try {
            task->fn();
        } catch (...) {
            log_current_exception("async task");
        }
    }
};

template <class Work, class Done>
struct OffloadTask {
    Work work;
    Done done;
    static void run_work(void *arg) noexcept {
        try {
            static_cast<OffloadTask *>(arg)->work();
        } catch (...) {
            log_current_exception("offload work");
        }
    }
    static void run_done(void *arg) noexcept {
        std::unique_ptr<OffloadTask> task(static_cast<OffloadTask *>(arg));
        try {
            task->done();
        } catch (...) {
            log_current_exception("offload done");
        }
    }
};
} // namespace detail

/* Post `fn()` to run on `worker` soon. Returns the host's status; on failure fn is destroyed
 * without running. Thread: any. May throw std::bad_alloc. */
template <class F>
gh_status_t post(gh_worker_t *worker, F &&fn) {
    using T = detail::Task<std::decay_t<F>>;
    auto task = std::make_unique<T>(T{std::forward<F>(fn)});
    gh_status_t st = host().post(worker, &T::run, task.get());
    if (st == GH_OK)
        task.release();
    return st;
}

/* Run `work()` on the kernel's thread pool (it may block: disk, CPU), then `done()` back on the
 * calling worker. Returns the host's status; on failure neither runs. The stream may have ended
 * before `done` runs: check your own flag. Thread: a worker. */
template <class Work, class Done>
gh_status_t offload(Work &&work, Done &&done) {
    using T = detail::OffloadTask<std::decay_t<Work>, std::decay_t<Done>>;
    auto task = std::make_unique<T>(T{std::forward<Work>(work), std::forward<Done>(done)});
    gh_status_t st = host().offload(&T::run_work, &T::run_done, task.get());
    if (st == GH_OK)
        task.release();
    return st;
}

/* A pending one-shot timer. Movable, not copyable; destroying it does NOT cancel it.
 * Ownership: the kernel's handle, valid until the timer fired or cancel(); the wrapper holds the
 * callable until it runs or cancel() frees it. Thread: the worker that started it. */
class Timer {
  public:
    Timer() = default;
    Timer(Timer &&o) noexcept : timer_(std::exchange(o.timer_, nullptr)), free_(o.free_),
                                task_(std::exchange(o.task_, nullptr)) {}
    Timer &operator=(Timer &&o) noexcept {
        timer_ = std::exchange(o.timer_, nullptr);
        free_ = o.free_;
        task_ = std::exchange(o.task_, nullptr);
        return *this;
    }
    Timer(const Timer &) = delete;
    Timer &operator=(const Timer &) = delete;

    /* True if the host accepted the timer. */
    bool started() const noexcept { return timer_ != nullptr; }
    /* Cancel a timer that has NOT fired yet (after it fired the handle is gone: do not call).
     * The callable is destroyed without running. */
    void cancel() noexcept {
        if (timer_ == nullptr)
            return;
        host().timer_cancel(timer_);
        free_(task_);
        timer_ = nullptr;
        task_ = nullptr;
    }
    /* Forget the handle once the timer fired (so a stale handle is never cancelled). */
    void release() noexcept {
        timer_ = nullptr;
        task_ = nullptr;
    }

  private:
    template <class F>
    friend Timer start_timer(uint64_t delay_ms, F &&fn);
    gh_timer_t *timer_ = nullptr;
    void (*free_)(void *) = nullptr;
    void *task_ = nullptr;
};

/* Run `fn()` once on the current worker after `delay_ms`, even if the stream it was started for
 * has ended. Off worker threads the timer is not started (started() is false). Thread: a
 * worker. May throw std::bad_alloc. */
template <class F>
Timer start_timer(uint64_t delay_ms, F &&fn) {
    using T = detail::Task<std::decay_t<F>>;
    auto task = std::make_unique<T>(T{std::forward<F>(fn)});
    Timer timer;
    timer.timer_ = host().timer_start(delay_ms, &T::run, task.get());
    if (timer.timer_ != nullptr) {
        timer.free_ = [](void *p) noexcept { delete static_cast<T *>(p); };
        timer.task_ = task.release();
    }
    return timer;
}

/* 1.2: run `fn()` on the stream's worker once a respond_stream body written so far has been
 * handed to the socket, or the client went away (see gh_host_api_v1::reply_drained): write the
 * next piece from there. Returns the host's status (GH_ERR_UNSUPPORTED on an older kernel); on
 * failure fn is destroyed without running. Thread: the stream's worker. May throw
 * std::bad_alloc. */
template <class F>
gh_status_t reply_drained(gh_stream_t *stream, F &&fn) {
    if (!GH_HOST_HAS(&host(), reply_drained))
        return GH_ERR_UNSUPPORTED;
    using T = detail::Task<std::decay_t<F>>;
    auto task = std::make_unique<T>(T{std::forward<F>(fn)});
    gh_status_t st = host().reply_drained(stream, &T::run, task.get());
    if (st == GH_OK)
        task.release();
    return st;
}

/* ---- 1.3: readiness watches ---- */

/* Drives a non-blocking descriptor (a client library's socket) on the calling worker's loop:
 * `fn(events)` runs there with GH_FD_READ or GH_FD_WRITE while that condition holds and is
 * watched (level-triggered), or GH_FD_ERROR once when the descriptor cannot be watched any more
 * (see gh_host_api_v1::fd_watch). Owns the watch: destroying it cancels it, and so may fn itself
 * (the callable is kept alive until fn returns). Movable, not copyable.
 * Ownership: the descriptor stays yours; close it after the watch is cancelled or destroyed.
 * Thread: create, set, cancel and destroy on the worker it was created on; cancel or destroy
 * every watch by worker_exit. */
class FdWatch {
  public:
    FdWatch() = default;
    FdWatch(FdWatch &&o) noexcept
        : watch_(std::exchange(o.watch_, nullptr)), call_(std::exchange(o.call_, nullptr)) {}
    FdWatch &operator=(FdWatch &&o) noexcept {
        if (this != &o) {
            cancel();
            watch_ = std::exchange(o.watch_, nullptr);
            call_ = std::exchange(o.call_, nullptr);
        }
        return *this;
    }
    FdWatch(const FdWatch &) = delete;
    FdWatch &operator=(const FdWatch &) = delete;
    ~FdWatch() { cancel(); }

    /* Watch `fd` for `events` (GH_FD_READ | GH_FD_WRITE). An inactive FdWatch when the kernel
     * refuses (off a worker, a bad or already watched descriptor, a kernel older than 1.3).
     * May throw std::bad_alloc. */
    template <class F>
    static FdWatch start(int fd, uint32_t events, F &&fn) {
        FdWatch w;
        if (!GH_HOST_HAS(&host(), fd_watch))
            return w;
        auto call = std::make_unique<Call<std::decay_t<F>>>(std::forward<F>(fn));
        w.watch_ = host().fd_watch(fd, events, &CallBase::run, call.get());
        if (w.watch_ != nullptr)
            w.call_ = call.release();
        return w;
    }

    bool active() const noexcept { return watch_ != nullptr; }
    /* Replace the conditions watched (0 pauses). GH_ERR_STATE when inactive. */
    gh_status_t set(uint32_t events) noexcept {
        return watch_ != nullptr ? host().fd_watch_set(watch_, events) : GH_ERR_STATE;
    }
    /* Stop: fn does not run again; the kernel forgets the descriptor before this returns. */
    void cancel() noexcept {
        if (watch_ == nullptr)
            return;
        host().fd_watch_cancel(std::exchange(watch_, nullptr));
        CallBase *call = std::exchange(call_, nullptr);
        if (call->running)
            call->orphaned = true; // fn is on the stack: CallBase::run frees it when fn returns
        else
            delete call;
    }

  private:
    struct CallBase {
        bool running = false;
        bool orphaned = false;
        virtual ~CallBase() = default;
        virtual void call(uint32_t events) = 0;
        static void run(void *arg, uint32_t events) noexcept {
            auto *self = static_cast<CallBase *>(arg);
            self->running = true;
            try {
                self->call(events);
            } catch (...) {
                detail::log_current_exception("fd watch");
            }
            self->running = false;
            if (self->orphaned)
                delete self;
        }
    };
    template <class F>
    struct Call final : CallBase {
        explicit Call(F f) : fn(std::move(f)) {}
        void call(uint32_t events) override { fn(events); }
        F fn;
    };
    gh_fd_watch_t *watch_ = nullptr;
    CallBase *call_ = nullptr;
};

/* Monotonic milliseconds. Thread: any. */
inline uint64_t now_ms() noexcept { return host().now_ms(); }
/* The calling worker, or nullptr off worker threads; the handle is the kernel's, valid until
 * shutdown. Thread: any. */
inline gh_worker_t *current_worker() noexcept { return host().current_worker(); }

/* ---- callouts ---- */

/* An HTTP request to a named upstream. Ownership: views borrowed until callout() returns (the
 * kernel copies them). Thread: build and send it on a worker. */
struct CalloutRequest {
    std::string_view upstream;
    std::string_view method = "GET";
    std::string_view target = "/";
    std::vector<std::pair<std::string_view, std::string_view>> headers;
    std::string_view body;
    uint32_t timeout_ms = 0; /* 0 = the upstream's defaults */
};

/* The response handed to a callout's completion. Ownership: borrowed for the completion call.
 * Thread: the worker that sent the callout. */
class CalloutResponse {
  public:
    explicit CalloutResponse(const gh_callout_response_t &r) noexcept : r_(r) {}
    const gh_callout_response_t &raw() const noexcept { return r_; }
    /* True if an HTTP response arrived (any status). */
    bool ok() const noexcept { return r_.status >= 0; }
    /* HTTP status, or a negative gh_status_t when no response was received. */
    int32_t status() const noexcept { return r_.status; }
    std::string_view body() const noexcept { return sv(r_.body); }
    /* Why, when !ok(). */
    std::string_view error() const noexcept { return sv(r_.error); }
    /* The first field named `name` (ASCII case-insensitive), or nullopt. */
    std::optional<std::string_view> header(std::string_view name) const noexcept {
        for (std::size_t i = 0; i < r_.header_count; ++i)
            if (iequals(sv(r_.headers[i].name), name))
                return sv(r_.headers[i].value);
        return std::nullopt;
    }

  private:
    static bool iequals(std::string_view a, std::string_view b) noexcept {
        if (a.size() != b.size())
            return false;
        for (std::size_t i = 0; i < a.size(); ++i) {
            char x = a[i], y = b[i];
            if (x >= 'A' && x <= 'Z')
                x = static_cast<char>(x - 'A' + 'a');
            if (y >= 'A' && y <= 'Z')
                y = static_cast<char>(y - 'A' + 'a');
            if (x != y)
                return false;
        }
        return true;
    }
    const gh_callout_response_t &r_;
};

namespace detail {
template <class F>
struct CalloutTask {
    F fn;
    static void run(void *arg, const gh_callout_response_t *response) noexcept {
        std::unique_ptr<CalloutTask> task(static_cast<CalloutTask *>(arg));
        try {
            task->fn(CalloutResponse(*response));
        } catch (...) {
            log_current_exception("callout completion");
        }
    }
};
} // namespace detail

/* Send `request`; `done(const gh::CalloutResponse &)` runs later on this worker, never inside
 * this call. Returns the host's status; on failure done is destroyed without running.
 * Thread: a worker. May throw std::bad_alloc. */
template <class F>
gh_status_t callout(const CalloutRequest &request, F &&done) {
    using T = detail::CalloutTask<std::decay_t<F>>;
    std::vector<gh_header_t> fields;
    fields.reserve(request.headers.size());
    for (const auto &h : request.headers)
        fields.push_back(gh_header_t{str(h.first), str(h.second)});
    gh_callout_request_t req{};
    req.struct_size = sizeof(req);
    req.timeout_ms = request.timeout_ms;
    req.upstream = str(request.upstream);
    req.method = str(request.method);
    req.target = str(request.target);
    req.headers = fields.data();
    req.header_count = fields.size();
    req.body = bytes(request.body);
    auto task = std::make_unique<T>(T{std::forward<F>(done)});
    gh_status_t st = host().callout(&req, &T::run, task.get());
    if (st == GH_OK)
        task.release();
    return st;
}

} // namespace gh

#endif // GATEHOUSE_SDK_ASYNC_HPP

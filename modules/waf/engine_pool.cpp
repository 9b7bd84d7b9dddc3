// waf: the engine threads (see engine_pool.hpp).
#include "engine_pool.hpp"

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <ctime>

namespace waf {

namespace {

// The signal the slice timers send: a real-time signal nobody else in the process handles,
// chosen once (from SIGRTMAX down); 0 when there is none (the threads then never yield).
void on_slice_end(int) {
    const int saved = errno;
    ::sched_yield();
    errno = saved;
}

int slice_signal() {
    static const int signo = [] {
        for (int s = SIGRTMAX; s >= SIGRTMIN; --s) {
            struct sigaction old {};
            if (::sigaction(s, nullptr, &old) != 0 || old.sa_handler != SIG_DFL ||
                (old.sa_flags & SA_SIGINFO) != 0)
                continue;
            struct sigaction sa {};
            sa.sa_handler = on_slice_end;
            sa.sa_flags = SA_RESTART;
            ::sigemptyset(&sa.sa_mask);
            if (::sigaction(s, &sa, nullptr) == 0)
                return s;
        }
        gh::log_warn("engine threads: no free real-time signal; they will not yield mid-job");
        return 0;
    }();
    return signo;
}

// A per-thread CLOCK_MONOTONIC timer (CPU-time timers only fire on the tick, too late).
class SliceTimer {
  public:
    explicit SliceTimer(pid_t tid) {
        const int signo = slice_signal();
        if (signo == 0)
            return;
        sigevent ev{};
        ev.sigev_notify = SIGEV_THREAD_ID;
        ev.sigev_signo = signo;
        ev._sigev_un._tid = tid;
        armed_ok_ = ::timer_create(CLOCK_MONOTONIC, &ev, &timer_) == 0;
        if (!armed_ok_)
            gh::log_warn("engine threads: timer_create failed; they will not yield mid-job");
    }
    ~SliceTimer() {
        if (armed_ok_)
            ::timer_delete(timer_);
    }
    SliceTimer(const SliceTimer &) = delete;
    SliceTimer &operator=(const SliceTimer &) = delete;

    void arm(uint64_t us) { set(us); }
    void disarm() { set(0); }

  private:
    void set(uint64_t us) {
        if (!armed_ok_)
            return;
        itimerspec t{};
        t.it_value.tv_sec = static_cast<time_t>(us / 1000000);
        t.it_value.tv_nsec = static_cast<long>(us % 1000000) * 1000;
        t.it_interval = t.it_value;
        ::timer_settime(timer_, 0, &t, nullptr);
    }
    timer_t timer_{};
    bool armed_ok_ = false;
};

} // namespace

EnginePool &EnginePool::get() {
    static EnginePool pool;
    return pool;
}

EnginePool::~EnginePool() {
    {
        std::lock_guard g(lock_);
        stop_ = true;
    }
    wake_.notify_all();
    for (std::thread &t : threads_)
        t.join();
}

bool EnginePool::submit(gh_worker_t *worker, std::function<void()> work,
                        std::function<void()> done) {
    if (worker == nullptr)
        return false;
    {
        std::lock_guard g(lock_);
        if (stop_)
            return false;
        if (threads_.empty()) {
            const unsigned n = std::max(1u, std::thread::hardware_concurrency());
            for (unsigned i = 0; i < n; ++i)
                threads_.emplace_back([this] { run(); });
        }
        jobs_.push_back({worker, std::move(work), std::move(done)});
    }
    wake_.notify_one();
    return true;
}

void EnginePool::run() {
    // SCHED_IDLE: this thread runs only on CPU time no other thread wants. Where that is
    // refused, nice 19. Linux: both apply to the calling thread only.
    const pid_t tid = static_cast<pid_t>(::syscall(SYS_gettid));
    sched_param param{};
    if (::sched_setscheduler(tid, SCHED_IDLE, &param) != 0)
        ::setpriority(PRIO_PROCESS, static_cast<id_t>(tid), 19);
    SliceTimer timer(tid);
    for (;;) {
        Job job;
        {
            std::unique_lock g(lock_);
            wake_.wait(g, [this] { return stop_ || !jobs_.empty(); });
            if (stop_)
                return;
            job = std::move(jobs_.front());
            jobs_.pop_front();
        }
        if (const uint64_t us = slice_us_.load(std::memory_order_relaxed))
            timer.arm(us);
        try {
            job.work();
        } catch (...) {
            gh::log_warn("engine thread: the rules threw");
        }
        timer.disarm();
        if (gh::post(job.worker, std::move(job.done)) != GH_OK)
            gh::log_warn("engine thread: could not hand a result back to its worker");
    }
}

} // namespace waf

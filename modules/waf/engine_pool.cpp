// waf: the engine threads (see engine_pool.hpp).
#include "engine_pool.hpp"

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace waf {

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
    // SCHED_IDLE: this thread runs only on CPU time no other thread wants, and gives the CPU up
    // the moment one wakes (nice 19 alone still left a waking worker queued for milliseconds).
    // Where that is refused, nice 19. Linux: both apply to the calling thread only.
    const pid_t tid = static_cast<pid_t>(::syscall(SYS_gettid));
    sched_param param{};
    if (::sched_setscheduler(tid, SCHED_IDLE, &param) != 0)
        ::setpriority(PRIO_PROCESS, static_cast<id_t>(tid), 19);
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
        try {
            job.work();
        } catch (...) {
            gh::log_warn("engine thread: the rules threw");
        }
        if (gh::post(job.worker, std::move(job.done)) != GH_OK)
            gh::log_warn("engine thread: could not hand a result back to its worker");
    }
}

} // namespace waf

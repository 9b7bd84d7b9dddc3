// waf: the engine's own threads for large bodies. The rules can take tens of milliseconds on a
// big body: that work runs here, off the worker, at the lowest scheduling priority (SCHED_IDLE,
// else nice 19), so a worker serving other routes gets the CPU back when it needs it; the
// engine gets what is left. (The kernel's offload pool runs at normal priority and is shared
// with disk I/O.)
//
// Priority alone is not enough on Linux 6.6+ (EEVDF): a worker that wakes with a little negative
// lag is not eligible yet, the scheduler keeps running the SCHED_IDLE thread, and nothing
// preempts it before the next tick (4 ms at HZ=250) -- measured: the other route's p99 went from
// 0.2 ms to 4 ms. So while a job runs, a timer interrupts its thread every `slice` and the
// thread yields the CPU: a runnable worker waits at most about one slice.
#pragma once

#include <gatehouse/sdk.hpp>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace waf {

class EnginePool {
  public:
    // One per process, started on first use with one thread per CPU; stopped with the module.
    static EnginePool &get();
    ~EnginePool();

    // Run work() on a pool thread, then done() on `worker` (gh::post). False when it cannot
    // (then neither runs). Thread: a worker.
    bool submit(gh_worker_t *worker, std::function<void()> work, std::function<void()> done);

    // How long a job runs before its thread yields the CPU; 0 = never. Thread: any.
    void set_slice_us(uint64_t us) { slice_us_.store(us, std::memory_order_relaxed); }

  private:
    EnginePool() = default;
    void run();
    struct Job {
        gh_worker_t *worker;
        std::function<void()> work, done;
    };
    std::mutex lock_;
    std::condition_variable wake_;
    std::deque<Job> jobs_;
    std::vector<std::thread> threads_;
    bool stop_ = false;
    std::atomic<uint64_t> slice_us_{200};
};

} // namespace waf

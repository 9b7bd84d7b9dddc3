// waf: the engine's own threads for large bodies. The rules can take tens of milliseconds on a
// big body: that work runs here, off the worker, at the lowest scheduling priority (SCHED_IDLE,
// else nice 19), so a worker serving other routes gets the CPU back the moment it needs it; the
// engine gets what is left. (The kernel's offload pool runs at normal priority and is shared
// with disk I/O.)
#pragma once

#include <gatehouse/sdk.hpp>

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
};

} // namespace waf

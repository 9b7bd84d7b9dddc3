// compress: the CPU guard -- how busy this worker thread has been, as HAProxy's
// maxcompcpuusage does: thread CPU time (CLOCK_THREAD_CPUTIME_ID) over wall time, sampled per
// window. Above the configured share, new responses go out uncompressed.
#pragma once

#include <cstdint>

namespace compress_filter {

// Per-worker measurement; the module keeps one per thread (thread_local), so it needs no lock.
// Thread: the worker that owns it.
class CpuGuard {
  public:
    // The busy share (0..1) of the last completed window; `now_ns`/`cpu_ns` are the monotonic
    // and thread CPU clocks. A window closes at the first call at least `window_ns` after it
    // opened (an idle worker makes no calls, so its next window spans the idle time too).
    // Returns true when a window closed (the share changed).
    bool sample(uint64_t now_ns, uint64_t cpu_ns, uint64_t window_ns) noexcept;
    double busy_ratio() const noexcept { return ratio_; }
    // True if the window must close at `now_ns` (the caller then reads the CPU clock).
    bool due(uint64_t now_ns, uint64_t window_ns) const noexcept {
        return !started_ || now_ns - wall0_ >= window_ns;
    }

  private:
    bool started_ = false;
    uint64_t wall0_ = 0;
    uint64_t cpu0_ = 0;
    double ratio_ = 0;
};

uint64_t monotonic_ns() noexcept;
uint64_t thread_cpu_ns() noexcept;

} // namespace compress_filter

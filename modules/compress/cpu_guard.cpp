// compress: the CPU guard's clocks and window arithmetic.
#include "cpu_guard.hpp"

#include <ctime>

namespace compress_filter {

namespace {
uint64_t read_clock(clockid_t id) noexcept {
    timespec ts{};
    clock_gettime(id, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}
} // namespace

uint64_t monotonic_ns() noexcept { return read_clock(CLOCK_MONOTONIC); }
uint64_t thread_cpu_ns() noexcept { return read_clock(CLOCK_THREAD_CPUTIME_ID); }

bool CpuGuard::sample(uint64_t now_ns, uint64_t cpu_ns, uint64_t window_ns) noexcept {
    if (!started_) {
        started_ = true;
        wall0_ = now_ns;
        cpu0_ = cpu_ns;
        return false;
    }
    const uint64_t wall = now_ns - wall0_;
    if (wall < window_ns || wall == 0)
        return false;
    ratio_ = static_cast<double>(cpu_ns - cpu0_) / static_cast<double>(wall);
    wall0_ = now_ns;
    cpu0_ = cpu_ns;
    return true;
}

} // namespace compress_filter

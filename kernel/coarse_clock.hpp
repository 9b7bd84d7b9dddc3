// CLOCK_MONOTONIC_COARSE as a std::chrono clock: the kernel's last tick (a few ms of
// resolution), read without the TSC. For deadlines of whole milliseconds to minutes read on the
// hot path (connection timeouts, pool idle times, ejection backoff), where a tick of lateness does
// not matter and the precise clock is not worth its cost.
#pragma once

#include <chrono>
#include <ctime>

namespace gatehouse {

struct CoarseClock {
    using duration = std::chrono::nanoseconds;
    using rep = duration::rep;
    using period = duration::period;
    using time_point = std::chrono::time_point<CoarseClock>;
    static constexpr bool is_steady = true;
    static time_point now() noexcept {
        timespec ts;
        ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
        return time_point(duration(static_cast<rep>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec));
    }
};

} // namespace gatehouse

// One timer per connection for all of its timeouts. Moving a deadline later (the common case)
// costs no timer operation: the pending wait notices on expiry and waits again. Only an earlier
// deadline re-arms the timer.
#pragma once

#include "coarse_clock.hpp"

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <memory>

namespace gatehouse::net {

class Watchdog {
public:
    using Clock = CoarseClock;

    explicit Watchdog(boost::asio::any_io_executor executor) : timer_(executor) {}

    // The pending wait holds a reference to `owner` (from its shared_from_this(), taken only
    // when a wait starts: moving a deadline later costs no reference count);
    // owner.on_watchdog() runs when the deadline passes (the owner knows which timeout that was).
    template <class Owner>
    void arm(std::chrono::milliseconds timeout, Owner& owner) {
        deadline_ = Clock::now() + timeout;
        if (waiting_ && armed_at_ <= deadline_)
            return;
        start(owner.shared_from_this());
    }
    void disarm() { deadline_ = Clock::time_point::max(); }
    void cancel() {
        deadline_ = Clock::time_point::max();
        if (waiting_) {
            timer_.cancel();
            waiting_ = false;
        }
    }

private:
    template <class Owner>
    void start(std::shared_ptr<Owner> owner) {
        armed_at_ = deadline_;
        waiting_ = true;
        ++generation_;
        // The timer runs on the precise clock: wait for what is left by the coarse one (it may
        // fire up to a tick early; the handler then waits again for the rest).
        timer_.expires_after(deadline_ - Clock::now());
        timer_.async_wait([this, owner = std::move(owner), generation = generation_](
                              const boost::system::error_code& ec) {
            if (ec || generation != generation_)
                return; // cancelled or superseded
            waiting_ = false;
            if (deadline_ == Clock::time_point::max())
                return;
            if (Clock::now() >= deadline_)
                owner->on_watchdog();
            else
                start(owner);
        });
    }

    boost::asio::steady_timer timer_;
    Clock::time_point deadline_ = Clock::time_point::max();
    Clock::time_point armed_at_ = Clock::time_point::max();
    uint64_t generation_ = 0;
    bool waiting_ = false;
};

} // namespace gatehouse::net

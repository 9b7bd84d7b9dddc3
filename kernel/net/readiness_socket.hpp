// A TCP socket that can tell the reactor "nothing to read yet": the next read waits for the
// readiness edge instead of starting with a recv.
//
// Boost 1.74's epoll reactor starts a read with a recv ("speculative") unless the last one
// returned end of stream; later Asio versions also skip it after a short read. Each of our reads
// of a response starts right after the request was sent, before the upstream can have answered,
// so that recv says EAGAIN: at full load on the 1 KiB benchmark, 0.9 wasted syscalls per proxied
// request (counted with perf's syscall tracepoints; strace slows the process enough to hide it).
// An async_wait instead costs an epoll_ctl per wait in 1.74, no better.
//
// The reactor keeps that choice in its per-descriptor state, a private member; C++ lets an
// explicit template instantiation name a private member ([temp.spec.general]/6), which is how
// this reaches it. Tied to the reactor of the Boost this is built with: the #error below stops
// a build against another one until this has been checked there.
//
// When clearing the flag is right: the reactor sets it whenever it takes a readiness edge for the
// socket, so clearing it throws away the knowledge of any edge taken since this socket's last
// read. That is only safe when whatever the peer sends next comes in answer to bytes written in
// the call chain now running, with no event-loop turn in between: those bytes make a new edge.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/version.hpp>

#include <utility>

namespace gatehouse::net {

namespace readiness_detail {

#if !defined(BOOST_ASIO_HAS_EPOLL) || BOOST_VERSION != 107400
#error "ReadinessSocket reaches into Boost 1.74's epoll reactor: check it against this Boost"
#endif

using DescriptorState = boost::asio::detail::epoll_reactor::descriptor_state;
using SpeculativeFlags = bool (DescriptorState::*)[boost::asio::detail::epoll_reactor::max_ops];

// The explicit instantiation below is allowed to name the private member; the friend function it
// defines hands the member pointer out.
struct TrySpeculative {
    friend SpeculativeFlags member(TrySpeculative);
};
template <SpeculativeFlags Member>
struct Expose {
    friend SpeculativeFlags member(TrySpeculative) { return Member; }
};
template struct Expose<&DescriptorState::try_speculative_>;

} // namespace readiness_detail

class ReadinessSocket : public boost::asio::ip::tcp::socket {
public:
    using boost::asio::ip::tcp::socket::basic_stream_socket;
    explicit ReadinessSocket(boost::asio::ip::tcp::socket&& socket)
        : boost::asio::ip::tcp::socket(std::move(socket)) {}

    // Nothing to read until the next readiness edge: the next read waits for one without a recv
    // first (see the top of this file for when that is right). Only on the socket's own thread,
    // like every operation on it.
    void set_drained() {
        if (auto* state = impl_.get_implementation().reactor_data_)
            flags(*state)[boost::asio::detail::epoll_reactor::read_op] = false;
    }
    // False when nothing can have come since the socket was last drained: no readiness edge
    // taken by the reactor since set_drained().
    bool maybe_readable() {
        auto* state = impl_.get_implementation().reactor_data_;
        return !state || flags(*state)[boost::asio::detail::epoll_reactor::read_op];
    }

private:
    static bool (&flags(readiness_detail::DescriptorState& state))[
        boost::asio::detail::epoll_reactor::max_ops] {
        return state.*member(readiness_detail::TrySpeculative{});
    }
};

} // namespace gatehouse::net

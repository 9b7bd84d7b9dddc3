// A byte stream that is either plain TCP or TLS over it, with one interface, so connections and
// Asio's composed operations (async_write) do not care which. Satisfies AsyncReadStream and
// AsyncWriteStream.
#pragma once

#include "net/readiness_socket.hpp"

#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>

#include <cerrno>
#include <memory>
#include <poll.h>
#include <span>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <utility>

namespace gatehouse::net {

// sendmsg(2) and recv(2) straight to the kernel. glibc's wrappers are thread-cancellation points:
// in a multi-threaded process each call switches the thread's cancel state on and off around
// the syscall (two atomic operations, ~5 % of the worker's user time on the 1 KiB benchmark).
// gatehouse never cancels threads. Same errno contract as the wrappers.
inline ssize_t raw_sendmsg(int fd, const msghdr* msg, int flags) {
    return static_cast<ssize_t>(::syscall(SYS_sendmsg, fd, msg, flags));
}
// One buffer: send(2), which takes it as it is (sendmsg first copies the msghdr and the iovec
// array in from user space).
inline ssize_t raw_send(int fd, const void* data, size_t size, int flags) {
    return static_cast<ssize_t>(::syscall(SYS_sendto, fd, data, size, flags, nullptr, 0));
}
inline ssize_t raw_recv(int fd, void* data, size_t size, int flags) {
    return static_cast<ssize_t>(::syscall(SYS_recvfrom, fd, data, size, flags, nullptr, nullptr));
}

class Transport {
public:
    using executor_type = boost::asio::ip::tcp::socket::executor_type;
    using tls_stream = boost::asio::ssl::stream<boost::asio::ip::tcp::socket&>;

    explicit Transport(boost::asio::ip::tcp::socket socket) : socket_(std::move(socket)) {}
    explicit Transport(boost::asio::io_context& io) : socket_(io) {}

    executor_type get_executor() { return socket_.get_executor(); }
    boost::asio::ip::tcp::socket& socket() { return socket_; }
    bool tls() const { return tls_ != nullptr; }
    tls_stream& tls_stream_ref() { return *tls_; }
    // Starts TLS on the connected socket (the handshake is the caller's next step).
    void enable_tls(boost::asio::ssl::context& context) {
        tls_ = std::make_unique<tls_stream>(socket_, context);
    }
    SSL* ssl() { return tls_ ? tls_->native_handle() : nullptr; }

    template <class Buffers, class Handler>
    void async_read_some(const Buffers& buffers, Handler&& handler) {
        if (tls_)
            tls_->async_read_some(buffers, std::forward<Handler>(handler));
        else
            socket_.async_read_some(buffers, std::forward<Handler>(handler));
    }

    // Reads once bytes come, without first trying a recv that can only say EAGAIN: for a read
    // whose bytes can only come in answer to what this same call chain has just written (the
    // response to the request just sent). See ReadinessSocket. TLS reads as async_read_some.
    template <class Handler>
    void async_read_answer(boost::asio::mutable_buffer buffer, Handler&& handler) {
        if (tls_)
            return tls_->async_read_some(buffer, std::forward<Handler>(handler));
        socket_.set_drained();
        socket_.async_read_some(buffer, std::forward<Handler>(handler));
    }

    // Whether a connection that sat idle in the pool can carry a request: the server has not
    // closed it (its keep-alive timer, a restart) and sent nothing unasked for (some servers
    // send a 408 before closing). Plain TCP that has taken no readiness edge since it was marked
    // drained answers without a syscall -- the usual case, on the request path -- unless
    // `certain` asks for a look at the socket itself (one poll(2)): for a request that could
    // not be sent again if the connection failed. TLS: a readable socket may hold a late
    // session ticket, so only a hang-up counts.
    bool idle_intact(bool certain) {
        if (!certain && !tls_ && !socket_.maybe_readable())
            return true;
        pollfd p{socket_.native_handle(), POLLIN | POLLRDHUP, 0};
        if (::poll(&p, 1, 0) < 0 || (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
            return false;
        if (p.revents & POLLIN)
            return tls_ != nullptr;
        if (!tls_)
            socket_.set_drained(); // nothing there now: the next arrival makes a new edge
        return true;
    }

    // True when the peer has closed its side (FIN or reset): one poll, nothing read, the
    // reactor's state untouched. For a client whose request waits on a slow upstream.
    bool peer_hung_up() {
        pollfd p{socket_.native_handle(), POLLRDHUP, 0};
        return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
    }

    // Plain TCP, when the reactor has seen bytes come since the socket was last drained: one
    // recv now. Returns the bytes read; 0 with no error when there were none after all. Either
    // way, a read that leaves nothing behind marks the socket drained, in this call chain, so the
    // reactor's next read waits for the next edge instead of trying a recv that says EAGAIN.
    // TLS, or nothing come: returns 0 and reads nothing.
    size_t try_read(boost::asio::mutable_buffer buffer, boost::system::error_code& ec) {
        ec = {};
        if (tls_ || !socket_.maybe_readable())
            return 0;
        ssize_t n;
        do
            n = raw_recv(socket_.native_handle(), buffer.data(), buffer.size(), MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n == 0) {
            ec = boost::asio::error::eof;
            return 0;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                socket_.set_drained();
            else
                ec = boost::system::error_code(errno, boost::system::system_category());
            return 0;
        }
        if (static_cast<size_t>(n) < buffer.size())
            socket_.set_drained();
        return static_cast<size_t>(n);
    }

    // Nothing is left to read now (a response just completed, taken by a read that left nothing
    // behind): from here on, a readiness edge means new bytes (see ReadinessSocket).
    void mark_drained() {
        if (!tls_)
            socket_.set_drained();
    }

    // Plain TCP with nothing come since the socket was last drained: a read now would wait.
    bool drained() { return !tls_ && !socket_.maybe_readable(); }

    // Reads that complete from the reactor with fewer bytes than asked drained the socket; the
    // handler says so right away. Only where no other operation on this socket (a write) can
    // complete in the same reactor turn: then the reactor runs this read's handler directly
    // after its recv, and no edge can have been taken in between. TLS: async_read_some.
    template <class Handler>
    void async_read_draining(boost::asio::mutable_buffer buffer, Handler&& handler) {
        if (tls_)
            return tls_->async_read_some(buffer, std::forward<Handler>(handler));
        socket_.async_read_some(
            buffer, [this, size = buffer.size(), handler = std::forward<Handler>(handler)](
                        const boost::system::error_code& ec, size_t n) mutable {
                if (!ec && n < size)
                    socket_.set_drained();
                handler(ec, n);
            });
    }

    template <class Buffers, class Handler>
    void async_write_some(const Buffers& buffers, Handler&& handler) {
        if (tls_)
            tls_->async_write_some(buffers, std::forward<Handler>(handler));
        else
            socket_.async_write_some(buffers, std::forward<Handler>(handler));
    }

    // Plain TCP: writes what the socket takes right now (one send or sendmsg, never waiting) and
    // moves `buffers` past it; returns the bytes written. The caller completes inline when that was
    // everything, and hands the rest to async_write otherwise -- so a write that fits costs no
    // trip through the event loop. TLS: writes nothing (its records need the stream).
    size_t try_write(std::span<boost::asio::const_buffer> buffers, boost::system::error_code& ec) {
        ec = {};
        if (tls_)
            return 0;
        constexpr size_t max_iov = 8;
        iovec iov[max_iov];
        size_t count = 0;
        for (const auto& b : buffers)
            if (b.size() && count < max_iov)
                iov[count++] = {const_cast<void*>(b.data()), b.size()};
        if (count == 0)
            return 0;
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = count;
        constexpr int flags = MSG_NOSIGNAL | MSG_DONTWAIT;
        int fd = socket_.native_handle();
        ssize_t n;
        do
            n = count == 1 ? raw_send(fd, iov[0].iov_base, iov[0].iov_len, flags)
                           : raw_sendmsg(fd, &msg, flags);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                ec = boost::system::error_code(errno, boost::system::system_category());
            return 0;
        }
        size_t left = static_cast<size_t>(n);
        for (auto& b : buffers) {
            size_t take = std::min(left, b.size());
            b += take;
            left -= take;
        }
        return static_cast<size_t>(n);
    }

private:
    ReadinessSocket socket_;
    std::unique_ptr<tls_stream> tls_; // on the heap: most connections are plain TCP
};

} // namespace gatehouse::net

// A byte stream that is either plain TCP or TLS over it, with one interface, so connections and
// Asio's composed operations (async_write) do not care which. Satisfies AsyncReadStream and
// AsyncWriteStream.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>

#include <memory>
#include <utility>

namespace gatehouse::net {

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

    template <class Buffers, class Handler>
    void async_write_some(const Buffers& buffers, Handler&& handler) {
        if (tls_)
            tls_->async_write_some(buffers, std::forward<Handler>(handler));
        else
            socket_.async_write_some(buffers, std::forward<Handler>(handler));
    }

private:
    boost::asio::ip::tcp::socket socket_;
    std::unique_ptr<tls_stream> tls_; // on the heap: most connections are plain TCP
};

} // namespace gatehouse::net

// Upgraded connections (WebSocket): after a 101, bytes flow both ways unparsed until either side
// closes or the tunnel is idle for timeouts.tunnel. The attempt stays in flight (least_conn sees
// it) until the tunnel ends.
#include "log.hpp"
#include "net/client_connection.hpp"

#include <boost/asio/write.hpp>

namespace gatehouse::net {

namespace asio = boost::asio;
using boost::system::error_code;

void ClientConnection::start_tunnel() {
    log::debug("{} {}: upgraded, tunnel to {}", request_.method, stream_.path, stream_.peer_address);
    keep_alive_ = false;
    arm_tunnel_timeout();
    // Bytes that arrived with the heads (a client's first frames, a server's greeting) go first.
    if (!in_.empty())
        tunnel_write(true);
    else
        tunnel_read(true);
    if (!upstream_->buffer.empty())
        tunnel_write(false);
    else
        tunnel_read(false);
}

void ClientConnection::arm_tunnel_timeout() {
    timeout_ = Timeout::tunnel;
    watchdog_.arm(config_->timeouts.tunnel, *this);
}

// from_client: read the client, write the upstream; otherwise the reverse.
void ClientConnection::tunnel_read(bool from_client) {
    Buffer& buffer = from_client ? in_ : upstream_->buffer;
    buffer.compact();
    auto handler = [self = shared_from_this(), from_client](const error_code& ec, size_t n) {
        self->on_tunnel_read(from_client, ec, n);
    };
    if (from_client)
        transport_.async_read_some(asio::buffer(buffer.space(), buffer.space_size()), handler);
    else
        upstream_->transport.async_read_some(asio::buffer(buffer.space(), buffer.space_size()),
                                             handler);
}

void ClientConnection::on_tunnel_read(bool from_client, const error_code& ec, size_t n) {
    if (closing_ || !upstream_)
        return;
    if (ec)
        return end_tunnel(from_client ? "client closed" : "upstream closed");
    arm_tunnel_timeout();
    (from_client ? in_ : upstream_->buffer).commit(n);
    tunnel_write(from_client);
}

void ClientConnection::tunnel_write(bool from_client) {
    Buffer& buffer = from_client ? in_ : upstream_->buffer;
    auto handler = [self = shared_from_this(), from_client](const error_code& ec, size_t n) {
        if (self->closing_ || !self->upstream_)
            return;
        if (ec)
            return self->end_tunnel(from_client ? "upstream write failed" : "client write failed");
        (from_client ? self->timing_.bytes_in : self->timing_.bytes_out) += n;
        (from_client ? self->in_ : self->upstream_->buffer).consume(n);
        self->tunnel_read(from_client);
    };
    auto data = asio::const_buffer(buffer.data(), buffer.size());
    if (from_client)
        asio::async_write(upstream_->transport, data, handler);
    else
        asio::async_write(transport_, data, handler);
}

void ClientConnection::end_tunnel(const char* why) {
    log::debug("{} {}: tunnel ended: {}", request_.method, stream_.path, why);
    request_body_done_ = true; // nothing to drain: the bytes were the tunnel's
    in_.consume(in_.size());
    close();
}

} // namespace gatehouse::net

#include "net/listener.hpp"

#include "log.hpp"
#include "net/client_connection.hpp"

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/socket_base.hpp>

#include <sys/socket.h>

namespace gatehouse::net {

namespace asio = boost::asio;

namespace {

// Opens and binds `acceptor` the way every listening socket here is bound (SO_REUSEADDR, IPv6
// only on a v6 address), with SO_REUSEPORT when several sockets are to share the address.
void bind_acceptor(asio::ip::tcp::acceptor& acceptor, const asio::ip::tcp::endpoint& endpoint,
                   bool reuse_port, boost::system::error_code& ec) {
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) // a socket in TIME_WAIT is no listener
        acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec && reuse_port) {
        int one = 1;
        if (::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one))
            ec.assign(errno, boost::system::system_category());
    }
    if (!ec && endpoint.address().is_v6())
        acceptor.set_option(asio::ip::v6_only(true), ec);
    if (!ec)
        acceptor.bind(endpoint, ec);
}

} // namespace

bool address_free(const asio::ip::tcp::endpoint& endpoint, std::string& error) {
    if (endpoint.port() == 0)
        return true;
    asio::io_context io;
    asio::ip::tcp::acceptor probe(io);
    boost::system::error_code ec;
    bind_acceptor(probe, endpoint, false, ec);
    if (ec == asio::error::address_in_use) {
        error = "address already in use (another process listens there)";
        return false;
    }
    if (ec) {
        error = ec.message();
        return false;
    }
    return true;
}

Listener::Listener(Worker& worker, GenerationSource generation, std::string key)
    : worker_(worker), generation_(std::move(generation)), key_(std::move(key)), acceptor_(worker.io()),
      backoff_(worker.io()) {}

bool Listener::open(const asio::ip::tcp::endpoint& endpoint, std::string& error) {
    boost::system::error_code ec;
    bind_acceptor(acceptor_, endpoint, true, ec);
    if (!ec)
        acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (!ec)
        acceptor_.non_blocking(true, ec); // the burst's extra accepts must not wait
    if (ec) {
        error = ec.message();
        return false;
    }
    return true;
}

uint16_t Listener::port() const {
    boost::system::error_code ec;
    return acceptor_.local_endpoint(ec).port();
}

void Listener::start() { accept(); }

void Listener::stop() {
    boost::system::error_code ec;
    backoff_.cancel();
    acceptor_.close(ec);
}

void Listener::accept() {
    acceptor_.async_accept([self = shared_from_this()](const boost::system::error_code& ec,
                                                       asio::ip::tcp::socket socket) {
        if (ec == asio::error::operation_aborted || !self->acceptor_.is_open())
            return;
        if (ec) {
            // EMFILE and friends: pause briefly instead of spinning, then keep accepting.
            log::warn("accept failed: {}", ec.message());
            self->backoff_.expires_after(std::chrono::milliseconds(100));
            self->backoff_.async_wait([self](const boost::system::error_code& wait_ec) {
                if (!wait_ec && self->acceptor_.is_open())
                    self->accept();
            });
            return;
        }
        self->serve(std::move(socket));
        // Take what else is waiting now, up to a burst (HAProxy's maxaccept, nginx's
        // multi_accept): a worker busy for milliseconds per request (a WAF's rules) would
        // otherwise leave new connections in the queue for one loop turn each.
        for (int i = 1; i < kAcceptBurst; ++i) {
            asio::ip::tcp::socket next(self->worker_.io());
            boost::system::error_code next_ec;
            self->acceptor_.accept(next, next_ec);
            if (next_ec)
                break; // would_block, or an error the async accept will see again
            self->serve(std::move(next));
        }
        self->accept();
    });
}

void Listener::serve(asio::ip::tcp::socket socket) {
    auto generation = generation_();
    std::shared_ptr<const tls::CertStore> store;
    if (auto tls = generation->listener_tls(key_))
        store = tls->store();
    std::make_shared<ClientConnection>(worker_, std::move(generation), std::move(socket),
                                       std::move(store))
        ->start();
}

} // namespace gatehouse::net

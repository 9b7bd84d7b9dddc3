// Accepting connections: one acceptor per worker on the same address with SO_REUSEPORT, so the
// kernel spreads new connections across workers and a connection never changes thread.
#pragma once

#include "config/config.hpp"
#include "net/worker.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <memory>
#include <string>

namespace gatehouse {
class Generation;
}

namespace gatehouse::net {

// SO_REUSEPORT lets any process of the same user join a listening address, and take a share of
// its connections. Before this process binds an address it checks that nobody listens there
// yet, with a socket bound without SO_REUSEPORT (which a listener of any kind refuses): false
// with the reason when the address is taken. Port 0 is always free.
bool address_free(const boost::asio::ip::tcp::endpoint& endpoint, std::string& error);

class Listener : public std::enable_shared_from_this<Listener> {
public:
    using GenerationSource = std::function<std::shared_ptr<const Generation>()>;

    // `key` names the listener in the config (ListenerConfig::key()), for its TLS state.
    Listener(Worker& worker, GenerationSource generation, std::string key);
    // Binds; with port 0 the first acceptor picks the port and the others reuse it.
    bool open(const boost::asio::ip::tcp::endpoint& endpoint, std::string& error);
    uint16_t port() const;
    Worker& worker() { return worker_; }
    void start();
    void stop();

private:
    void accept();
    void serve(boost::asio::ip::tcp::socket socket);
    static constexpr int kAcceptBurst = 16; // connections taken per wake-up at most

    Worker& worker_;
    GenerationSource generation_;
    std::string key_;
    boost::asio::ip::tcp::acceptor acceptor_;
    boost::asio::steady_timer backoff_;
};

} // namespace gatehouse::net

// Client-side TLS for one upstream pool: verification against the system store or a CA file
// (on unless turned off explicitly), SNI and host-name checks, an optional client certificate.
#pragma once

#include "config/config.hpp"

#include <boost/asio/ssl/context.hpp>

#include <memory>
#include <string>

namespace gatehouse::tls {

class ClientContext {
public:
    static std::shared_ptr<ClientContext> build(const config::UpstreamTlsConfig& config,
                                                std::string& error);
    boost::asio::ssl::context& context() { return *context_; }
    // Sets SNI and the expected peer name on a new connection; `host` is the server's host.
    bool prepare(SSL* ssl, const std::string& host) const;

private:
    config::UpstreamTlsConfig config_;
    std::unique_ptr<boost::asio::ssl::context> context_;
};

} // namespace gatehouse::tls

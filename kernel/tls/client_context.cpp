#include "tls/client_context.hpp"

#include "tls/server_context.hpp"

#include <boost/asio/ip/address.hpp>
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

namespace gatehouse::tls {

std::shared_ptr<ClientContext> ClientContext::build(const config::UpstreamTlsConfig& config,
                                                    std::string& error) {
    ERR_clear_error();
    auto out = std::make_shared<ClientContext>();
    out->config_ = config;
    SSL_CTX* raw = SSL_CTX_new(TLS_client_method());
    if (!raw) {
        error = openssl_errors();
        return nullptr;
    }
    out->context_ = std::make_unique<boost::asio::ssl::context>(raw);
    SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION);
    SSL_CTX_set_options(raw, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (config.verify) {
        SSL_CTX_set_verify(raw, SSL_VERIFY_PEER, nullptr);
        int ok = config.ca.empty() ? SSL_CTX_set_default_verify_paths(raw)
                                   : SSL_CTX_load_verify_locations(raw, config.ca.c_str(), nullptr);
        if (ok != 1) {
            error = fmt::format("cannot load CA {}: {}", config.ca.empty() ? "(system store)" : config.ca,
                                openssl_errors());
            return nullptr;
        }
    } else {
        SSL_CTX_set_verify(raw, SSL_VERIFY_NONE, nullptr);
    }
    if (!config.cert.empty()) {
        if (SSL_CTX_use_certificate_chain_file(raw, config.cert.c_str()) != 1) {
            error = fmt::format("cannot load client certificate {}: {}", config.cert, openssl_errors());
            return nullptr;
        }
        if (SSL_CTX_use_PrivateKey_file(raw, config.key.c_str(), SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(raw) != 1) {
            error = fmt::format("cannot use client key {}: {}", config.key, openssl_errors());
            return nullptr;
        }
    }
    return out;
}

bool ClientContext::prepare(SSL* ssl, const std::string& host) const {
    const std::string& name = config_.server_name.empty() ? host : config_.server_name;
    boost::system::error_code ec;
    auto address = boost::asio::ip::make_address(name, ec);
    // RFC 6066 §3: no SNI for IP literals; verify the IP address instead of a DNS name.
    if (ec && SSL_set_tlsext_host_name(ssl, name.c_str()) != 1)
        return false;
    if (!config_.verify)
        return true;
    if (!ec)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) == 1;
    return SSL_set1_host(ssl, name.c_str()) == 1;
}

} // namespace gatehouse::tls

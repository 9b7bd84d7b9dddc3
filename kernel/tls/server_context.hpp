// Server-side TLS for one listener: one OpenSSL context per certificate, SNI choosing among them
// (exact name, then wildcard, then the first certificate), ALPN, a session cache and ticket keys
// shared by every worker. A CertStore is immutable; TlsListener swaps in a new one when the
// files change, and connections keep the store they started their handshake with.
#pragma once

#include "config/config.hpp"

#include <boost/asio/ssl/context.hpp>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace gatehouse::tls {

class CertStore {
public:
    // Loads and checks every certificate; on failure `error` names the file and OpenSSL's reason.
    static std::shared_ptr<CertStore> build(const config::TlsListenerConfig& config,
                                            std::string& error);
    boost::asio::ssl::context& default_context() const { return *entries_.front().context; }
    SSL_CTX* select(std::string_view server_name) const;

private:
    struct Entry {
        std::unique_ptr<boost::asio::ssl::context> context;
        std::vector<std::string> names; // lower-case; "*.example.com" for wildcards
    };
    static int on_server_name(SSL* ssl, int* alert, void* arg);
    std::vector<Entry> entries_;
};

class TlsListener {
public:
    static std::shared_ptr<TlsListener> build(const config::TlsListenerConfig& config,
                                              std::string& error);
    std::shared_ptr<const CertStore> store() const { return store_.load(); }
    const config::TlsListenerConfig& config() const { return config_; }
    // Re-reads the certificates if a file changed; keeps the old store on error.
    bool reload_if_changed(std::string& error);

private:
    std::vector<std::filesystem::file_time_type> stamps() const;
    config::TlsListenerConfig config_;
    std::atomic<std::shared_ptr<const CertStore>> store_;
    std::vector<std::filesystem::file_time_type> stamps_;
};

// "error:0A00018F:SSL routines::ee key too small" style text for the last OpenSSL errors.
std::string openssl_errors();

} // namespace gatehouse::tls

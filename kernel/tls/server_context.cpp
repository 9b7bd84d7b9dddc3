#include "tls/server_context.hpp"

#include "tls/ticket_keys.hpp"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>

namespace gatehouse::tls {

namespace {

// Mozilla "intermediate" TLS 1.2 suites: forward secrecy and AEAD only.
constexpr const char* default_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// The same value for every context: sessions from the session cache resume whichever
// certificate context SNI picked.
constexpr unsigned char session_id_context[] = "gatehouse";

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

std::vector<std::string> certificate_names(SSL_CTX* ctx) {
    std::vector<std::string> names;
    X509* cert = SSL_CTX_get0_certificate(ctx);
    if (!cert)
        return names;
    auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    if (sans) {
        for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
            const GENERAL_NAME* name = sk_GENERAL_NAME_value(sans, i);
            if (name->type != GEN_DNS)
                continue;
            const ASN1_IA5STRING* dns = name->d.dNSName;
            names.push_back(lower(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                                              static_cast<size_t>(ASN1_STRING_length(dns)))));
        }
        GENERAL_NAMES_free(sans);
    }
    if (names.empty()) {
        char cn[256] = {};
        if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) > 0)
            names.push_back(lower(cn));
    }
    return names;
}

int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void*) {
    // Only http/1.1 is offered (no h2 until HTTP/2 exists).
    static constexpr unsigned char http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    unsigned char* selected = nullptr;
    if (SSL_select_next_proto(&selected, outlen, http11, sizeof http11, in, inlen) ==
        OPENSSL_NPN_NEGOTIATED) {
        *out = selected;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

std::unique_ptr<boost::asio::ssl::context> make_context(const config::TlsListenerConfig& config,
                                                        const config::TlsCertificate& cert,
                                                        std::string& error) {
    SSL_CTX* raw = SSL_CTX_new(TLS_server_method());
    if (!raw) {
        error = openssl_errors();
        return nullptr;
    }
    auto ctx = std::make_unique<boost::asio::ssl::context>(raw);
    SSL_CTX_set_min_proto_version(raw, config.tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(raw, config.tls13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(raw, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(raw, SSL_MODE_RELEASE_BUFFERS);
    std::string ciphers = config.ciphers.empty() ? default_ciphers : config.ciphers;
    if (SSL_CTX_set_cipher_list(raw, ciphers.c_str()) != 1) {
        error = fmt::format("invalid ciphers '{}': {}", ciphers, openssl_errors());
        return nullptr;
    }
    if (SSL_CTX_use_certificate_chain_file(raw, cert.cert.c_str()) != 1) {
        error = fmt::format("cannot load certificate {}: {}", cert.cert, openssl_errors());
        return nullptr;
    }
    if (SSL_CTX_use_PrivateKey_file(raw, cert.key.c_str(), SSL_FILETYPE_PEM) != 1) {
        error = fmt::format("cannot load key {}: {}", cert.key, openssl_errors());
        return nullptr;
    }
    if (SSL_CTX_check_private_key(raw) != 1) {
        error = fmt::format("key {} does not match certificate {}: {}", cert.key, cert.cert,
                            openssl_errors());
        return nullptr;
    }
    SSL_CTX_set_session_id_context(raw, session_id_context, sizeof session_id_context - 1);
    SSL_CTX_set_session_cache_mode(raw, config.session_cache ? SSL_SESS_CACHE_SERVER : SSL_SESS_CACHE_OFF);
    SSL_CTX_sess_set_cache_size(raw, config.session_cache);
    if (config.session_tickets)
        TicketKeys::install(raw);
    else
        SSL_CTX_set_options(raw, SSL_OP_NO_TICKET);
    SSL_CTX_set_alpn_select_cb(raw, select_alpn, nullptr);
    return ctx;
}

} // namespace

std::string openssl_errors() {
    std::string out;
    while (unsigned long code = ERR_get_error()) {
        char buffer[256];
        ERR_error_string_n(code, buffer, sizeof buffer);
        if (!out.empty())
            out += "; ";
        out += buffer;
    }
    return out.empty() ? "unknown OpenSSL error" : out;
}

std::shared_ptr<CertStore> CertStore::build(const config::TlsListenerConfig& config,
                                            std::string& error) {
    ERR_clear_error();
    auto store = std::make_shared<CertStore>();
    for (const auto& cert : config.certificates) {
        auto ctx = make_context(config, cert, error);
        if (!ctx)
            return nullptr;
        auto names = certificate_names(ctx->native_handle());
        store->entries_.push_back({std::move(ctx), std::move(names)});
    }
    // SNI runs on the default (first) context; it switches the connection to the chosen one.
    SSL_CTX* first = store->entries_.front().context->native_handle();
    SSL_CTX_set_tlsext_servername_callback(first, &CertStore::on_server_name);
    SSL_CTX_set_tlsext_servername_arg(first, store.get());
    return store;
}

SSL_CTX* CertStore::select(std::string_view server_name) const {
    std::string name = lower(std::string(server_name));
    for (const auto& e : entries_)
        for (const auto& n : e.names)
            if (n == name)
                return e.context->native_handle();
    size_t dot = name.find('.');
    if (dot != std::string::npos) {
        std::string wildcard = "*" + name.substr(dot);
        for (const auto& e : entries_)
            for (const auto& n : e.names)
                if (n == wildcard)
                    return e.context->native_handle();
    }
    return entries_.front().context->native_handle();
}

int CertStore::on_server_name(SSL* ssl, int*, void* arg) {
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name)
        return SSL_TLSEXT_ERR_NOACK;
    auto* store = static_cast<const CertStore*>(arg);
    SSL_CTX* chosen = store->select(name);
    if (chosen != SSL_get_SSL_CTX(ssl))
        SSL_set_SSL_CTX(ssl, chosen);
    return SSL_TLSEXT_ERR_OK;
}

std::shared_ptr<TlsListener> TlsListener::build(const config::TlsListenerConfig& config,
                                                std::string& error) {
    auto store = CertStore::build(config, error);
    if (!store)
        return nullptr;
    auto listener = std::make_shared<TlsListener>();
    listener->config_ = config;
    listener->store_.store(std::move(store));
    listener->stamps_ = listener->stamps();
    return listener;
}

std::vector<std::filesystem::file_time_type> TlsListener::stamps() const {
    std::vector<std::filesystem::file_time_type> out;
    for (const auto& c : config_.certificates) {
        std::error_code ec;
        out.push_back(std::filesystem::last_write_time(c.cert, ec));
        out.push_back(std::filesystem::last_write_time(c.key, ec));
    }
    return out;
}

bool TlsListener::reload_if_changed(std::string& error) {
    auto now = stamps();
    if (now == stamps_)
        return true;
    stamps_ = std::move(now);
    auto next = CertStore::build(config_, error);
    if (!next)
        return false; // keep serving the old certificates; retry when the files change again
    store_.store(std::move(next));
    return true;
}

} // namespace gatehouse::tls

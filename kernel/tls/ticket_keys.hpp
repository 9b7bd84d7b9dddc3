// Session ticket keys shared by every worker and every certificate context, rotated on a timer:
// new tickets use the newest key; the two before it still decrypt, so a rotation never forces a
// full handshake on a client holding a recent ticket.
#pragma once

#include <openssl/ssl.h>

#include <array>
#include <atomic>
#include <memory>
#include <vector>

namespace gatehouse::tls {

class TicketKeys {
public:
    static TicketKeys& instance();
    void rotate();
    // Installs the ticket callback on a context.
    static void install(SSL_CTX* ctx);

private:
    struct Key {
        std::array<unsigned char, 16> name;
        std::array<unsigned char, 32> aes;
        std::array<unsigned char, 32> hmac;
    };
    using Ring = std::vector<Key>; // newest first
    static int callback(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                        EVP_MAC_CTX* mac, int encrypt);
    TicketKeys();
    std::atomic<std::shared_ptr<const Ring>> ring_;
};

} // namespace gatehouse::tls

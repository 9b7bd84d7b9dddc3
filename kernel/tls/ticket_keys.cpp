#include "tls/ticket_keys.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstring>

namespace gatehouse::tls {

TicketKeys& TicketKeys::instance() {
    static TicketKeys keys;
    return keys;
}

TicketKeys::TicketKeys() { rotate(); }

void TicketKeys::rotate() {
    Key key;
    RAND_bytes(key.name.data(), static_cast<int>(key.name.size()));
    RAND_bytes(key.aes.data(), static_cast<int>(key.aes.size()));
    RAND_bytes(key.hmac.data(), static_cast<int>(key.hmac.size()));
    auto next = std::make_shared<Ring>();
    next->push_back(key);
    if (auto old = ring_.load())
        for (size_t i = 0; i < old->size() && next->size() < 3; ++i)
            next->push_back((*old)[i]);
    ring_.store(std::move(next));
}

void TicketKeys::install(SSL_CTX* ctx) { SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, &TicketKeys::callback); }

// OpenSSL's ticket callback contract: on encrypt, fill name/iv and set up cipher and MAC, return
// 1; on decrypt, find the key by name: 1 = ok, 2 = ok but re-issue with the current key,
// 0 = unknown key (full handshake), -1 = error.
int TicketKeys::callback(SSL*, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                         EVP_MAC_CTX* mac, int encrypt) {
    auto ring = instance().ring_.load();
    const Key* key = nullptr;
    bool newest = false;
    if (encrypt) {
        key = &ring->front();
        newest = true;
        std::memcpy(name, key->name.data(), key->name.size());
        if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1)
            return -1;
    } else {
        for (size_t i = 0; i < ring->size(); ++i)
            if (std::memcmp(name, (*ring)[i].name.data(), 16) == 0) {
                key = &(*ring)[i];
                newest = i == 0;
                break;
            }
        if (!key)
            return 0;
    }
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(key->hmac.data()),
                                          key->hmac.size()),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
        OSSL_PARAM_construct_end()};
    if (EVP_MAC_CTX_set_params(mac, params) != 1)
        return -1;
    int ok = encrypt ? EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key->aes.data(), iv)
                     : EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key->aes.data(), iv);
    if (ok != 1)
        return -1;
    return encrypt || newest ? 1 : 2;
}

} // namespace gatehouse::tls

// sso: base64url, random tokens, hashing and sealing through OpenSSL (see crypto.hpp).
#include "crypto.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include <memory>
#include <stdexcept>

namespace sso {

namespace {

struct CipherCtxFree {
    void operator()(EVP_CIPHER_CTX *c) const { EVP_CIPHER_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

constexpr size_t kNonce = 12, kTag = 16, kKey = 32;

} // namespace

std::string b64_encode(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(out.data()),
                                  reinterpret_cast<const unsigned char *>(bytes.data()),
                                  static_cast<int>(bytes.size()));
    out.resize(static_cast<size_t>(n));
    return out;
}

std::string b64url_encode(std::string_view bytes) {
    std::string out = b64_encode(bytes);
    while (!out.empty() && out.back() == '=')
        out.pop_back();
    for (char &c : out)
        c = c == '+' ? '-' : c == '/' ? '_' : c;
    return out;
}

std::optional<std::string> b64url_decode(std::string_view text) {
    if (text.size() % 4 == 1)
        return std::nullopt;
    std::string std64;
    std64.reserve(text.size() + 3);
    for (char c : text) {
        if (c == '+' || c == '/' || c == '=')
            return std::nullopt; // not the URL alphabet, or padding
        std64 += c == '-' ? '+' : c == '_' ? '/' : c;
    }
    const size_t pad = (4 - std64.size() % 4) % 4;
    std64.append(pad, '=');
    std::string out(std64.size() / 4 * 3, '\0');
    // EVP_DecodeBlock refuses characters outside the alphabet (-1) and counts padding as zeros.
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char *>(out.data()),
                                  reinterpret_cast<const unsigned char *>(std64.data()),
                                  static_cast<int>(std64.size()));
    if (n < 0 || static_cast<size_t>(n) < pad)
        return std::nullopt;
    out.resize(static_cast<size_t>(n) - pad);
    // Canonical only: the unused bits of the last character must be zero.
    if (b64url_encode(out) != text)
        return std::nullopt;
    return out;
}

std::string random_bytes(size_t n) {
    std::string out(n, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char *>(out.data()), static_cast<int>(n)) != 1)
        throw std::runtime_error("RAND_bytes failed");
    return out;
}

std::string sha256(std::string_view data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1)
        throw std::runtime_error("SHA-256 failed");
    return std::string(reinterpret_cast<char *>(md), len);
}

bool equal_ct(std::string_view a, std::string_view b) {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string hkdf_sha256(std::string_view secret, std::string_view salt, std::string_view info,
                        size_t length) {
    std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
        EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr), &EVP_PKEY_CTX_free);
    std::string out(length, '\0');
    size_t out_len = length;
    auto u = [](std::string_view s) { return reinterpret_cast<const unsigned char *>(s.data()); };
    if (!ctx || EVP_PKEY_derive_init(ctx.get()) <= 0 ||
        EVP_PKEY_CTX_set_hkdf_md(ctx.get(), EVP_sha256()) <= 0 ||
        EVP_PKEY_CTX_set1_hkdf_salt(ctx.get(), u(salt), static_cast<int>(salt.size())) <= 0 ||
        EVP_PKEY_CTX_set1_hkdf_key(ctx.get(), u(secret), static_cast<int>(secret.size())) <= 0 ||
        EVP_PKEY_CTX_add1_hkdf_info(ctx.get(), u(info), static_cast<int>(info.size())) <= 0 ||
        EVP_PKEY_derive(ctx.get(), reinterpret_cast<unsigned char *>(out.data()), &out_len) <= 0 ||
        out_len != length)
        throw std::runtime_error("HKDF failed");
    return out;
}

Sealer::Sealer(const std::vector<std::string> &secrets, std::string_view purpose) {
    for (const std::string &s : secrets)
        keys_.push_back(hkdf_sha256(s, "gatehouse-sso", purpose, kKey));
}

std::string Sealer::seal(std::string_view plaintext, std::string_view aad) const {
    if (keys_.empty())
        throw std::runtime_error("no key to seal with");
    std::string out = random_bytes(kNonce);
    out.resize(kNonce + plaintext.size() + kTag);
    auto *buf = reinterpret_cast<unsigned char *>(out.data());
    CipherCtx ctx(EVP_CIPHER_CTX_new());
    int len = 0, fin = 0;
    if (!ctx ||
        EVP_EncryptInit_ex2(ctx.get(), EVP_aes_256_gcm(),
                            reinterpret_cast<const unsigned char *>(keys_.front().data()), buf,
                            nullptr) != 1 ||
        EVP_EncryptUpdate(ctx.get(), nullptr, &len,
                          reinterpret_cast<const unsigned char *>(aad.data()),
                          static_cast<int>(aad.size())) != 1 ||
        EVP_EncryptUpdate(ctx.get(), buf + kNonce, &len,
                          reinterpret_cast<const unsigned char *>(plaintext.data()),
                          static_cast<int>(plaintext.size())) != 1 ||
        EVP_EncryptFinal_ex(ctx.get(), buf + kNonce + len, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTag,
                            buf + kNonce + plaintext.size()) != 1)
        throw std::runtime_error("AES-256-GCM seal failed");
    return b64url_encode(out);
}

std::optional<std::string> Sealer::open(std::string_view sealed, std::string_view aad) const {
    std::optional<std::string> raw = b64url_decode(sealed);
    if (!raw || raw->size() < kNonce + kTag)
        return std::nullopt;
    const size_t n = raw->size() - kNonce - kTag;
    auto *buf = reinterpret_cast<unsigned char *>(raw->data());
    for (const std::string &key : keys_) {
        std::string out(n, '\0');
        CipherCtx ctx(EVP_CIPHER_CTX_new());
        int len = 0, fin = 0;
        if (ctx &&
            EVP_DecryptInit_ex2(ctx.get(), EVP_aes_256_gcm(),
                                reinterpret_cast<const unsigned char *>(key.data()), buf,
                                nullptr) == 1 &&
            EVP_DecryptUpdate(ctx.get(), nullptr, &len,
                              reinterpret_cast<const unsigned char *>(aad.data()),
                              static_cast<int>(aad.size())) == 1 &&
            EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char *>(out.data()), &len,
                              buf + kNonce, static_cast<int>(n)) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTag, buf + kNonce + n) == 1 &&
            EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char *>(out.data()) + len,
                                &fin) == 1)
            return out;
    }
    return std::nullopt;
}

} // namespace sso

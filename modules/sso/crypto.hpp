// sso: the cryptography the module needs, all through OpenSSL 3's EVP API: base64url, random
// tokens, SHA-256, and sealed (encrypted and authenticated) cookies.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sso {

// RFC 4648 §5 without padding (OpenSSL's base64, then the URL alphabet).
std::string b64url_encode(std::string_view bytes);
// Refuses padding, whitespace and characters outside the URL alphabet.
std::optional<std::string> b64url_decode(std::string_view text);
// Standard base64 with padding (HTTP Basic credentials).
std::string b64_encode(std::string_view bytes);

// `n` bytes from the OpenSSL CSPRNG; throws std::runtime_error if it fails.
std::string random_bytes(size_t n);
// A random URL-safe token of `n` bytes of entropy.
inline std::string random_token(size_t n = 24) { return b64url_encode(random_bytes(n)); }
std::string sha256(std::string_view data);
// Constant-time comparison.
bool equal_ct(std::string_view a, std::string_view b);

// AES-256-GCM with keys derived by HKDF-SHA256 from configured secrets and a purpose label
// (session cookies and login-state cookies get different keys from the same secrets). The first
// secret seals; every secret opens (rotation). A sealed value is base64url(nonce 12 | ciphertext
// | tag 16); `aad` binds it to its use (the cookie name), so a value moved to another cookie
// does not open.
class Sealer {
  public:
    Sealer() = default;
    Sealer(const std::vector<std::string> &secrets, std::string_view purpose);
    bool empty() const { return keys_.empty(); }
    std::string seal(std::string_view plaintext, std::string_view aad) const;
    // nullopt for anything that does not open under one of the keys.
    std::optional<std::string> open(std::string_view sealed, std::string_view aad) const;

  private:
    std::vector<std::string> keys_; // 32 bytes each
};

// HKDF-SHA256 (RFC 5869): `length` bytes.
std::string hkdf_sha256(std::string_view secret, std::string_view salt, std::string_view info,
                        size_t length);

} // namespace sso

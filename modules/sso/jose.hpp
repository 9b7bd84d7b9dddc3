// sso: JSON Web Keys and signed JSON Web Tokens (RFC 7515/7517/7518/7519, RFC 8037), verified
// with OpenSSL 3. Only asymmetric algorithms: RS*, PS*, ES* and EdDSA (Ed25519); `none` and the
// HMAC family are never accepted, and an algorithm is only tried with a key of its own type
// (so an HS256 token "signed" with an RSA public key, or an RS256 header on an EC key, fails).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

typedef struct evp_pkey_st EVP_PKEY;

namespace sso {

using json = nlohmann::json;

struct PkeyFree {
    void operator()(EVP_PKEY *p) const;
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

// One verification key from a JWKS.
struct Jwk {
    std::string kid; // may be empty
    std::string kty; // "RSA", "EC", "OKP"
    std::string crv; // EC / OKP curve
    std::string alg; // the key's `alg` when it names one ("" = any of its type)
    std::shared_ptr<EVP_PKEY> key;
};

// The signing keys of a JWKS document (keys with `use` other than "sig", with `key_ops` without
// "verify", private parts only, or unsupported types are skipped). `error` says why nothing
// usable was found.
std::vector<Jwk> parse_jwks(std::string_view document, std::string &error);

// True when `alg` is one this module verifies.
bool alg_supported(std::string_view alg);

// A compact JWS split and decoded; the signature is not checked yet.
struct Jws {
    json header, claims;
    std::string signing_input; // base64url(header) "." base64url(payload)
    std::string signature;     // raw bytes
    std::string alg, kid;
};
// nullopt with `why` for anything that is not a three-part compact JWS with JSON objects.
std::optional<Jws> parse_jws(std::string_view compact, std::string &why);

// Verifies the signature of `jws` with `key` (false when the algorithm does not fit the key).
bool verify_signature(const Jws &jws, const Jwk &key);

// Why a token was refused (the metric label and the log word).
enum class Reject {
    none,
    malformed,
    alg,        // not allowed, not supported, `none`, HMAC
    crit,       // a `crit` header (no extension is understood)
    unknown_kid,
    signature,
    iss,
    aud,
    azp,
    expired,
    not_yet_valid, // nbf in the future
    iat,           // issued in the future
    nonce,
    claims, // a claim of the wrong type, a required one missing
};
const char *reject_name(Reject r);

// What an ID token (OpenID Connect Core §3.1.3.7) or logout token must satisfy.
struct Expect {
    std::string issuer;
    std::string client_id;
    std::vector<std::string> algs; // allowed `alg` values
    int64_t now = 0;               // seconds since the epoch
    int64_t skew = 60;             // seconds of clock skew tolerated
    std::optional<std::string> nonce; // required and equal when set
    bool require_exp = true;
    bool check_azp = true; // an ID token's azp is us; an access token's is the client that asked
};

// The checks after the signature: iss, aud/azp, exp, nbf, iat, nonce.
Reject check_claims(const json &claims, const Expect &e);
// The header checks before choosing a key: alg allowed and supported, no `crit`.
Reject check_header(const Jws &jws, const Expect &e);

} // namespace sso

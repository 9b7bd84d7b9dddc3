// sso: JWK parsing and JWS verification with OpenSSL 3 (see jose.hpp).
#include "jose.hpp"

#include "crypto.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include <algorithm>

namespace sso {

void PkeyFree::operator()(EVP_PKEY *p) const { EVP_PKEY_free(p); }

namespace {

struct BnFree {
    void operator()(BIGNUM *b) const { BN_free(b); }
};
using Bn = std::unique_ptr<BIGNUM, BnFree>;

Bn bn(const std::string &bytes) {
    return Bn(BN_bin2bn(reinterpret_cast<const unsigned char *>(bytes.data()),
                        static_cast<int>(bytes.size()), nullptr));
}

std::optional<std::string> member_b64(const json &j, const char *name) {
    auto it = j.find(name);
    if (it == j.end() || !it->is_string())
        return std::nullopt;
    return b64url_decode(it->get_ref<const std::string &>());
}

// EVP_PKEY_fromdata with the parameters `build` pushes.
template <class F>
EVP_PKEY *from_params(const char *type, F &&build) {
    std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)> bld(OSSL_PARAM_BLD_new(),
                                                                       &OSSL_PARAM_BLD_free);
    if (!bld || !build(bld.get()))
        return nullptr;
    std::unique_ptr<OSSL_PARAM, decltype(&OSSL_PARAM_free)> params(
        OSSL_PARAM_BLD_to_param(bld.get()), &OSSL_PARAM_free);
    std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
        EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr), &EVP_PKEY_CTX_free);
    EVP_PKEY *key = nullptr;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0 ||
        EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) <= 0)
        return nullptr;
    return key;
}

size_t curve_bytes(std::string_view crv) {
    return crv == "P-256" ? 32 : crv == "P-384" ? 48 : crv == "P-521" ? 66 : 0;
}

const char *curve_group(std::string_view crv) {
    return crv == "P-256" ? "prime256v1" : crv == "P-384" ? "secp384r1" : "secp521r1";
}

EVP_PKEY *rsa_key(const json &j) {
    auto n = member_b64(j, "n"), e = member_b64(j, "e");
    if (!n || !e || n->size() < 256) // RSA keys under 2048 bits are refused
        return nullptr;
    Bn bn_n = bn(*n), bn_e = bn(*e);
    if (!bn_n || !bn_e)
        return nullptr;
    return from_params("RSA", [&](OSSL_PARAM_BLD *b) {
        return OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, bn_n.get()) == 1 &&
               OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, bn_e.get()) == 1;
    });
}

EVP_PKEY *ec_key(const json &j, const std::string &crv) {
    const size_t size = curve_bytes(crv);
    auto x = member_b64(j, "x"), y = member_b64(j, "y");
    if (size == 0 || !x || !y || x->size() != size || y->size() != size)
        return nullptr;
    std::string point = "\x04" + *x + *y; // uncompressed SEC1 point
    const char *group = curve_group(crv);
    return from_params("EC", [&](OSSL_PARAM_BLD *b) {
        return OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) == 1 &&
               OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                                point.size()) == 1;
    });
}

EVP_PKEY *okp_key(const json &j, const std::string &crv) {
    auto x = member_b64(j, "x");
    if (crv != "Ed25519" || !x || x->size() != 32)
        return nullptr;
    return EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                       reinterpret_cast<const unsigned char *>(x->data()),
                                       x->size());
}

std::string str_member(const json &j, const char *name) {
    auto it = j.find(name);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

const EVP_MD *digest_for(std::string_view alg) {
    const std::string_view bits = alg.size() >= 5 ? alg.substr(2) : std::string_view();
    return bits == "256" ? EVP_sha256() : bits == "384" ? EVP_sha384() : bits == "512" ? EVP_sha512()
                                                                                       : nullptr;
}

// JWS ECDSA signatures are r || s; OpenSSL verifies DER.
std::optional<std::string> ecdsa_der(std::string_view raw, size_t size) {
    if (raw.size() != 2 * size)
        return std::nullopt;
    std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> sig(ECDSA_SIG_new(), &ECDSA_SIG_free);
    BIGNUM *r = BN_bin2bn(reinterpret_cast<const unsigned char *>(raw.data()),
                          static_cast<int>(size), nullptr);
    BIGNUM *s = BN_bin2bn(reinterpret_cast<const unsigned char *>(raw.data()) + size,
                          static_cast<int>(size), nullptr);
    if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
        BN_free(r);
        BN_free(s);
        return std::nullopt;
    }
    unsigned char *der = nullptr;
    const int len = i2d_ECDSA_SIG(sig.get(), &der);
    if (len <= 0)
        return std::nullopt;
    std::string out(reinterpret_cast<char *>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
    return out;
}

} // namespace

bool alg_supported(std::string_view alg) {
    static const char *const algs[] = {"RS256", "RS384", "RS512", "PS256", "PS384",
                                       "PS512", "ES256", "ES384", "ES512", "EdDSA"};
    return std::find(std::begin(algs), std::end(algs), alg) != std::end(algs);
}

std::vector<Jwk> parse_jwks(std::string_view document, std::string &error) {
    std::vector<Jwk> keys;
    json doc = json::parse(document, nullptr, false);
    if (doc.is_discarded() || !doc.is_object() || !doc.contains("keys") || !doc["keys"].is_array()) {
        error = "not a JWKS document (a JSON object with a \"keys\" array)";
        return keys;
    }
    for (const json &j : doc["keys"]) {
        if (!j.is_object())
            continue;
        const std::string use = str_member(j, "use");
        if (!use.empty() && use != "sig")
            continue;
        if (auto ops = j.find("key_ops"); ops != j.end()) {
            if (!ops->is_array() || std::find(ops->begin(), ops->end(), "verify") == ops->end())
                continue;
        }
        Jwk k;
        k.kid = str_member(j, "kid");
        k.kty = str_member(j, "kty");
        k.crv = str_member(j, "crv");
        k.alg = str_member(j, "alg");
        EVP_PKEY *key = k.kty == "RSA" ? rsa_key(j)
                        : k.kty == "EC" ? ec_key(j, k.crv)
                        : k.kty == "OKP" ? okp_key(j, k.crv)
                                         : nullptr;
        if (key == nullptr)
            continue;
        k.key = std::shared_ptr<EVP_PKEY>(key, PkeyFree());
        keys.push_back(std::move(k));
    }
    if (keys.empty())
        error = "no usable signing key (RSA >= 2048 bits, EC P-256/384/521, Ed25519)";
    return keys;
}

std::optional<Jws> parse_jws(std::string_view compact, std::string &why) {
    const size_t a = compact.find('.');
    const size_t b = a == std::string_view::npos ? a : compact.find('.', a + 1);
    if (b == std::string_view::npos || compact.find('.', b + 1) != std::string_view::npos) {
        why = "not a compact JWS (three parts)";
        return std::nullopt;
    }
    auto header = b64url_decode(compact.substr(0, a));
    auto payload = b64url_decode(compact.substr(a + 1, b - a - 1));
    auto signature = b64url_decode(compact.substr(b + 1));
    if (!header || !payload || !signature) {
        why = "a part is not base64url";
        return std::nullopt;
    }
    Jws jws;
    jws.header = json::parse(*header, nullptr, false);
    jws.claims = json::parse(*payload, nullptr, false);
    if (!jws.header.is_object() || !jws.claims.is_object()) {
        why = "header or claims are not a JSON object";
        return std::nullopt;
    }
    jws.signing_input = std::string(compact.substr(0, b));
    jws.signature = std::move(*signature);
    jws.alg = str_member(jws.header, "alg");
    jws.kid = str_member(jws.header, "kid");
    return jws;
}

bool verify_signature(const Jws &jws, const Jwk &key) {
    const std::string &alg = jws.alg;
    if (!alg_supported(alg) || (!key.alg.empty() && key.alg != alg))
        return false;
    const std::string family = alg.substr(0, 2);
    const bool fits = ((family == "RS" || family == "PS") && key.kty == "RSA") ||
                      (family == "ES" && key.kty == "EC" &&
                       ((alg == "ES256" && key.crv == "P-256") ||
                        (alg == "ES384" && key.crv == "P-384") ||
                        (alg == "ES512" && key.crv == "P-521"))) ||
                      (alg == "EdDSA" && key.kty == "OKP");
    if (!fits)
        return false;
    std::string sig = jws.signature;
    if (family == "ES") {
        auto der = ecdsa_der(sig, curve_bytes(key.crv));
        if (!der)
            return false;
        sig = std::move(*der);
    }
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    EVP_PKEY_CTX *pctx = nullptr;
    const EVP_MD *md = alg == "EdDSA" ? nullptr : digest_for(alg);
    if (!ctx || EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, key.key.get()) != 1)
        return false;
    if (family == "PS" && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                           EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1))
        return false;
    return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char *>(sig.data()),
                            sig.size(),
                            reinterpret_cast<const unsigned char *>(jws.signing_input.data()),
                            jws.signing_input.size()) == 1;
}

const char *reject_name(Reject r) {
    switch (r) {
    case Reject::none: return "none";
    case Reject::malformed: return "malformed";
    case Reject::alg: return "alg";
    case Reject::crit: return "crit";
    case Reject::unknown_kid: return "unknown_kid";
    case Reject::signature: return "signature";
    case Reject::iss: return "iss";
    case Reject::aud: return "aud";
    case Reject::azp: return "azp";
    case Reject::expired: return "expired";
    case Reject::not_yet_valid: return "nbf";
    case Reject::iat: return "iat";
    case Reject::nonce: return "nonce";
    case Reject::claims: return "claims";
    }
    return "unknown";
}

Reject check_header(const Jws &jws, const Expect &e) {
    if (jws.header.contains("crit"))
        return Reject::crit;
    if (!alg_supported(jws.alg) ||
        std::find(e.algs.begin(), e.algs.end(), jws.alg) == e.algs.end())
        return Reject::alg;
    return Reject::none;
}

Reject check_claims(const json &c, const Expect &e) {
    auto it = c.find("iss");
    if (it == c.end() || !it->is_string() || *it != e.issuer)
        return Reject::iss;
    it = c.find("aud");
    if (it == c.end())
        return Reject::aud;
    std::vector<std::string> aud;
    if (it->is_string())
        aud.push_back(it->get<std::string>());
    else if (it->is_array()) {
        for (const json &a : *it) {
            if (!a.is_string())
                return Reject::claims;
            aud.push_back(a.get<std::string>());
        }
    } else
        return Reject::claims;
    if (std::find(aud.begin(), aud.end(), e.client_id) == aud.end())
        return Reject::aud;
    // Several audiences: `azp` must name this client (OpenID Connect Core §3.1.3.7, items 4-5).
    it = c.find("azp");
    if (e.check_azp && it != c.end() && (!it->is_string() || *it != e.client_id))
        return Reject::azp;
    if (e.check_azp && aud.size() > 1 && it == c.end())
        return Reject::azp;
    auto number = [&](const char *name) -> std::optional<int64_t> {
        auto n = c.find(name);
        if (n == c.end() || !n->is_number())
            return std::nullopt;
        return static_cast<int64_t>(n->get<double>());
    };
    auto exp = number("exp");
    if (c.contains("exp") && !exp)
        return Reject::claims;
    if (!exp && e.require_exp)
        return Reject::claims;
    if (exp && e.now > *exp + e.skew)
        return Reject::expired;
    if (c.contains("nbf")) {
        auto nbf = number("nbf");
        if (!nbf)
            return Reject::claims;
        if (*nbf > e.now + e.skew)
            return Reject::not_yet_valid;
    }
    auto iat = number("iat");
    if (!iat)
        return Reject::claims;
    if (*iat > e.now + e.skew)
        return Reject::iat;
    if (e.nonce) {
        it = c.find("nonce");
        if (it == c.end() || !it->is_string() || !equal_ct(it->get_ref<const std::string &>(), *e.nonce))
            return Reject::nonce;
    }
    if (auto sub = c.find("sub"); sub != c.end() && !sub->is_string())
        return Reject::claims;
    return Reject::none;
}

} // namespace sso

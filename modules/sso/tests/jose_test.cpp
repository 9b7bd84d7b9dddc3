// sso: JWKs and JWS signatures -- keys made and tokens signed here with OpenSSL's signing side
// (the module only verifies), and the claim checks of OpenID Connect Core §3.1.3.7.
#include "crypto.hpp"
#include "jose.hpp"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include <gtest/gtest.h>

using namespace sso;

namespace {

struct Key {
    std::shared_ptr<EVP_PKEY> pkey;
    json jwk;
};

std::string bn_param(EVP_PKEY *k, const char *name, size_t pad = 0) {
    BIGNUM *bn = nullptr;
    EXPECT_EQ(EVP_PKEY_get_bn_param(k, name, &bn), 1);
    std::string out(std::max<size_t>(pad, static_cast<size_t>(BN_num_bytes(bn))), '\0');
    BN_bn2binpad(bn, reinterpret_cast<unsigned char *>(out.data()), static_cast<int>(out.size()));
    BN_free(bn);
    return out;
}

Key make(const std::string &kind, const std::string &kid) {
    EVP_PKEY *k = nullptr;
    json jwk = {{"kid", kid}, {"use", "sig"}};
    if (kind == "RSA") {
        k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
        jwk["kty"] = "RSA";
        jwk["n"] = b64url_encode(bn_param(k, OSSL_PKEY_PARAM_RSA_N));
        jwk["e"] = b64url_encode(bn_param(k, OSSL_PKEY_PARAM_RSA_E));
    } else if (kind == "Ed25519") {
        k = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
        unsigned char pub[32];
        size_t len = sizeof pub;
        EVP_PKEY_get_raw_public_key(k, pub, &len);
        jwk["kty"] = "OKP";
        jwk["crv"] = "Ed25519";
        jwk["x"] = b64url_encode(std::string(reinterpret_cast<char *>(pub), len));
    } else {
        const char *group = kind == "P-256" ? "P-256" : kind == "P-384" ? "P-384" : "P-521";
        k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", group);
        const size_t size = kind == "P-256" ? 32 : kind == "P-384" ? 48 : 66;
        jwk["kty"] = "EC";
        jwk["crv"] = kind;
        jwk["x"] = b64url_encode(bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, size));
        jwk["y"] = b64url_encode(bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, size));
    }
    return {std::shared_ptr<EVP_PKEY>(k, EVP_PKEY_free), jwk};
}

std::string sign(const Key &key, const std::string &alg, const json &header_extra,
                 const json &claims) {
    json header = {{"alg", alg}, {"kid", key.jwk["kid"]}, {"typ", "JWT"}};
    if (header_extra.is_object())
        header.update(header_extra);
    const std::string input = b64url_encode(header.dump()) + "." + b64url_encode(claims.dump());
    const EVP_MD *md = alg == "EdDSA" ? nullptr
                       : alg.substr(2) == "256" ? EVP_sha256()
                       : alg.substr(2) == "384" ? EVP_sha384()
                                                : EVP_sha512();
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = nullptr;
    EXPECT_EQ(EVP_DigestSignInit(ctx, &pctx, md, nullptr, key.pkey.get()), 1);
    if (alg.rfind("PS", 0) == 0) {
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
    }
    size_t len = 0;
    EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char *>(input.data()),
                   input.size());
    std::string sig(len, '\0');
    EXPECT_EQ(EVP_DigestSign(ctx, reinterpret_cast<unsigned char *>(sig.data()), &len,
                             reinterpret_cast<const unsigned char *>(input.data()), input.size()),
              1);
    sig.resize(len);
    EVP_MD_CTX_free(ctx);
    if (alg.rfind("ES", 0) == 0) { // DER -> r || s
        const size_t size = alg == "ES256" ? 32 : alg == "ES384" ? 48 : 66;
        const unsigned char *p = reinterpret_cast<const unsigned char *>(sig.data());
        ECDSA_SIG *es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
        std::string raw(2 * size, '\0');
        BN_bn2binpad(ECDSA_SIG_get0_r(es), reinterpret_cast<unsigned char *>(raw.data()),
                     static_cast<int>(size));
        BN_bn2binpad(ECDSA_SIG_get0_s(es), reinterpret_cast<unsigned char *>(raw.data()) + size,
                     static_cast<int>(size));
        ECDSA_SIG_free(es);
        sig = raw;
    }
    return input + "." + b64url_encode(sig);
}

std::vector<Jwk> keyset(std::initializer_list<const Key *> keys) {
    json doc = {{"keys", json::array()}};
    for (const Key *k : keys)
        doc["keys"].push_back(k->jwk);
    std::string error;
    auto out = parse_jwks(doc.dump(), error);
    EXPECT_EQ(out.size(), keys.size()) << error;
    return out;
}

bool verifies(const std::string &token, const std::vector<Jwk> &keys) {
    std::string why;
    auto jws = parse_jws(token, why);
    if (!jws)
        return false;
    for (const Jwk &k : keys)
        if ((jws->kid.empty() || jws->kid == k.kid) && verify_signature(*jws, k))
            return true;
    return false;
}

const json claims = {{"iss", "https://idp"}, {"sub", "alice"}, {"aud", "app"},
                     {"exp", 2000},          {"iat", 1000},    {"nonce", "n1"}};

} // namespace

TEST(Jws, EveryAlgorithmVerifiesWithItsKeyAndFailsTampered) {
    const Key rsa = make("RSA", "r"), p256 = make("P-256", "e1"), p384 = make("P-384", "e2"),
              p521 = make("P-521", "e3"), ed = make("Ed25519", "d");
    auto keys = keyset({&rsa, &p256, &p384, &p521, &ed});
    const std::pair<const Key *, std::string> cases[] = {
        {&rsa, "RS256"}, {&rsa, "RS384"}, {&rsa, "RS512"},  {&rsa, "PS256"},
        {&rsa, "PS512"}, {&p256, "ES256"}, {&p384, "ES384"}, {&p521, "ES512"},
        {&ed, "EdDSA"}};
    for (const auto &[key, alg] : cases) {
        std::string token = sign(*key, alg, {}, claims);
        EXPECT_TRUE(verifies(token, keys)) << alg;
        std::string tampered = token;
        const size_t dot = tampered.find('.') + 3;
        tampered[dot] = tampered[dot] == 'A' ? 'B' : 'A';
        EXPECT_FALSE(verifies(tampered, keys)) << alg;
    }
}

TEST(Jws, AnAlgorithmIsOnlyTriedWithAKeyOfItsType) {
    const Key rsa = make("RSA", "k"), ec = make("P-256", "k");
    // An ES256 signature from the EC key, presented with the RSA key's kid and an RS256 header.
    std::string es = sign(ec, "ES256", {}, claims);
    auto rsa_only = keyset({&rsa});
    EXPECT_FALSE(verifies(es, rsa_only));
    // RS256 header over an EC key: never tried.
    std::string why;
    auto jws = parse_jws(sign(rsa, "RS256", {}, claims), why);
    auto ec_only = keyset({&ec});
    EXPECT_FALSE(verify_signature(*jws, ec_only[0]));
    // P-384 signature claiming ES256: the curve must match too.
    const Key p384 = make("P-384", "k");
    auto jws384 = parse_jws(sign(p384, "ES384", {{"alg", "ES256"}}, claims), why);
    EXPECT_FALSE(verify_signature(*jws384, keyset({&p384})[0]));
}

TEST(Jws, NoneAndHmacWithThePublicKeyAreRefused) {
    const Key rsa = make("RSA", "k");
    auto keys = keyset({&rsa});
    Expect e{"https://idp", "app", {"RS256", "ES256"}, 1500, 60, std::string("n1"), true};
    // alg none, empty signature.
    std::string none = b64url_encode(json{{"alg", "none"}}.dump()) + "." +
                       b64url_encode(claims.dump()) + ".";
    std::string why;
    auto jws = parse_jws(none, why);
    ASSERT_TRUE(jws);
    EXPECT_EQ(check_header(*jws, e), Reject::alg);
    EXPECT_FALSE(verify_signature(*jws, keys[0]));
    // HS256 keyed with the RSA public key's JWK text (the classic confusion).
    const std::string input = b64url_encode(json{{"alg", "HS256"}, {"kid", "k"}}.dump()) + "." +
                              b64url_encode(claims.dump());
    const std::string secret = rsa.jwk.dump();
    unsigned char mac[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char *>(input.data()), input.size(), mac, &len);
    auto hs = parse_jws(input + "." + b64url_encode(std::string(reinterpret_cast<char *>(mac), len)),
                        why);
    ASSERT_TRUE(hs);
    EXPECT_EQ(check_header(*hs, e), Reject::alg);
    EXPECT_FALSE(verify_signature(*hs, keys[0]));
    // An allowed algorithm not on this provider's list.
    auto ps = parse_jws(sign(rsa, "PS256", {}, claims), why);
    EXPECT_EQ(check_header(*ps, e), Reject::alg);
    // `crit`.
    auto crit = parse_jws(sign(rsa, "RS256", {{"crit", {"exp"}}}, claims), why);
    EXPECT_EQ(check_header(*crit, e), Reject::crit);
}

TEST(Jws, MalformedTokensAreRefused) {
    std::string why;
    EXPECT_FALSE(parse_jws("a.b", why));
    EXPECT_FALSE(parse_jws("a.b.c.d", why));
    EXPECT_FALSE(parse_jws("!!.e30.", why));
    EXPECT_FALSE(parse_jws(b64url_encode("[]") + "." + b64url_encode("{}") + ".", why));
}

TEST(Jwks, SkipsWhatCannotVerify) {
    const Key rsa = make("RSA", "ok");
    json enc = rsa.jwk;
    enc["use"] = "enc";
    json weak = {{"kty", "RSA"}, {"n", b64url_encode(std::string(128, '\x01'))}, {"e", "AQAB"}};
    json bad_curve = {{"kty", "EC"}, {"crv", "P-192"}, {"x", "AA"}, {"y", "AA"}};
    json doc = {{"keys", {rsa.jwk, enc, weak, bad_curve, "junk"}}};
    std::string error;
    auto keys = parse_jwks(doc.dump(), error);
    ASSERT_EQ(keys.size(), 1u);
    EXPECT_EQ(keys[0].kid, "ok");
    EXPECT_TRUE(parse_jwks("{}", error).empty());
    EXPECT_FALSE(error.empty());
}

TEST(Claims, OpenIdConnectCoreChecks) {
    Expect e{"https://idp", "app", {"RS256"}, 1500, 60, std::string("n1"), true};
    auto with = [&](json patch) {
        json c = claims;
        c.merge_patch(patch);
        return check_claims(c, e);
    };
    EXPECT_EQ(check_claims(claims, e), Reject::none);
    EXPECT_EQ(with({{"iss", "https://idp/"}}), Reject::iss);
    EXPECT_EQ(with({{"aud", "other"}}), Reject::aud);
    EXPECT_EQ(with({{"aud", {"other", "app"}}}), Reject::azp); // several audiences need azp
    EXPECT_EQ(with({{"aud", {"other", "app"}}, {"azp", "app"}}), Reject::none);
    EXPECT_EQ(with({{"azp", "other"}}), Reject::azp);
    EXPECT_EQ(with({{"exp", 1400}}), Reject::expired);
    EXPECT_EQ(with({{"exp", 1450}}), Reject::none); // within the skew
    EXPECT_EQ(with({{"nbf", 1600}}), Reject::not_yet_valid);
    EXPECT_EQ(with({{"iat", 1600}}), Reject::iat);
    EXPECT_EQ(with({{"nonce", "n2"}}), Reject::nonce);
    EXPECT_EQ(with({{"nonce", nullptr}}), Reject::nonce);
    EXPECT_EQ(with({{"exp", "2000"}}), Reject::claims);
    EXPECT_EQ(with({{"sub", 5}}), Reject::claims);
}

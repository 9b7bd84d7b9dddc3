// sso: base64url, HKDF and the cookie sealer.
#include "crypto.hpp"
#include "session.hpp"

#include <gtest/gtest.h>

using namespace sso;

TEST(Base64Url, RoundTripsEveryLengthWithoutPadding) {
    for (size_t n = 0; n < 70; ++n) {
        std::string bytes = random_bytes(n);
        std::string text = b64url_encode(bytes);
        EXPECT_EQ(text.find_first_of("+/="), std::string::npos);
        EXPECT_EQ(b64url_decode(text), bytes) << n;
    }
    EXPECT_EQ(b64url_encode("\xfb\xff"), "-_8");
}

TEST(Base64Url, RefusesWhatIsNotCanonicalUrlBase64) {
    EXPECT_FALSE(b64url_decode("a"));          // impossible length
    EXPECT_FALSE(b64url_decode("ab=="));       // padding
    EXPECT_FALSE(b64url_decode("a+b/"));       // standard alphabet
    EXPECT_FALSE(b64url_decode("ab c"));       // whitespace
    EXPECT_FALSE(b64url_decode("ab*d"));       // outside the alphabet
    EXPECT_FALSE(b64url_decode("-_9"));        // non-zero unused bits ("-_8" is canonical)
    EXPECT_EQ(b64url_decode(""), std::string());
}

TEST(Hkdf, MatchesRfc5869TestCase1) {
    const std::string ikm(22, '\x0b');
    std::string salt, info;
    for (int i = 0; i <= 0x0c; ++i)
        salt += static_cast<char>(i);
    for (int i = 0xf0; i <= 0xf9; ++i)
        info += static_cast<char>(i);
    const std::string okm = hkdf_sha256(ikm, salt, info, 42);
    EXPECT_EQ(b64url_encode(okm), "PLJfJfqs1XqQQ09k0DYvKi0tCpDPGlpMXbAtVuzExb80AHII1biHGFhl");
}

TEST(Sealer, OpensWhatItSealedAndNothingElse) {
    Sealer sealer({std::string(32, 'a')}, "session");
    const std::string sealed = sealer.seal("hello", "cookie");
    EXPECT_EQ(sealer.open(sealed, "cookie"), "hello");
    EXPECT_FALSE(sealer.open(sealed, "other-cookie")); // bound to its name
    std::string tampered = sealed;
    tampered[20] = tampered[20] == 'A' ? 'B' : 'A';
    EXPECT_FALSE(sealer.open(tampered, "cookie"));
    EXPECT_FALSE(sealer.open(sealed.substr(0, sealed.size() - 4), "cookie")); // truncated
    EXPECT_FALSE(sealer.open("", "cookie"));
    EXPECT_FALSE(Sealer({std::string(32, 'a')}, "login-state").open(sealed, "cookie")); // purpose
    EXPECT_NE(sealer.seal("hello", "cookie"), sealed); // a fresh nonce each time
}

TEST(Sealer, RotationSealsWithTheFirstAndOpensWithAll) {
    const std::string old_key(40, 'o'), new_key(40, 'n');
    Sealer before({old_key}, "session"), after({new_key, old_key}, "session"),
        retired({new_key}, "session");
    const std::string old_cookie = before.seal("s", "c");
    EXPECT_EQ(after.open(old_cookie, "c"), "s");
    EXPECT_FALSE(retired.open(old_cookie, "c"));
    EXPECT_FALSE(before.open(after.seal("s", "c"), "c"));
}

TEST(Session, EncodesAndDecodesAndRefusesIncompleteOnes) {
    Session s;
    s.id = "i1";
    s.provider = "corp";
    s.sub = "alice";
    s.claims = {{"email", "a@example.com"}, {"groups", {"dev", "ops"}}};
    s.created = 100;
    s.seen = 150;
    s.refresh_token = "rt";
    auto back = decode_session(encode_session(s));
    ASSERT_TRUE(back);
    EXPECT_EQ(back->sub, "alice");
    EXPECT_EQ(back->claims["groups"][1], "ops");
    EXPECT_EQ(back->refresh_token, "rt");
    EXPECT_EQ(back->seen, 150);
    EXPECT_FALSE(decode_session("{}"));
    EXPECT_FALSE(decode_session("not json"));
    EXPECT_FALSE(decode_session(R"({"v":1,"id":"i","p":"corp","sub":"","t":5})"));
    EXPECT_FALSE(decode_session(R"({"v":1,"p":"corp","sub":"a","t":5})")); // no id
}

TEST(Session, ChunksAreAtMostTheChunkSize) {
    std::string big(kChunk * 2 + 10, 'x');
    auto chunks = split_chunks(big);
    ASSERT_EQ(chunks.size(), 3u);
    EXPECT_EQ(chunks[0].size(), kChunk);
    EXPECT_EQ(chunks[2].size(), 10u);
    EXPECT_EQ(chunks[0] + chunks[1] + chunks[2], big);
}

TEST(Session, ClaimsTheIdTokenCarriesAreNotStoredTwice) {
    nlohmann::json payload = {{"iss", "https://idp"}, {"sub", "alice"}, {"aud", "app"},
                              {"exp", 9}, {"email", "a@example.com"}, {"groups", {"x"}}};
    Session s;
    s.id = "i";
    s.provider = "corp";
    s.sub = "alice";
    s.created = s.seen = 5;
    s.id_token = b64url_encode("{}") + "." + b64url_encode(payload.dump()) + ".c2ln";
    s.claims = identity_claims(payload);
    EXPECT_EQ(s.claims, (nlohmann::json{{"email", "a@example.com"}, {"groups", {"x"}}}));
    const std::string text = encode_session(s);
    EXPECT_EQ(text.find("a@example.com"), std::string::npos); // only inside the token's base64
    auto back = decode_session(text);
    ASSERT_TRUE(back);
    EXPECT_EQ(back->claims, s.claims);
    s.claims["extra"] = 1; // not derivable any more: stored
    EXPECT_EQ(decode_session(encode_session(s))->claims["extra"], 1);
}

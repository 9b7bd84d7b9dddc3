// compress: negotiation, type matching, header helpers and encoder round trips.
#include "compress.hpp"

#include <brotli/decode.h>
#include <gtest/gtest.h>
#include <zlib.h>

using namespace compress_filter;

namespace {

std::string gunzip(const std::string &in) {
    z_stream z{};
    EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    std::string out;
    char buf[4096];
    int r;
    do {
        z.next_out = reinterpret_cast<Bytef *>(buf);
        z.avail_out = sizeof buf;
        r = inflate(&z, Z_NO_FLUSH);
        out.append(buf, sizeof buf - z.avail_out);
    } while (r == Z_OK && (z.avail_in > 0 || z.avail_out == 0));
    inflateEnd(&z);
    return out;
}

std::string unbrotli(const std::string &in) {
    std::string out(1 << 20, '\0');
    size_t n = out.size();
    EXPECT_EQ(BrotliDecoderDecompress(in.size(), reinterpret_cast<const uint8_t *>(in.data()), &n,
                                      reinterpret_cast<uint8_t *>(out.data())),
              BROTLI_DECODER_RESULT_SUCCESS);
    out.resize(n);
    return out;
}

const std::vector<std::string> kTypes = {"text/*", "application/json", "image/svg+xml"};

} // namespace

TEST(Negotiate, AbsentOrEmptyIsIdentity) {
    EXPECT_EQ(negotiate(std::nullopt, true, true), Coding::identity);
    EXPECT_EQ(negotiate("", true, true), Coding::identity);
    EXPECT_EQ(negotiate("identity", true, true), Coding::identity);
}

TEST(Negotiate, TiesPreferBrotli) {
    EXPECT_EQ(negotiate("gzip, br", true, true), Coding::br);
    EXPECT_EQ(negotiate("gzip;q=0.5, br;q=0.5", true, true), Coding::br);
    EXPECT_EQ(negotiate("gzip, deflate, br, zstd", true, true), Coding::br);
}

TEST(Negotiate, HighestQWins) {
    EXPECT_EQ(negotiate("gzip;q=1.0, br;q=0.8", true, true), Coding::gzip);
    EXPECT_EQ(negotiate("br;q=0.9, gzip;q=0.1", true, true), Coding::br);
    EXPECT_EQ(negotiate("GZIP ; Q=0.7 , Br ; q=0.2", true, true), Coding::gzip);
}

TEST(Negotiate, QZeroExcludes) {
    EXPECT_EQ(negotiate("br;q=0, gzip", true, true), Coding::gzip);
    EXPECT_EQ(negotiate("br;q=0, gzip;q=0", true, true), Coding::identity);
    EXPECT_EQ(negotiate("gzip;q=0.000", true, true), Coding::identity);
}

TEST(Negotiate, Star) {
    EXPECT_EQ(negotiate("*", true, true), Coding::br);
    EXPECT_EQ(negotiate("*", true, false), Coding::gzip);
    EXPECT_EQ(negotiate("br;q=0, *", true, true), Coding::gzip);
    EXPECT_EQ(negotiate("*;q=0", true, true), Coding::identity);
    EXPECT_EQ(negotiate("gzip;q=0.3, *;q=0.9", true, true), Coding::br);
}

TEST(Negotiate, DisabledCodecsAreNotChosen) {
    EXPECT_EQ(negotiate("br", true, false), Coding::identity);
    EXPECT_EQ(negotiate("gzip, br", false, true), Coding::br);
    EXPECT_EQ(negotiate("gzip, br", true, false), Coding::gzip);
    EXPECT_EQ(negotiate("x-gzip", true, true), Coding::gzip);
}

TEST(Negotiate, MalformedQIsRefused) {
    EXPECT_EQ(negotiate("br;q=abc, gzip", true, true), Coding::gzip);
    EXPECT_EQ(negotiate("br;q=2", true, true), Coding::identity);
}

TEST(TypeMatches, ExactWildcardAndParameters) {
    EXPECT_TRUE(type_matches("text/html", kTypes));
    EXPECT_TRUE(type_matches("text/plain; charset=utf-8", kTypes));
    EXPECT_TRUE(type_matches("Application/JSON", kTypes));
    EXPECT_TRUE(type_matches(" image/svg+xml ;q=1", kTypes));
    EXPECT_FALSE(type_matches("application/octet-stream", kTypes));
    EXPECT_FALSE(type_matches("image/png", kTypes));
    EXPECT_FALSE(type_matches("textual/html", kTypes));
    EXPECT_FALSE(type_matches("", kTypes));
    EXPECT_FALSE(type_matches("text", kTypes));
    EXPECT_TRUE(type_matches("image/png", {"*/*"}));
}

TEST(Headers, NoTransform) {
    EXPECT_TRUE(has_no_transform("public, no-transform"));
    EXPECT_TRUE(has_no_transform("No-Transform"));
    EXPECT_FALSE(has_no_transform("no-store, max-age=0"));
}

TEST(Headers, VaryMerge) {
    EXPECT_EQ(merge_vary(""), "Accept-Encoding");
    EXPECT_EQ(merge_vary("Origin"), "Origin, Accept-Encoding");
    EXPECT_EQ(merge_vary("Origin, accept-encoding"), std::nullopt);
    EXPECT_EQ(merge_vary("*"), std::nullopt);
}

TEST(Headers, WeakenEtag) {
    EXPECT_EQ(weaken_etag("\"abc\""), "W/\"abc\"");
    EXPECT_EQ(weaken_etag("W/\"abc\""), "W/\"abc\"");
}

TEST(Encoders, GzipStreamRoundTrip) {
    auto e = make_gzip_encoder(6);
    std::string in, out;
    for (int i = 0; i < 200; ++i) {
        std::string piece = "chunk " + std::to_string(i) + " lorem ipsum dolor sit amet\n";
        in += piece;
        const std::string o = e->encode(piece, false);
        EXPECT_FALSE(o.empty()); // sync flush: every chunk yields decodable output
        out += o;
        EXPECT_EQ(gunzip(out), in); // the prefix decodes to everything so far
    }
    out += e->encode("", true);
    EXPECT_EQ(gunzip(out), in);
}

TEST(Encoders, BrotliStreamRoundTrip) {
    auto e = make_brotli_encoder(5);
    std::string in, out;
    for (int i = 0; i < 100; ++i) {
        std::string piece(1000 + i, static_cast<char>('a' + i % 26));
        in += piece;
        out += e->encode(piece, false);
    }
    out += e->encode("tail", true);
    in += "tail";
    EXPECT_EQ(unbrotli(out), in);
}

TEST(Encoders, EmptyBody) {
    EXPECT_EQ(gunzip(make_gzip_encoder(6)->encode("", true)), "");
    EXPECT_EQ(unbrotli(make_brotli_encoder(5)->encode("", true)), "");
}

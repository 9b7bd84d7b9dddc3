// compress: encoder round trips, flush semantics, measured memory bounds and the CPU guard.
#include "cpu_guard.hpp"
#include "encoder.hpp"

#include <brotli/decode.h>
#include <gtest/gtest.h>
#include <zlib.h>

using namespace compress_filter;

namespace {

// Decodes as much of a (possibly unfinished) gzip stream as is decodable.
std::string gunzip_prefix(const std::string &in) {
    z_stream z{};
    EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    std::string out;
    char buf[16384];
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

// Decodes as much of a (possibly unfinished) brotli stream as is decodable.
std::string unbrotli_prefix(const std::string &in, bool *finished = nullptr) {
    BrotliDecoderState *d = BrotliDecoderCreateInstance(nullptr, nullptr, nullptr);
    size_t avail_in = in.size();
    const uint8_t *next_in = reinterpret_cast<const uint8_t *>(in.data());
    std::string out;
    BrotliDecoderResult r;
    do {
        uint8_t buf[16384];
        size_t avail_out = sizeof buf;
        uint8_t *next_out = buf;
        r = BrotliDecoderDecompressStream(d, &avail_in, &next_in, &avail_out, &next_out, nullptr);
        out.append(reinterpret_cast<char *>(buf), sizeof buf - avail_out);
    } while (r == BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT);
    if (finished)
        *finished = r == BROTLI_DECODER_RESULT_SUCCESS;
    BrotliDecoderDestroyInstance(d);
    return out;
}

std::string text(size_t n) {
    std::string s;
    for (int i = 0; s.size() < n; ++i)
        s += "line " + std::to_string(i) + ": the quick brown fox jumps over the lazy dog\n";
    s.resize(n);
    return s;
}

// Streams `n` bytes through `e` in 16 KiB pieces, flushing every third; returns the output.
std::string stream(Encoder &e, const std::string &in) {
    std::string out;
    for (size_t off = 0, i = 0; off < in.size(); off += 16384, ++i)
        out += e.encode(std::string_view(in).substr(off, 16384),
                        i % 3 == 0 ? EncodeOp::flush : EncodeOp::process);
    return out + e.encode("", EncodeOp::finish);
}

} // namespace

TEST(Encoders, GzipEveryFlushedPrefixDecodes) {
    auto e = make_gzip_encoder({});
    std::string in, out;
    for (int i = 0; i < 200; ++i) {
        std::string piece = "event " + std::to_string(i) + " lorem ipsum dolor sit amet\n";
        in += piece;
        const std::string o = e->encode(piece, EncodeOp::flush);
        EXPECT_FALSE(o.empty());
        out += o;
        EXPECT_EQ(gunzip_prefix(out), in);
    }
    out += e->encode("", EncodeOp::finish);
    EXPECT_EQ(gunzip_prefix(out), in);
}

TEST(Encoders, BrotliEveryFlushedPrefixDecodes) {
    auto e = make_brotli_encoder({});
    std::string in, out;
    for (int i = 0; i < 100; ++i) {
        std::string piece(100 + i, static_cast<char>('a' + i % 26));
        in += piece;
        out += e->encode(piece, EncodeOp::flush);
        bool finished = true;
        EXPECT_EQ(unbrotli_prefix(out, &finished), in);
        EXPECT_FALSE(finished);
    }
    out += e->encode("tail", EncodeOp::finish);
    bool finished = false;
    EXPECT_EQ(unbrotli_prefix(out, &finished), in + "tail");
    EXPECT_TRUE(finished);
}

TEST(Encoders, ProcessWithoutFlushStillRoundTrips) {
    const std::string in = text(300000);
    auto g = make_gzip_encoder({});
    EXPECT_EQ(gunzip_prefix(stream(*g, in)), in);
    auto b = make_brotli_encoder({});
    EXPECT_EQ(unbrotli_prefix(stream(*b, in)), in);
}

TEST(Encoders, EmptyBody) {
    EXPECT_EQ(gunzip_prefix(make_gzip_encoder({})->encode("", EncodeOp::finish)), "");
    bool finished = false;
    EXPECT_EQ(unbrotli_prefix(make_brotli_encoder({})->encode("", EncodeOp::finish), &finished),
              "");
    EXPECT_TRUE(finished);
}

TEST(EncoderMemory, GzipDefaultsStayWithin256KiB) {
    auto e = make_gzip_encoder({});
    stream(*e, text(1 << 20));
    EXPECT_GT(e->peak_memory(), 150u * 1024);
    EXPECT_LE(e->peak_memory(), 256u * 1024);
    EXPECT_LE(e->peak_memory(), gzip_memory_bound(15, 7));
}

TEST(EncoderMemory, GzipBoundFormulaCoversEveryAllowedCombination) {
    for (int w = 9; w <= 15; ++w)
        for (int m = 1; m <= 9; ++m) {
            auto e = make_gzip_encoder({6, w, m});
            stream(*e, text(100000));
            EXPECT_LE(e->peak_memory(), gzip_memory_bound(w, m)) << w << "/" << m;
            EXPECT_GE(e->peak_memory() + 1024, gzip_memory_bound(w, m)) << w << "/" << m;
        }
}

TEST(EncoderMemory, BrotliDefaultsStayWithin1MiBWhateverTheChunks) {
    // The kernel hands over up to 128 KiB per chunk, mostly without a flush: the encoder's own
    // 16 KiB flush blocks keep libbrotli's buffers (sized by the input between flushes) small.
    for (size_t chunk : {size_t{1000}, size_t{16384}, size_t{131072}, size_t{1} << 21}) {
        auto e = make_brotli_encoder({});
        const std::string in = text(2 << 20);
        std::string out;
        for (size_t off = 0; off < in.size(); off += chunk)
            out += e->encode(std::string_view(in).substr(off, chunk), EncodeOp::process);
        out += e->encode("", EncodeOp::finish);
        EXPECT_LE(e->peak_memory(), 1024u * 1024) << chunk;
        bool finished = false;
        EXPECT_EQ(unbrotli_prefix(out, &finished), in) << chunk;
        EXPECT_TRUE(finished);
        RecordProperty("brotli_default_peak_bytes_" + std::to_string(chunk),
                       std::to_string(e->peak_memory()));
    }
}

TEST(EncoderMemory, LargerBrotliBlocksUseMoreMemory) {
    const std::string in = text(1 << 20);
    auto run = [&](size_t block, size_t& peak) {
        auto e = make_brotli_encoder({5, 16, block});
        std::string out = e->encode(in, EncodeOp::process);
        out += e->encode("", EncodeOp::finish);
        peak = e->peak_memory();
        return out.size();
    };
    size_t small_peak = 0, large_peak = 0;
    // (Whether the output gets smaller depends on the data: ~1 % on HTML, see the README.)
    EXPECT_GT(run(16 * 1024, small_peak), 0u);
    EXPECT_GT(run(1 << 20, large_peak), 0u);
    EXPECT_GT(large_peak, 1024u * 1024);
    EXPECT_LE(small_peak, 1024u * 1024);
}

TEST(EncoderMemory, ReleasedWhenDestroyed) {
    auto e = make_brotli_encoder({});
    stream(*e, text(100000));
    EXPECT_GT(e->memory(), 0u);
    EXPECT_GE(e->peak_memory(), e->memory());
}

TEST(CpuGuard, RatioOfTheLastClosedWindow) {
    CpuGuard g;
    const uint64_t ms = 1000000;
    EXPECT_TRUE(g.due(0, 100 * ms));
    EXPECT_FALSE(g.sample(0, 0, 100 * ms)); // opens the first window
    EXPECT_FALSE(g.due(50 * ms, 100 * ms));
    EXPECT_FALSE(g.sample(50 * ms, 40 * ms, 100 * ms));
    EXPECT_EQ(g.busy_ratio(), 0);
    EXPECT_TRUE(g.sample(100 * ms, 80 * ms, 100 * ms));
    EXPECT_DOUBLE_EQ(g.busy_ratio(), 0.8);
    // idle for 900 ms, then 10 ms of work: the long window is mostly idle
    EXPECT_TRUE(g.sample(1000 * ms, 90 * ms, 100 * ms));
    EXPECT_NEAR(g.busy_ratio(), 10.0 / 900.0, 1e-9);
}

TEST(CpuGuard, ThreadClockAdvancesWithWork) {
    const uint64_t before = thread_cpu_ns();
    volatile uint64_t x = 0;
    for (int i = 0; i < 20000000; ++i)
        x = x + static_cast<uint64_t>(i);
    EXPECT_GT(thread_cpu_ns(), before);
    EXPECT_GT(monotonic_ns(), 0u);
}

TEST(GzipTuning, ShorterChainStaysCloseInSizeAndDecodes) {
    // A text of repeated phrases: max_chain 96 (the default) against zlib's 128 at level 6.
    std::string text;
    for (int i = 0; i < 4000; ++i)
        text += "<li class=\"item-" + std::to_string(i % 97) + "\">entry " +
                std::to_string(i * 7919 % 10007) + " of the catalogue</li>\n";
    auto encoded_size = [&](int chain) {
        compress_filter::GzipParams p;
        p.max_chain = chain;
        auto enc = compress_filter::make_gzip_encoder(p);
        std::string out = enc->encode(text, compress_filter::EncodeOp::finish);
        return out.size();
    };
    const size_t tuned = encoded_size(96), zlib = encoded_size(0);
    EXPECT_NE(tuned, zlib) << "the tuning takes effect";
    EXPECT_LE(tuned, zlib + zlib / 50) << "within 2 % of zlib's own search on this text";
    compress_filter::GzipParams p; // and what it produces is ordinary gzip
    std::string out = compress_filter::make_gzip_encoder(p)->encode(
        text, compress_filter::EncodeOp::finish);
    z_stream z{};
    ASSERT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
    std::string back(text.size() + 16, '\0');
    z.next_in = reinterpret_cast<Bytef *>(out.data());
    z.avail_in = static_cast<uInt>(out.size());
    z.next_out = reinterpret_cast<Bytef *>(back.data());
    z.avail_out = static_cast<uInt>(back.size());
    EXPECT_EQ(inflate(&z, Z_FINISH), Z_STREAM_END);
    back.resize(z.total_out);
    inflateEnd(&z);
    EXPECT_EQ(back, text);
    EXPECT_EQ(compress_filter::deflate_tuning(6).chain, 128);
    EXPECT_EQ(compress_filter::deflate_tuning(3).chain, 0) << "levels 1-3 are not tuned";
}

// compress: the zlib and brotli streaming encoders and their counting allocator.
#include "encoder.hpp"

#include <brotli/encode.h>
#include <zlib.h>

#include <cstdlib>
#include <new>
#include <stdexcept>

namespace compress_filter {

DeflateTuning deflate_tuning(int level) noexcept {
    // Levels 4-9 of zlib's configuration table (1-3 use a search without lazy matching, which
    // deflateTune does not tune).
    static constexpr DeflateTuning table[] = {
        {4, 4, 16, 16},     {8, 16, 32, 32},     {8, 16, 128, 128},
        {8, 32, 128, 256},  {32, 128, 258, 1024}, {32, 258, 258, 4096}};
    if (level < 4 || level > 9)
        return {0, 0, 0, 0};
    return table[level - 4];
}

namespace {

// Each block carries its size in a header so release() can account for it (brotli's free hook
// gets no size). 16 bytes keep the user pointer aligned like malloc's.
constexpr size_t kHeader = 16;

constexpr size_t kOutputStep = 16384;

voidpf zlib_alloc(voidpf opaque, uInt items, uInt size) {
    return static_cast<Encoder *>(opaque)->allocate(static_cast<size_t>(items) * size);
}
void zlib_free(voidpf opaque, voidpf p) { static_cast<Encoder *>(opaque)->release(p); }
void *brotli_alloc(void *opaque, size_t n) { return static_cast<Encoder *>(opaque)->allocate(n); }
void brotli_free(void *opaque, void *p) { static_cast<Encoder *>(opaque)->release(p); }

class GzipEncoder final : public Encoder {
  public:
    explicit GzipEncoder(const GzipParams &p) {
        z_.zalloc = zlib_alloc;
        z_.zfree = zlib_free;
        z_.opaque = this;
        // windowBits + 16: the gzip wrapper (RFC 1952), as browsers expect for "gzip".
        const int rc = deflateInit2(&z_, p.level, Z_DEFLATED, p.window + 16, p.mem_level,
                                    Z_DEFAULT_STRATEGY);
        if (rc == Z_MEM_ERROR)
            throw std::bad_alloc();
        if (rc != Z_OK)
            throw std::runtime_error("deflateInit2 failed");
        const DeflateTuning t = deflate_tuning(p.level);
        if (p.max_chain > 0 && p.max_chain != t.chain && p.level >= 4)
            deflateTune(&z_, t.good, t.lazy, t.nice, p.max_chain);
    }
    ~GzipEncoder() override { deflateEnd(&z_); }

    std::string encode(std::string_view in, EncodeOp op) override {
        std::string out;
        if (in.empty() && op == EncodeOp::process)
            return out;
        z_.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(in.data()));
        z_.avail_in = static_cast<uInt>(in.size());
        const int flush = op == EncodeOp::finish  ? Z_FINISH
                          : op == EncodeOp::flush ? Z_SYNC_FLUSH
                                                  : Z_NO_FLUSH;
        // deflate() is done when it leaves output space unused (all input taken, flush
        // complete) or reports the end of the stream.
        for (;;) {
            const size_t used = out.size();
            out.resize(used + kOutputStep);
            z_.next_out = reinterpret_cast<Bytef *>(out.data() + used);
            z_.avail_out = static_cast<uInt>(kOutputStep);
            const int r = deflate(&z_, flush);
            out.resize(used + kOutputStep - z_.avail_out);
            if (r == Z_STREAM_ERROR)
                throw std::runtime_error("deflate failed");
            if (r == Z_STREAM_END || (z_.avail_out != 0 && flush != Z_FINISH))
                break;
        }
        return out;
    }

  private:
    z_stream z_{};
};

class BrotliEncoder final : public Encoder {
  public:
    explicit BrotliEncoder(const BrotliParams &p)
        : st_(BrotliEncoderCreateInstance(brotli_alloc, brotli_free, this)), block_(p.block) {
        if (st_ == nullptr)
            throw std::bad_alloc();
        BrotliEncoderSetParameter(st_, BROTLI_PARAM_QUALITY, static_cast<uint32_t>(p.quality));
        BrotliEncoderSetParameter(st_, BROTLI_PARAM_LGWIN, static_cast<uint32_t>(p.window));
    }
    ~BrotliEncoder() override { BrotliEncoderDestroyInstance(st_); }

    std::string encode(std::string_view in, EncodeOp op) override {
        std::string out;
        // Flush every block_ input bytes, across calls: that bounds the stream's memory.
        while (!in.empty() && since_flush_ + in.size() > block_) {
            const size_t take = block_ - since_flush_;
            run(in.substr(0, take), EncodeOp::flush, out);
            in.remove_prefix(take);
            since_flush_ = 0;
        }
        if (in.empty() && op == EncodeOp::process)
            return out;
        run(in, op, out);
        since_flush_ = op == EncodeOp::process ? since_flush_ + in.size() : 0;
        return out;
    }

  private:
    void run(std::string_view in, EncodeOp op, std::string &out) {
        size_t avail_in = in.size();
        const uint8_t *next_in = reinterpret_cast<const uint8_t *>(in.data());
        const BrotliEncoderOperation bop = op == EncodeOp::finish  ? BROTLI_OPERATION_FINISH
                                           : op == EncodeOp::flush ? BROTLI_OPERATION_FLUSH
                                                                   : BROTLI_OPERATION_PROCESS;
        for (;;) {
            const size_t used = out.size();
            out.resize(used + kOutputStep);
            size_t avail_out = kOutputStep;
            uint8_t *next_out = reinterpret_cast<uint8_t *>(out.data() + used);
            const bool ok = BrotliEncoderCompressStream(st_, bop, &avail_in, &next_in, &avail_out,
                                                        &next_out, nullptr);
            out.resize(used + kOutputStep - avail_out);
            if (!ok)
                throw std::runtime_error("BrotliEncoderCompressStream failed");
            if (avail_in == 0 && !BrotliEncoderHasMoreOutput(st_) &&
                (op != EncodeOp::finish || BrotliEncoderIsFinished(st_)))
                break;
        }
    }

    BrotliEncoderState *st_;
    size_t block_;
    size_t since_flush_ = 0;
};

} // namespace

size_t gzip_memory_bound(int window, int mem_level) noexcept {
    constexpr size_t state = 6 * 1024;
    return (size_t{1} << (window + 2)) + (size_t{1} << (mem_level + 9)) + state;
}

void *Encoder::allocate(size_t n) noexcept {
    auto *block = static_cast<unsigned char *>(std::malloc(n + kHeader));
    if (block == nullptr)
        return nullptr;
    *reinterpret_cast<size_t *>(block) = n;
    current_ += n;
    if (current_ > peak_)
        peak_ = current_;
    return block + kHeader;
}

void Encoder::release(void *p) noexcept {
    if (p == nullptr)
        return;
    unsigned char *block = static_cast<unsigned char *>(p) - kHeader;
    current_ -= *reinterpret_cast<size_t *>(block);
    std::free(block);
}

std::unique_ptr<Encoder> make_gzip_encoder(const GzipParams &p) {
    return std::make_unique<GzipEncoder>(p);
}

std::unique_ptr<Encoder> make_brotli_encoder(const BrotliParams &p) {
    return std::make_unique<BrotliEncoder>(p);
}

} // namespace compress_filter

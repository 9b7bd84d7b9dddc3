// compress: streaming gzip (zlib) and brotli encoders whose memory is counted through their
// libraries' custom allocator hooks, so the per-stream cost is measured, not guessed.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace compress_filter {

// What an encode() call must leave behind.
enum class EncodeOp {
    process, // compress; output may stay inside the encoder until a later call
    flush,   // everything fed so far must be decodable from the output (sync flush)
    finish,  // end the stream (trailer / last meta-block)
};

// The parameters of one encoder. Validated by config.cpp; see README.md for the memory table.
struct GzipParams {
    int level = 6;     // 1-9
    int window = 15;   // zlib windowBits 9-15
    int mem_level = 7; // zlib memLevel 1-9
    // zlib's longest-match search depth (deflateTune max_chain); 0 = zlib's own for the level.
    // At level 6 zlib searches 128; 96 compresses within 1 % of `gzip -6` for ~7 % less CPU,
    // which buys back what memLevel 7 (kept for the 256 KiB bound) costs against nginx's 8.
    int max_chain = 96;
};

// zlib's parameters for a level (good_length, max_lazy, nice_length, max_chain), as its deflate
// configuration table documents them; deflateTune needs all four.
struct DeflateTuning {
    int good, lazy, nice, chain;
};
DeflateTuning deflate_tuning(int level) noexcept;
struct BrotliParams {
    int quality = 5; // 0-11
    int window = 16; // lgwin 10-24
    // Input bytes between flushes at most. libbrotli sizes a stream's buffers by the input it
    // gathers before emitting a meta-block (up to 64 KiB): at quality 5, window 16 a stream
    // holds ~0.95 MiB with 16 KiB and ~1.7 MiB with 64 KiB or more (measured).
    size_t block = 16 * 1024;
};

// Bytes zlib allocates for a deflate stream: window (2 * 2^w), prev (2 * 2^w), head
// (2 * 2^(m+7)), pending buffer (4 * 2^(m+6)), and the deflate_state (~5.9 KiB, measured).
size_t gzip_memory_bound(int window, int mem_level) noexcept;

// A streaming encoder. encode() feeds `in` and returns the bytes to send. Throws
// std::runtime_error on codec failure and std::bad_alloc when out of memory.
// Ownership: one per compressed stream. Thread: the stream's worker.
class Encoder {
  public:
    virtual ~Encoder() = default;
    virtual std::string encode(std::string_view in, EncodeOp op) = 0;
    // Bytes the codec library holds now / held at most, through the counting allocator.
    size_t memory() const noexcept { return current_; }
    size_t peak_memory() const noexcept { return peak_; }

    // The allocator hooks (C callbacks of zlib and brotli) account through these.
    void *allocate(size_t n) noexcept;
    void release(void *p) noexcept;

  protected:
    Encoder() = default;

  private:
    size_t current_ = 0;
    size_t peak_ = 0;
};

std::unique_ptr<Encoder> make_gzip_encoder(const GzipParams &p);
std::unique_ptr<Encoder> make_brotli_encoder(const BrotliParams &p);

} // namespace compress_filter

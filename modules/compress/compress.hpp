// compress: the logic of the compress filter, free of the kernel (unit-tested directly).
// Negotiation (RFC 9110 §12.5.3), media-type matching, header helpers and streaming encoders.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace compress_filter {

enum class Coding { identity, gzip, br };

std::string_view coding_name(Coding c) noexcept;

// The coding to use for a request's Accept-Encoding value (nullopt: header absent). Highest q
// wins among enabled codings with q > 0 (explicit entry first, else `*`); ties go to br over
// gzip. Returns identity when nothing acceptable is enabled.
Coding negotiate(std::optional<std::string_view> accept_encoding, bool gzip_enabled,
                 bool brotli_enabled);

// True if `content_type` (a Content-Type value, parameters allowed) matches one of `types`
// ("type/subtype", "type/*" or "*/*"; case-insensitive).
bool type_matches(std::string_view content_type, const std::vector<std::string> &types);

// True if a Cache-Control value has the no-transform directive.
bool has_no_transform(std::string_view cache_control);

// The Vary value after merging Accept-Encoding into `current` (the joined existing values, or
// empty), or nullopt when nothing has to change (already listed, or `*`).
std::optional<std::string> merge_vary(std::string_view current);

// A strong ETag made weak (W/"x"); weak or malformed ones unchanged.
std::string weaken_etag(std::string_view etag);

// A streaming encoder. encode() compresses `in` and flushes (sync flush), or finishes the
// stream when `last`; it returns the bytes to send. Throws std::runtime_error on codec failure.
class Encoder {
  public:
    virtual ~Encoder() = default;
    virtual std::string encode(std::string_view in, bool last) = 0;
};

std::unique_ptr<Encoder> make_gzip_encoder(int level);
std::unique_ptr<Encoder> make_brotli_encoder(int quality, int lgwin = 20);

} // namespace compress_filter

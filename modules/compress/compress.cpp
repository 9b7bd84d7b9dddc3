// compress: negotiation, type matching, header helpers and the zlib/brotli streaming encoders.
#include "compress.hpp"

#include <brotli/encode.h>
#include <zlib.h>

#include <cctype>
#include <cstdlib>
#include <stdexcept>

namespace compress_filter {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char &c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// Splits a comma-separated list into trimmed, non-empty elements.
std::vector<std::string_view> split_list(std::string_view s) {
    std::vector<std::string_view> out;
    while (!s.empty()) {
        const size_t comma = s.find(',');
        std::string_view item = trim(s.substr(0, comma));
        if (!item.empty())
            out.push_back(item);
        if (comma == std::string_view::npos)
            break;
        s.remove_prefix(comma + 1);
    }
    return out;
}

// q-value of a parameter list ("q=0.5"); 1 when absent, 0 when malformed (fail safe).
double parse_q(std::string_view params) {
    while (!params.empty()) {
        const size_t semi = params.find(';');
        std::string_view p = trim(params.substr(0, semi));
        if (p.size() >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
            std::string v(trim(p.substr(2)));
            char *end = nullptr;
            const double q = std::strtod(v.c_str(), &end);
            if (v.empty() || end != v.c_str() + v.size() || q < 0 || q > 1)
                return 0;
            return q;
        }
        if (semi == std::string_view::npos)
            break;
        params.remove_prefix(semi + 1);
    }
    return 1;
}

} // namespace

std::string_view coding_name(Coding c) noexcept {
    switch (c) {
    case Coding::gzip:
        return "gzip";
    case Coding::br:
        return "br";
    default:
        return "identity";
    }
}

Coding negotiate(std::optional<std::string_view> accept_encoding, bool gzip_enabled,
                 bool brotli_enabled) {
    if (!accept_encoding)
        return Coding::identity;
    std::optional<double> q_gzip, q_br, q_star;
    for (std::string_view item : split_list(*accept_encoding)) {
        const size_t semi = item.find(';');
        const std::string name = lower(trim(item.substr(0, semi)));
        const double q = semi == std::string_view::npos ? 1.0 : parse_q(item.substr(semi + 1));
        std::optional<double> *slot = nullptr;
        if (name == "gzip" || name == "x-gzip")
            slot = &q_gzip;
        else if (name == "br")
            slot = &q_br;
        else if (name == "*")
            slot = &q_star;
        if (slot != nullptr && (!*slot || q > **slot))
            *slot = q;
    }
    const double g = gzip_enabled ? q_gzip.value_or(q_star.value_or(0)) : 0;
    const double b = brotli_enabled ? q_br.value_or(q_star.value_or(0)) : 0;
    if (b > 0 && b >= g)
        return Coding::br;
    if (g > 0)
        return Coding::gzip;
    return Coding::identity;
}

bool type_matches(std::string_view content_type, const std::vector<std::string> &types) {
    const std::string mt = lower(trim(content_type.substr(0, content_type.find(';'))));
    const size_t slash = mt.find('/');
    if (mt.empty() || slash == std::string::npos)
        return false;
    for (const std::string &t : types) {
        const std::string p = lower(trim(t));
        if (p == "*/*" || p == mt)
            return true;
        if (p.size() >= 2 && p.compare(p.size() - 2, 2, "/*") == 0 &&
            mt.compare(0, slash + 1, p, 0, p.size() - 1) == 0)
            return true;
    }
    return false;
}

bool has_no_transform(std::string_view cache_control) {
    for (std::string_view item : split_list(cache_control))
        if (lower(trim(item.substr(0, item.find('=')))) == "no-transform")
            return true;
    return false;
}

std::optional<std::string> merge_vary(std::string_view current) {
    for (std::string_view item : split_list(current)) {
        const std::string l = lower(item);
        if (l == "*" || l == "accept-encoding")
            return std::nullopt;
    }
    const std::string_view t = trim(current);
    if (split_list(t).empty())
        return std::string("Accept-Encoding");
    return std::string(t) + ", Accept-Encoding";
}

std::string weaken_etag(std::string_view etag) {
    const std::string_view t = trim(etag);
    if (t.size() >= 2 && t.front() == '"' && t.back() == '"')
        return "W/" + std::string(t);
    return std::string(etag);
}

namespace {

class GzipEncoder final : public Encoder {
  public:
    explicit GzipEncoder(int level) {
        // windowBits 15 + 16: gzip wrapper; memLevel 8: ~256 KiB of state per stream.
        if (deflateInit2(&z_, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            throw std::runtime_error("deflateInit2 failed");
    }
    ~GzipEncoder() override { deflateEnd(&z_); }

    std::string encode(std::string_view in, bool last) override {
        std::string out;
        if (in.empty() && !last)
            return out; // nothing new to flush
        z_.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(in.data()));
        z_.avail_in = static_cast<uInt>(in.size());
        const int flush = last ? Z_FINISH : Z_SYNC_FLUSH;
        char buf[16384];
        for (;;) {
            z_.next_out = reinterpret_cast<Bytef *>(buf);
            z_.avail_out = sizeof buf;
            const int r = deflate(&z_, flush);
            if (r == Z_STREAM_ERROR)
                throw std::runtime_error("deflate failed");
            out.append(buf, sizeof buf - z_.avail_out);
            if (r == Z_STREAM_END)
                break;
            if (z_.avail_out != 0 && z_.avail_in == 0 && !last)
                break; // sync flush complete
            if (r == Z_BUF_ERROR && z_.avail_out != 0)
                break;
        }
        return out;
    }

  private:
    z_stream z_{};
};

class BrotliEncoder final : public Encoder {
  public:
    BrotliEncoder(int quality, int lgwin) : st_(BrotliEncoderCreateInstance(nullptr, nullptr, nullptr)) {
        if (st_ == nullptr)
            throw std::runtime_error("BrotliEncoderCreateInstance failed");
        BrotliEncoderSetParameter(st_, BROTLI_PARAM_QUALITY, static_cast<uint32_t>(quality));
        BrotliEncoderSetParameter(st_, BROTLI_PARAM_LGWIN, static_cast<uint32_t>(lgwin));
    }
    ~BrotliEncoder() override { BrotliEncoderDestroyInstance(st_); }

    std::string encode(std::string_view in, bool last) override {
        std::string out;
        if (in.empty() && !last)
            return out;
        size_t avail_in = in.size();
        const uint8_t *next_in = reinterpret_cast<const uint8_t *>(in.data());
        const BrotliEncoderOperation op = last ? BROTLI_OPERATION_FINISH : BROTLI_OPERATION_FLUSH;
        for (;;) {
            uint8_t buf[16384];
            size_t avail_out = sizeof buf;
            uint8_t *next_out = buf;
            if (!BrotliEncoderCompressStream(st_, op, &avail_in, &next_in, &avail_out, &next_out,
                                             nullptr))
                throw std::runtime_error("BrotliEncoderCompressStream failed");
            out.append(reinterpret_cast<char *>(buf), sizeof buf - avail_out);
            if (avail_in == 0 && !BrotliEncoderHasMoreOutput(st_) &&
                (!last || BrotliEncoderIsFinished(st_)))
                break;
        }
        return out;
    }

  private:
    BrotliEncoderState *st_;
};

} // namespace

std::unique_ptr<Encoder> make_gzip_encoder(int level) {
    return std::make_unique<GzipEncoder>(level);
}

std::unique_ptr<Encoder> make_brotli_encoder(int quality, int lgwin) {
    return std::make_unique<BrotliEncoder>(quality, lgwin);
}

} // namespace compress_filter

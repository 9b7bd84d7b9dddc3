// compress: entry point and the filter's hooks; the logic is in compress.cpp.
#include "compress.hpp"
#include "config.hpp"

#include <gatehouse/sdk.hpp>

#include <charconv>

namespace compress_filter {

namespace {

struct StreamState {
    std::unique_ptr<Encoder> encoder;
    Coding coding = Coding::identity;
};

// All values of a response header joined with ", " (empty when absent).
std::string joined(gh::Stream &s, std::string_view name) {
    std::string out;
    for (size_t i = 0;; ++i) {
        auto v = s.header(GH_HEADERS_RESPONSE, name, i);
        if (!v)
            break;
        if (!out.empty())
            out += ", ";
        out += *v;
    }
    return out;
}

void add_vary(gh::Stream &s) {
    if (auto merged = merge_vary(joined(s, "vary")))
        s.set_header(GH_HEADERS_RESPONSE, "vary", *merged);
}

} // namespace

class CompressFilter : public gh::Filter<CompressFilter, Config> {
  public:
    static constexpr uint32_t response_body_class = GH_BODY_CLASS_ENCODE;

    std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base) {
        return compress_filter::parse_config(table, base);
    }

    gh_action_t on_response_headers(gh::Stream s, const Config &c) {
        if (!c.gzip && !c.brotli)
            return GH_CONTINUE;
        if (s.method() == "HEAD")
            return skip("head");
        if (s.response_status() != 200)
            return skip("status");
        if (s.response_header("content-encoding"))
            return skip("already_encoded");
        auto ct = s.response_header("content-type");
        if (!ct || !type_matches(*ct, c.types))
            return skip("type");
        // From here the response is compressible: caches must key it on Accept-Encoding.
        add_vary(s);
        if (has_no_transform(joined(s, "cache-control")))
            return skip("no_transform");
        if (s.response_header("content-range"))
            return skip("range");
        if (auto cl = s.response_header("content-length")) {
            uint64_t n = 0;
            auto r = std::from_chars(cl->data(), cl->data() + cl->size(), n);
            if (r.ec == std::errc() && n < c.min_length)
                return skip("too_small");
        }
        const Coding coding = negotiate(s.request_header("accept-encoding"), c.gzip, c.brotli);
        if (coding == Coding::identity)
            return skip("client_refused");

        auto st = std::make_unique<StreamState>();
        st->coding = coding;
        st->encoder = coding == Coding::br ? make_brotli_encoder(c.brotli_level)
                                           : make_gzip_encoder(c.gzip_level);
        if (s.body_subscribe(GH_DIR_RESPONSE, GH_BODY_STREAM) != GH_OK)
            return skip("subscribe_failed"); // left uncompressed
        s.set_ctx(st.release());
        s.set_header(GH_HEADERS_RESPONSE, "content-encoding", coding_name(coding));
        s.remove_header(GH_HEADERS_RESPONSE, "accept-ranges");
        if (auto etag = s.response_header("etag")) {
            const std::string weak = weaken_etag(*etag);
            if (weak != *etag)
                s.set_header(GH_HEADERS_RESPONSE, "etag", weak);
        }
        responses_.inc({coding_name(coding)});
        return GH_CONTINUE;
    }

    int32_t on_response_body(gh::Stream s, const gh::Chunk &chunk, const Config &) {
        auto *st = s.ctx<StreamState>();
        if (st == nullptr || !st->encoder)
            return GH_BODY_PASS;
        const std::string out = st->encoder->encode(chunk.data, chunk.last);
        const std::string_view codec = coding_name(st->coding);
        bytes_in_.add(static_cast<double>(chunk.data.size()), {codec});
        bytes_out_.add(static_cast<double>(out.size()), {codec});
        if (!out.empty() && s.body_write(GH_DIR_RESPONSE, out) != GH_OK)
            return GH_BODY_ABORT;
        if (chunk.last)
            st->encoder.reset();
        return GH_BODY_CONSUMED;
    }

    void on_stream_end(gh::Stream s, const Config &) { s.take_ctx<StreamState>(); }

  private:
    gh_action_t skip(const char *reason) {
        skipped_.inc({reason});
        return GH_CONTINUE;
    }

    gh::Counter responses_{"compress_responses_total", "responses compressed", {"codec"}};
    gh::Counter bytes_in_{"compress_bytes_in_total", "body bytes fed to the encoder", {"codec"}};
    gh::Counter bytes_out_{"compress_bytes_out_total", "encoded bytes sent", {"codec"}};
    gh::Counter skipped_{"compress_skipped_total", "responses sent uncompressed, by reason",
                         {"reason"}};
};

} // namespace compress_filter

GH_MODULE(compress_filter::CompressFilter, "compress", "0.1.0",
          "gzip and brotli streaming response compression")

// compress: configuration keys, types and ranges (see README.md).
#include "config.hpp"

namespace compress_filter {

std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base) {
    auto c = std::make_unique<Config>(base);
    if (auto v = table.get("gzip").boolean())
        c->gzip = *v;
    if (auto v = table.get("brotli").boolean())
        c->brotli = *v;
    if (auto v = table.get("gzip_level").integer(1, 9))
        c->gzip_level = static_cast<int>(*v);
    if (auto v = table.get("brotli_level").integer(0, 11))
        c->brotli_level = static_cast<int>(*v);
    if (auto v = table.get("min_length").bytes())
        c->min_length = *v;
    gh::ConfigNode types = table.get("types");
    if (auto v = types.strings()) {
        for (const std::string &t : *v) {
            if (t.find('/') == std::string::npos || t.front() == '/' || t.back() == '/') {
                types.error("media types look like \"type/subtype\" or \"type/*\", got \"" + t + "\"");
                return c;
            }
        }
        c->types = std::move(*v);
    }
    return c;
}

} // namespace compress_filter

// example: configuration -- defaults, reading and validation.
#include "config.hpp"

namespace example {

namespace {
// RFC 9110 §5.6.2: a field name is a token.
bool is_token(const std::string &s) {
    if (s.empty())
        return false;
    for (unsigned char c : s) {
        const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!alnum && std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) ==
                          std::string_view::npos)
            return false;
    }
    return true;
}
} // namespace

std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base) {
    auto config = std::make_unique<Config>(base);
    gh::ConfigNode header = table.get("header");
    if (std::optional<std::string> v = header.string()) {
        if (is_token(*v))
            config->header = *v;
        else
            header.error("must be a header field name (letters, digits, -, ...)");
    }
    if (std::optional<std::string> v = table.get("value").string())
        config->value = *v; // the kernel refuses CR/LF/NUL when the header is set
    return config;
}

} // namespace example

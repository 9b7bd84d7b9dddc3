// example: configuration -- every key declared once (name, member, type, scope, example, docs);
// the declaration reads the table and prints README.md's key table.
#include "config.hpp"

namespace example {

namespace {
// RFC 9110 §5.6.2: a field name is a token.
std::string token_error(std::string_view s) {
    const bool ok = !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) {
        const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        return alnum || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) !=
                            std::string_view::npos;
    });
    return ok ? std::string() : "must be a header field name (letters, digits, -, ...)";
}
} // namespace

const gh::Keys<Config> &keys() {
    static const gh::Keys<Config> declared = std::move(
        gh::Keys<Config>("example")
            .string("header", &Config::header, gh::Scope::both,
                    "response header to set (replaces any of that name)", token_error,
                    "string (field name)")
            .example("header = \"x-served-by\"")
            .string("value", &Config::value, gh::Scope::both,
                    "its value (the kernel refuses CR, LF and NUL when the header is set)")
            .example("value = \"edge-1\""));
    return declared;
}

std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base) {
    auto config = std::make_unique<Config>(base);
    keys().read(table, *config); // errors are recorded on the nodes; checks across keys go here
    return config;
}

} // namespace example

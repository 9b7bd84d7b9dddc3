/*
 * gatehouse SDK, C++ wrapper -- query strings: percent-decoding and -encoding (RFC 3986 §2.1,
 * §2.3) and name=value pairs split at '&' (the application/x-www-form-urlencoded convention,
 * where '+' also stands for a space). Pure functions: no host calls, any thread.
 *
 * A malformed escape ("%G1", a '%' too near the end) makes the decoders return nullopt rather
 * than guess: a module that checks a decoded value must see what the application will see, and
 * applications disagree about broken escapes. Decoded bytes may be anything, NUL included.
 * Include <gatehouse/sdk.hpp> rather than this file.
 */
#ifndef GATEHOUSE_SDK_HTTP_QUERY_HPP
#define GATEHOUSE_SDK_HTTP_QUERY_HPP

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gh::http {

namespace detail {
/* RFC 3986 §2.1 HEXDIG (either case) as its value, -1 for anything else. */
inline int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
} // namespace detail

/* RFC 3986 §2.1: `s` with every %XX replaced by its octet ('+' by a space too when
 * `plus_as_space`, for form encoding), or nullopt on a malformed escape. */
inline std::optional<std::string> percent_decode(std::string_view s, bool plus_as_space = false) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%') {
            if (s.size() - i < 3) // '%' and two hex digits
                return std::nullopt;
            const int hi = detail::hex_value(s[i + 1]), lo = detail::hex_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                return std::nullopt;
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else if (s[i] == '+' && plus_as_space) {
            out.push_back(' ');
        } else {
            out.push_back(s[i]);
        }
    }
    return out;
}

/* RFC 3986 §2.1/§2.3: `s` with every octet outside the unreserved set (ALPHA DIGIT - . _ ~)
 * written as %XX (upper-case hex); a space as '+' when `space_as_plus` (form encoding). */
inline std::string percent_encode(std::string_view s, bool space_as_plus = false) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            out.push_back(c);
        } else if (c == ' ' && space_as_plus) {
            out.push_back('+');
        } else {
            out.push_back('%');
            out.push_back(hex[u >> 4]);
            out.push_back(hex[u & 0xf]);
        }
    }
    return out;
}

/* One decoded name=value pair of a query string. */
struct QueryParam {
    std::string name;
    std::string value; /* "" for "name" without '=' as well as for "name=" */
};

/* How parse_query reads a query string. */
struct QueryOptions {
    bool plus_as_space = true;      /* form encoding: '+' is a space (false: '+' is '+') */
    std::size_t max_params = 1000;  /* more pairs than this: nullopt (a bound for hostile input) */
};

/* RFC 3986 §3.4 + form encoding: the pairs of a query string (with or without its leading '?'),
 * split at '&', names and values percent-decoded; empty pairs ("a=1&&b") are skipped. nullopt on
 * a malformed escape or past `max_params`. */
inline std::optional<std::vector<QueryParam>> parse_query(std::string_view query,
                                                         QueryOptions options = {}) {
    if (!query.empty() && query.front() == '?')
        query.remove_prefix(1);
    std::vector<QueryParam> out;
    while (!query.empty()) {
        const std::size_t amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        if (!pair.empty()) {
            if (out.size() >= options.max_params)
                return std::nullopt;
            const std::size_t eq = pair.find('=');
            auto name = percent_decode(pair.substr(0, eq), options.plus_as_space);
            auto value = percent_decode(
                eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1),
                options.plus_as_space);
            if (!name || !value)
                return std::nullopt;
            out.push_back({std::move(*name), std::move(*value)});
        }
        if (amp == std::string_view::npos)
            break;
        query.remove_prefix(amp + 1);
    }
    return out;
}

/* The decoded value of the first parameter named `name` (compared after decoding), or nullopt
 * if there is none or the query is malformed. */
inline std::optional<std::string> query_value(std::string_view query, std::string_view name,
                                              QueryOptions options = {}) {
    auto params = parse_query(query, options);
    if (params)
        for (QueryParam &p : *params)
            if (p.name == name)
                return std::move(p.value);
    return std::nullopt;
}

/* RFC 3986 §3.4 + form encoding: "a=1&b=x+y" from pairs, names and values percent-encoded
 * (spaces as '+' when `space_as_plus`); no leading '?'. */
inline std::string format_query(const std::vector<QueryParam> &params, bool space_as_plus = true) {
    std::string out;
    for (const QueryParam &p : params) {
        if (!out.empty())
            out.push_back('&');
        out += percent_encode(p.name, space_as_plus);
        out.push_back('=');
        out += percent_encode(p.value, space_as_plus);
    }
    return out;
}

} // namespace gh::http

#endif // GATEHOUSE_SDK_HTTP_QUERY_HPP

/*
 * gatehouse SDK, C++ wrapper -- cookies (RFC 6265): reading a request's Cookie header (§4.2,
 * §5.4), building a Set-Cookie value (§4.1), and reading a response's Set-Cookie values the way
 * a user agent does (§5.2). Pure functions: no host calls, any thread.
 *
 * Readers are lenient where user agents are (§5.2: ignore what cannot be understood) and never
 * throw; the builder refuses (nullopt) anything a user agent would drop or misread, so a module
 * never sends a cookie that silently does not exist. Include <gatehouse/sdk.hpp> rather than
 * this file.
 */
#ifndef GATEHOUSE_SDK_HTTP_COOKIE_HPP
#define GATEHOUSE_SDK_HTTP_COOKIE_HPP

#include "gatehouse/sdk/http.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gh::http {

/* One name=value pair of a Cookie header; views of the header value. */
struct CookiePair {
    std::string_view name;
    std::string_view value; /* as sent: a quoted value keeps its quotes (§4.1.1) */
};

/* RFC 6265 §4.2.1/§5.4: the pairs of a Cookie header ("a=1; b=2"), in order. Pairs without '='
 * or with an empty name are skipped; OWS around names and values is dropped. Several Cookie
 * lines (HTTP/2) are read after joining them with "; ". */
inline std::vector<CookiePair> parse_cookie_header(std::string_view value) {
    std::vector<CookiePair> out;
    while (!value.empty()) {
        const std::size_t semi = value.find(';');
        const std::string_view pair = value.substr(0, semi);
        const std::size_t eq = pair.find('=');
        if (eq != std::string_view::npos && !trim(pair.substr(0, eq)).empty())
            out.push_back({trim(pair.substr(0, eq)), trim(pair.substr(eq + 1))});
        if (semi == std::string_view::npos)
            break;
        value.remove_prefix(semi + 1);
    }
    return out;
}

/* RFC 6265 §5.4: the value of the first cookie named `name` (case-sensitive), or nullopt. */
inline std::optional<std::string_view> cookie_value(std::string_view header,
                                                    std::string_view name) {
    for (const CookiePair &p : parse_cookie_header(header))
        if (p.name == name)
            return p.value;
    return std::nullopt;
}

/* RFC 6265bis §4.1.2.7 SameSite values. */
enum class SameSite { strict, lax, none };

/* A cookie as Set-Cookie describes it (RFC 6265 §4.1). */
struct SetCookie {
    std::string name;
    std::string value;
    std::optional<std::string> path;     /* §4.1.2.4 */
    std::optional<std::string> domain;   /* §4.1.2.3, without a leading dot */
    std::optional<int64_t> max_age;      /* §4.1.2.2, seconds; <= 0 expires it at once */
    std::optional<int64_t> expires;      /* §4.1.2.1, seconds since the epoch */
    bool secure = false;                 /* §4.1.2.5 */
    bool http_only = false;              /* §4.1.2.6 */
    std::optional<SameSite> same_site;   /* RFC 6265bis §4.1.2.7 */
};

namespace detail {
/* RFC 6265 §4.1.1 cookie-octet: US-ASCII except CTLs, whitespace, DQUOTE, comma, ';', '\'. */
inline bool cookie_octet(char c) noexcept {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f && c != '"' && c != ',' && c != ';' && c != '\\';
}
/* RFC 6265 §4.1.1 cookie-value: *cookie-octet, or the same in DQUOTEs. */
inline bool cookie_value_ok(std::string_view v) noexcept {
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"')
        v = v.substr(1, v.size() - 2);
    for (char c : v)
        if (!cookie_octet(c))
            return false;
    return true;
}
/* RFC 6265 §4.1.1 av-octet: any CHAR except CTLs or ';'. */
inline bool attribute_value_ok(std::string_view v) noexcept {
    for (char c : v) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u >= 0x7f || c == ';')
            return false;
    }
    return true;
}
} // namespace detail

/* RFC 6265 §4.1: the Set-Cookie field value for `c`, or nullopt if a user agent would drop or
 * misread it: a name that is not a token, a value or attribute with forbidden octets, a Path not
 * starting with '/', or SameSite=None without Secure (RFC 6265bis §5.6.19). */
inline std::optional<std::string> format_set_cookie(const SetCookie &c) {
    if (!is_token(c.name) || !detail::cookie_value_ok(c.value))
        return std::nullopt;
    if (c.same_site == SameSite::none && !c.secure)
        return std::nullopt;
    std::string out = c.name + "=" + c.value;
    if (c.path) {
        if (c.path->empty() || c.path->front() != '/' || !detail::attribute_value_ok(*c.path))
            return std::nullopt;
        out += "; Path=" + *c.path;
    }
    if (c.domain) {
        if (c.domain->empty() || !detail::attribute_value_ok(*c.domain))
            return std::nullopt;
        out += "; Domain=" + *c.domain;
    }
    if (c.max_age)
        out += "; Max-Age=" + std::to_string(*c.max_age);
    if (c.expires)
        out += "; Expires=" + format_http_date(*c.expires);
    if (c.secure)
        out += "; Secure";
    if (c.http_only)
        out += "; HttpOnly";
    if (c.same_site)
        out += *c.same_site == SameSite::strict ? "; SameSite=Strict"
               : *c.same_site == SameSite::lax  ? "; SameSite=Lax"
                                                : "; SameSite=None";
    return out;
}

namespace detail {
/* RFC 6265 §5.2.2: Max-Age is an optional '-' then digits; saturates instead of overflowing. */
inline std::optional<int64_t> max_age(std::string_view v) noexcept {
    const bool negative = !v.empty() && v.front() == '-';
    auto n = delta_seconds(negative ? v.substr(1) : v);
    if (!n)
        return std::nullopt;
    return negative ? -*n : *n;
}
/* RFC 6265 §5.2: one attribute of a Set-Cookie value applied to `c`; unknown ones are ignored. */
inline void apply_cookie_attribute(SetCookie &c, std::string_view name, std::string_view value) {
    if (iequals(name, "expires")) {
        if (auto t = parse_http_date(value)) // §5.2.1 reads more date forms; others are ignored
            c.expires = *t;
    } else if (iequals(name, "max-age")) {
        if (auto n = max_age(value))
            c.max_age = *n;
    } else if (iequals(name, "domain")) {
        if (!value.empty() && value.front() == '.') // §5.2.3
            value.remove_prefix(1);
        if (!value.empty())
            c.domain = lower(value);
    } else if (iequals(name, "path")) {
        if (!value.empty() && value.front() == '/') // §5.2.4: else the default path
            c.path = std::string(value);
    } else if (iequals(name, "secure")) {
        c.secure = true;
    } else if (iequals(name, "httponly")) {
        c.http_only = true;
    } else if (iequals(name, "samesite")) {
        if (iequals(value, "strict"))
            c.same_site = SameSite::strict;
        else if (iequals(value, "lax"))
            c.same_site = SameSite::lax;
        else if (iequals(value, "none"))
            c.same_site = SameSite::none;
    }
}
} // namespace detail

/* RFC 6265 §5.2: a Set-Cookie value as a user agent reads it, or nullopt when it would ignore
 * it (no '=' in the name-value pair, or an empty name). Attribute names are case-insensitive;
 * the last of each wins; unknown attributes and unreadable values are ignored. */
inline std::optional<SetCookie> parse_set_cookie(std::string_view value) {
    const std::size_t semi = value.find(';');
    const std::string_view pair = value.substr(0, semi);
    const std::size_t eq = pair.find('=');
    if (eq == std::string_view::npos || trim(pair.substr(0, eq)).empty())
        return std::nullopt;
    SetCookie c;
    c.name = std::string(trim(pair.substr(0, eq)));
    c.value = std::string(trim(pair.substr(eq + 1)));
    std::string_view rest =
        semi == std::string_view::npos ? std::string_view() : value.substr(semi + 1);
    while (!rest.empty()) {
        const std::size_t next = rest.find(';');
        const std::string_view av = rest.substr(0, next);
        const std::size_t aeq = av.find('=');
        detail::apply_cookie_attribute(c, trim(av.substr(0, aeq)),
                                       aeq == std::string_view::npos ? std::string_view()
                                                                     : trim(av.substr(aeq + 1)));
        if (next == std::string_view::npos)
            break;
        rest.remove_prefix(next + 1);
    }
    return c;
}

} // namespace gh::http

#endif // GATEHOUSE_SDK_HTTP_COOKIE_HPP

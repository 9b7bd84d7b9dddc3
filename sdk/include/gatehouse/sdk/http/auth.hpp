/*
 * gatehouse SDK, C++ wrapper -- HTTP authentication fields (RFC 9110 §11): the credentials of
 * an Authorization / Proxy-Authorization value (§11.4, §11.6.2, §11.7.2) as a scheme plus either
 * a token68 ("Bearer abc", "Basic dXNlcjpwdw==") or auth-params (Digest-style
 * `username="a", realm="b"`), and a WWW-Authenticate challenge (§11.6.1) for answers.
 * Pure functions: no host calls, any thread.
 *
 * Malformed credentials are nullopt, never a partial result: a module that authenticates must
 * not act on half a header. A token68 is returned as sent; decoding Basic's base64 is left to
 * the library the module links (the header-only SDK has no base64 decoder).
 * Include <gatehouse/sdk.hpp> rather than this file.
 */
#ifndef GATEHOUSE_SDK_HTTP_AUTH_HPP
#define GATEHOUSE_SDK_HTTP_AUTH_HPP

#include "gatehouse/sdk/http.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gh::http {

/* One auth-param: its name as sent (compare with iequals) and its value, unquoted. */
struct AuthParam {
    std::string_view name;
    std::string value;
};

/* RFC 9110 §11.4: the parsed credentials; views of the field value. */
struct Credentials {
    std::string_view scheme;  /* as sent; schemes are case-insensitive (§11.1) */
    std::string_view token68; /* empty when the credentials are auth-params or nothing */
    std::vector<AuthParam> params;

    /* RFC 9110 §11.2: the value of the parameter `name` (case-insensitive), or nullptr. */
    const std::string *param(std::string_view name) const noexcept {
        for (const AuthParam &p : params)
            if (iequals(p.name, name))
                return &p.value;
        return nullptr;
    }
    /* RFC 9110 §11.1: true if the scheme is `name` (case-insensitive). */
    bool is(std::string_view name) const noexcept { return iequals(scheme, name); }
};

namespace detail {
/* RFC 9110 §11.2 token68: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=". */
inline bool is_token68(std::string_view s) noexcept {
    std::size_t i = 0;
    while (i < s.size() && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                            (s[i] >= '0' && s[i] <= '9') ||
                            std::string_view("-._~+/").find(s[i]) != std::string_view::npos))
        ++i;
    if (i == 0)
        return false;
    while (i < s.size() && s[i] == '=')
        ++i;
    return i == s.size();
}
/* RFC 9110 §5.6.2: the end of the token starting at s[i] (i itself if there is none). */
inline std::size_t token_end(std::string_view s, std::size_t i) noexcept {
    while (i < s.size() && is_tchar(s[i]))
        ++i;
    return i;
}
/* RFC 9110 §5.6.3: past the OWS (or BWS) starting at s[i]. */
inline std::size_t skip_ows(std::string_view s, std::size_t i) noexcept {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t'))
        ++i;
    return i;
}
/* RFC 9110 §5.6.4: the quoted-string starting at s[i] == '"' unescaped, `i` moved past it;
 * nullopt if unterminated or holding a control character. */
inline std::optional<std::string> quoted_string(std::string_view s, std::size_t &i) {
    std::string out;
    for (++i; i < s.size(); ++i) {
        char c = s[i];
        if (c == '"') {
            ++i;
            return out;
        }
        if (c == '\\' && ++i < s.size())
            c = s[i];
        const auto u = static_cast<unsigned char>(c);
        if ((u < 0x20 && c != '\t') || u == 0x7f)
            return std::nullopt;
        out.push_back(c);
    }
    return std::nullopt;
}
/* RFC 9110 §11.2: #auth-param, each `token BWS "=" BWS ( token / quoted-string )`. */
inline bool auth_params(std::string_view s, std::vector<AuthParam> &out) {
    constexpr std::size_t kMaxParams = 64; // far beyond any scheme; bounds hostile input
    std::size_t i = 0;
    while (true) {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == ','))
            ++i; // empty list elements are allowed (§5.6.1)
        if (i >= s.size())
            return true;
        const std::size_t name_end = token_end(s, i);
        const std::string_view name = s.substr(i, name_end - i);
        i = skip_ows(s, name_end);
        if (name.empty() || i >= s.size() || s[i] != '=' || out.size() >= kMaxParams)
            return false;
        i = skip_ows(s, i + 1);
        std::optional<std::string> value;
        if (i < s.size() && s[i] == '"') {
            value = quoted_string(s, i);
        } else {
            const std::size_t end = token_end(s, i);
            if (end > i)
                value = std::string(s.substr(i, end - i));
            i = end;
        }
        if (!value)
            return false;
        for (const AuthParam &p : out)
            if (iequals(p.name, name))
                return false; // §11.2: each parameter name MUST only occur once
        out.push_back({name, std::move(*value)});
        i = skip_ows(s, i);
        if (i < s.size() && s[i] != ',')
            return false;
    }
}
} // namespace detail

/* RFC 9110 §11.4/§11.6.2: an Authorization (or Proxy-Authorization) value as scheme plus token68
 * or auth-params, or nullopt if malformed (no scheme, a bad parameter, an unterminated quote, a
 * parameter named twice). */
inline std::optional<Credentials> parse_credentials(std::string_view value) {
    value = trim(value);
    Credentials c;
    const std::size_t scheme_end = detail::token_end(value, 0);
    c.scheme = value.substr(0, scheme_end);
    if (c.scheme.empty())
        return std::nullopt;
    if (scheme_end == value.size())
        return c;
    if (value[scheme_end] != ' ') // 1*SP between the scheme and what follows
        return std::nullopt;
    const std::string_view rest = trim(value.substr(scheme_end));
    if (detail::is_token68(rest)) {
        c.token68 = rest;
        return c;
    }
    if (!detail::auth_params(rest, c.params))
        return std::nullopt;
    return c;
}

/* RFC 9110 §11.6.1: a WWW-Authenticate challenge, `Scheme name="value", ...` (values always as
 * quoted-strings, as §11.5 asks for realm), or nullopt if the scheme or a name is not a token or
 * a value holds a control character. */
inline std::optional<std::string> format_challenge(
    std::string_view scheme, const std::vector<std::pair<std::string, std::string>> &params = {}) {
    if (scheme.empty() || detail::token_end(scheme, 0) != scheme.size())
        return std::nullopt;
    std::string out(scheme);
    for (std::size_t n = 0; n < params.size(); ++n) {
        const auto &p = params[n];
        if (p.first.empty() || detail::token_end(p.first, 0) != p.first.size())
            return std::nullopt;
        out += n == 0 ? " " : ", ";
        out += p.first + "=\"";
        for (char c : p.second) {
            const auto u = static_cast<unsigned char>(c);
            if ((u < 0x20 && c != '\t') || u == 0x7f)
                return std::nullopt;
            if (c == '"' || c == '\\')
                out.push_back('\\');
            out.push_back(c);
        }
        out.push_back('"');
    }
    return out;
}

} // namespace gh::http

#endif // GATEHOUSE_SDK_HTTP_AUTH_HPP

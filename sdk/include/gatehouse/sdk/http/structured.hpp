/*
 * gatehouse SDK, C++ wrapper -- Structured Field Values for HTTP (RFC 8941): the data model
 * (§3), parsing (§4.2) and serialisation (§4.1) of Lists, Dictionaries and Items with their
 * Parameters. Pure functions: no host calls, any thread.
 *
 * Parsing is the RFC's algorithm: any deviation fails the whole field (nullopt), as §4.2
 * requires; serialising a value the RFC cannot represent (an integer past 15 digits, a string
 * with a control character, an invalid key or token) is nullopt too. Byte Sequences are kept as
 * their base64 text (checked against the base64 alphabet, not decoded: the header-only SDK has
 * no base64 decoder; decode with the library your module links, e.g. OpenSSL's EVP_DecodeBlock).
 * A field sent on several lines is parsed from the lines joined with ", " (§4.2).
 *
 * BareItem is a std::variant; build values with integer(), decimal(), string(), token(),
 * bytes(), boolean() rather than from literals (a C++17 variant turns "x" into a bool).
 * Include <gatehouse/sdk.hpp> rather than this file.
 */
#ifndef GATEHOUSE_SDK_HTTP_STRUCTURED_HPP
#define GATEHOUSE_SDK_HTTP_STRUCTURED_HPP

#include "gatehouse/sdk/http.hpp"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace gh::http::sf {

/* RFC 8941 §3.3.4: a Token (unquoted). */
struct Token {
    std::string value;
    bool operator==(const Token &o) const { return value == o.value; }
};
/* RFC 8941 §3.3.5: a Byte Sequence, as its base64 text (between the colons, not decoded). */
struct ByteSequence {
    std::string base64;
    bool operator==(const ByteSequence &o) const { return base64 == o.base64; }
};

/* RFC 8941 §3.3: Integer, Decimal, String, Token, Byte Sequence or Boolean. */
using BareItem = std::variant<int64_t, double, std::string, Token, ByteSequence, bool>;
/* RFC 8941 §3.1.2: ordered key -> bare item; a key set twice keeps its first place, last value. */
using Parameters = std::vector<std::pair<std::string, BareItem>>;
/* RFC 8941 §3.3: an Item: a bare item and its parameters. */
struct Item {
    BareItem value;
    Parameters params;
};
/* RFC 8941 §3.1.1: an Inner List: items in parentheses, and its own parameters. */
struct InnerList {
    std::vector<Item> items;
    Parameters params;
};
/* RFC 8941 §3.1/§3.2: a member of a List or a Dictionary. */
using Member = std::variant<Item, InnerList>;
/* RFC 8941 §3.1: a List. */
using List = std::vector<Member>;
/* RFC 8941 §3.2: an ordered Dictionary; a key set twice keeps its first place, last value. */
using Dictionary = std::vector<std::pair<std::string, Member>>;

/* Typed constructors for BareItem (RFC 8941 §3.3.1-§3.3.6). */
inline BareItem integer(int64_t v) { return BareItem(std::in_place_type<int64_t>, v); }
inline BareItem decimal(double v) { return BareItem(std::in_place_type<double>, v); }
inline BareItem string(std::string v) {
    return BareItem(std::in_place_type<std::string>, std::move(v));
}
inline BareItem token(std::string v) { return BareItem(Token{std::move(v)}); }
inline BareItem bytes(std::string base64) { return BareItem(ByteSequence{std::move(base64)}); }
inline BareItem boolean(bool v) { return BareItem(std::in_place_type<bool>, v); }

/* RFC 8941 §3.1.2/§3.2: the value of `key` in parameters, or nullptr. */
inline const BareItem *find(const Parameters &params, std::string_view key) noexcept {
    for (const auto &p : params)
        if (p.first == key)
            return &p.second;
    return nullptr;
}
/* RFC 8941 §3.2: the member named `key` of a dictionary, or nullptr. */
inline const Member *find(const Dictionary &dict, std::string_view key) noexcept {
    for (const auto &m : dict)
        if (m.first == key)
            return &m.second;
    return nullptr;
}

namespace detail {

/* RFC 5234 ALPHA, DIGIT and RFC 8941 lcalpha; base64 per RFC 4648 §4 (with '='). */
inline bool lcalpha(char c) noexcept { return c >= 'a' && c <= 'z'; }
inline bool alpha(char c) noexcept { return lcalpha(c) || (c >= 'A' && c <= 'Z'); }
inline bool digit(char c) noexcept { return c >= '0' && c <= '9'; }
inline bool base64_char(char c) noexcept {
    return alpha(c) || digit(c) || c == '+' || c == '/' || c == '=';
}
/* RFC 8941 §3.1.2 key: ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" ). */
inline bool valid_key(std::string_view k) noexcept {
    if (k.empty() || !(lcalpha(k[0]) || k[0] == '*'))
        return false;
    for (char c : k)
        if (!(lcalpha(c) || digit(c) || c == '_' || c == '-' || c == '.' || c == '*'))
            return false;
    return true;
}
/* RFC 8941 §3.3.4 sf-token: ( ALPHA / "*" ) *( tchar / ":" / "/" ). */
inline bool valid_token(std::string_view t) noexcept {
    if (t.empty() || !(alpha(t[0]) || t[0] == '*'))
        return false;
    for (char c : t)
        if (!(is_tchar(c) || c == ':' || c == '/'))
            return false;
    return true;
}

/* A cursor over the field value; every parse_* returns false (or nullopt) on failure. */
struct Parser {
    std::string_view in;
    std::size_t i = 0;

    /* True at the end of the input. */
    bool done() const noexcept { return i >= in.size(); }
    /* The next character, or NUL at the end (NUL never starts or continues anything valid). */
    char peek() const noexcept { return done() ? '\0' : in[i]; }
    /* RFC 8941 §4.2: "discard any leading SP characters". */
    void skip_sp() noexcept {
        while (!done() && in[i] == ' ')
            ++i;
    }
    /* RFC 8941 §4.2.1/§4.2.2: OWS around the commas between members. */
    void skip_ows() noexcept {
        while (!done() && (in[i] == ' ' || in[i] == '\t'))
            ++i;
    }

    /* §4.2.3.3 */
    std::optional<std::string> key() {
        if (!(lcalpha(peek()) || peek() == '*'))
            return std::nullopt;
        const std::size_t start = i;
        while (!done() && (lcalpha(in[i]) || digit(in[i]) || in[i] == '_' || in[i] == '-' ||
                           in[i] == '.' || in[i] == '*'))
            ++i;
        return std::string(in.substr(start, i - start));
    }
    /* §4.2.4 */
    std::optional<BareItem> number() {
        const bool negative = peek() == '-';
        if (negative)
            ++i;
        if (!digit(peek()))
            return std::nullopt;
        int64_t whole = 0, frac = 0;
        int whole_digits = 0, frac_digits = -1; // -1: no '.' seen (an Integer)
        for (; !done(); ++i) {
            const char c = in[i];
            if (digit(c) && frac_digits < 0) {
                if (++whole_digits > 15)
                    return std::nullopt;
                whole = whole * 10 + (c - '0');
            } else if (digit(c)) {
                if (++frac_digits > 3)
                    return std::nullopt;
                frac = frac * 10 + (c - '0');
            } else if (c == '.' && frac_digits < 0) {
                if (whole_digits > 12)
                    return std::nullopt;
                frac_digits = 0;
            } else {
                break;
            }
        }
        if (frac_digits < 0)
            return integer(negative ? -whole : whole);
        if (frac_digits == 0)
            return std::nullopt; // "1." has no fraction
        double d = static_cast<double>(whole);
        d += static_cast<double>(frac) / (frac_digits == 1 ? 10 : frac_digits == 2 ? 100 : 1000);
        return decimal(negative ? -d : d);
    }
    /* §4.2.5 */
    std::optional<BareItem> string_item() {
        std::string out;
        for (++i; !done(); ++i) {
            const char c = in[i];
            if (c == '"') {
                ++i;
                return string(std::move(out));
            }
            if (c == '\\') {
                if (++i >= in.size() || (in[i] != '"' && in[i] != '\\'))
                    return std::nullopt;
                out.push_back(in[i]);
            } else if (static_cast<unsigned char>(c) < 0x20 ||
                       static_cast<unsigned char>(c) > 0x7e) {
                return std::nullopt;
            } else {
                out.push_back(c);
            }
        }
        return std::nullopt; // unterminated
    }
    /* §4.2.6 */
    std::optional<BareItem> token_item() {
        const std::size_t start = i++;
        while (!done() && (is_tchar(in[i]) || in[i] == ':' || in[i] == '/'))
            ++i;
        return token(std::string(in.substr(start, i - start)));
    }
    /* §4.2.7 */
    std::optional<BareItem> bytes_item() {
        const std::size_t close = in.find(':', i + 1);
        if (close == std::string_view::npos)
            return std::nullopt;
        std::string_view b64 = in.substr(i + 1, close - i - 1);
        for (char c : b64)
            if (!base64_char(c))
                return std::nullopt;
        i = close + 1;
        return bytes(std::string(b64));
    }
    /* §4.2.3.1 */
    std::optional<BareItem> bare_item() {
        const char c = peek();
        if (c == '-' || digit(c))
            return number();
        if (c == '"')
            return string_item();
        if (c == '*' || alpha(c))
            return token_item();
        if (c == ':')
            return bytes_item();
        if (c == '?' && i + 1 < in.size() && (in[i + 1] == '0' || in[i + 1] == '1')) {
            i += 2;
            return boolean(in[i - 1] == '1');
        }
        return std::nullopt;
    }
    /* §4.2.3.2 */
    std::optional<Parameters> params() {
        Parameters out;
        while (peek() == ';') {
            ++i;
            skip_sp();
            auto k = key();
            if (!k)
                return std::nullopt;
            BareItem v = boolean(true);
            if (peek() == '=') {
                ++i;
                auto b = bare_item();
                if (!b)
                    return std::nullopt;
                v = std::move(*b);
            }
            set(out, std::move(*k), std::move(v));
        }
        return out;
    }
    /* §4.2.3 */
    std::optional<Item> item() {
        auto v = bare_item();
        if (!v)
            return std::nullopt;
        auto p = params();
        if (!p)
            return std::nullopt;
        return Item{std::move(*v), std::move(*p)};
    }
    /* §4.2.1.2 */
    std::optional<InnerList> inner_list() {
        InnerList out;
        ++i; // '('
        while (!done()) {
            skip_sp();
            if (peek() == ')') {
                ++i;
                auto p = params();
                if (!p)
                    return std::nullopt;
                out.params = std::move(*p);
                return out;
            }
            auto it = item();
            if (!it)
                return std::nullopt;
            out.items.push_back(std::move(*it));
            if (peek() != ' ' && peek() != ')')
                return std::nullopt;
        }
        return std::nullopt; // unterminated
    }
    /* §4.2.1.1 */
    std::optional<Member> member() {
        if (peek() == '(') {
            auto l = inner_list();
            return l ? std::optional<Member>(std::move(*l)) : std::nullopt;
        }
        auto it = item();
        return it ? std::optional<Member>(std::move(*it)) : std::nullopt;
    }
    /* After a member (§4.2.1, §4.2.2): true at the end, or past a ',' with more to come. */
    bool next_member(bool &end) {
        skip_ows();
        end = done();
        if (end)
            return true;
        if (in[i++] != ',')
            return false;
        skip_ows();
        return !done(); // a trailing comma fails
    }

    /* RFC 8941 §4.2.2/§4.2.3.2: set `key` in an ordered map, overwriting in place. */
    template <typename Value>
    static void set(std::vector<std::pair<std::string, Value>> &map, std::string key, Value v) {
        for (auto &kv : map)
            if (kv.first == key) {
                kv.second = std::move(v);
                return;
            }
        map.emplace_back(std::move(key), std::move(v));
    }
};

} // namespace detail

/* RFC 8941 §4.2.1: a List field value, or nullopt if any part of it is malformed. */
inline std::optional<List> parse_list(std::string_view value) {
    detail::Parser p{value};
    List out;
    p.skip_sp();
    for (bool end = p.done(); !end;) {
        auto m = p.member();
        if (!m)
            return std::nullopt;
        out.push_back(std::move(*m));
        if (!p.next_member(end))
            return std::nullopt;
    }
    return out;
}

/* RFC 8941 §4.2.2: a Dictionary field value, or nullopt if any part of it is malformed. */
inline std::optional<Dictionary> parse_dictionary(std::string_view value) {
    detail::Parser p{value};
    Dictionary out;
    p.skip_sp();
    for (bool end = p.done(); !end;) {
        auto k = p.key();
        if (!k)
            return std::nullopt;
        std::optional<Member> m;
        if (p.peek() == '=') {
            ++p.i;
            m = p.member();
        } else if (auto params = p.params()) { // "key;a=1" is the Boolean true with parameters
            m = Member(Item{boolean(true), std::move(*params)});
        }
        if (!m)
            return std::nullopt;
        detail::Parser::set(out, std::move(*k), std::move(*m));
        if (!p.next_member(end))
            return std::nullopt;
    }
    return out;
}

/* RFC 8941 §4.2.3: an Item field value, or nullopt if malformed. */
inline std::optional<Item> parse_item(std::string_view value) {
    detail::Parser p{value};
    p.skip_sp();
    auto it = p.item();
    p.skip_sp();
    if (!it || !p.done())
        return std::nullopt;
    return it;
}

} // namespace gh::http::sf

#include "gatehouse/sdk/http/structured_write.hpp"

#endif // GATEHOUSE_SDK_HTTP_STRUCTURED_HPP

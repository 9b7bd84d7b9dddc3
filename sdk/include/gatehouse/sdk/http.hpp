/*
 * gatehouse SDK, C++ wrapper -- small HTTP field-value helpers modules keep needing: tokens
 * (RFC 9110 §5.6.2), lists (§5.6.1), weighted lists (q-values, §12.4.2), entity tags and their
 * comparison (§8.8.3, §13.1.1, §13.1.2), delta-seconds and HTTP-dates (§5.6.7). Pure functions
 * over std::string_view: no host calls, any thread. The bigger helpers are in sdk/http/:
 * coding.hpp (content-coding negotiation), structured.hpp (RFC 8941), cookie.hpp, query.hpp and
 * auth.hpp; sdk.hpp includes them all.
 *
 * They read field values leniently in the way RFC 9110 asks recipients to (empty list elements,
 * optional whitespace, case-insensitive tokens) and report malformed input as nullopt/zero rather
 * than guessing. Include <gatehouse/sdk.hpp> rather than this file.
 */
#ifndef GATEHOUSE_SDK_HTTP_HPP
#define GATEHOUSE_SDK_HTTP_HPP

#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gh::http {

/* RFC 9110 §5.6.3: `s` without leading and trailing spaces and tabs (OWS). */
inline std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

inline char ascii_lower(char c) noexcept {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

/* ASCII case-insensitive equality (field names, tokens: RFC 9110 §5.1, §5.6.2). */
inline bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (ascii_lower(a[i]) != ascii_lower(b[i]))
            return false;
    return true;
}

inline std::string lower(std::string_view s) {
    std::string out(s);
    for (char &c : out)
        c = ascii_lower(c);
    return out;
}

/* RFC 9110 §5.6.2: true for a tchar (the characters of a token). */
inline bool is_tchar(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

/* RFC 9110 §5.6.2: true if `s` is a token (1*tchar). */
inline bool is_token(std::string_view s) noexcept {
    for (char c : s)
        if (!is_tchar(c))
            return false;
    return !s.empty();
}

/* RFC 9110 §5.6.1: the trimmed, non-empty elements of a comma-separated list. Commas inside
 * quoted strings (with backslash escapes) belong to their element. */
inline std::vector<std::string_view> split_list(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    bool quoted = false;
    for (std::size_t i = 0; i <= s.size(); ++i) {
        if (i < s.size()) {
            const char c = s[i];
            if (quoted && c == '\\') {
                ++i;
                continue;
            }
            if (c == '"')
                quoted = !quoted;
            if (c != ',' || quoted)
                continue;
        }
        std::string_view item = trim(s.substr(start, i - start));
        if (!item.empty())
            out.push_back(item);
        start = i + 1;
    }
    return out;
}

/* RFC 9110 §5.6.4: a quoted-string's content with escapes removed; other values unchanged. */
inline std::string unquote(std::string_view v) {
    if (v.size() < 2 || v.front() != '"' || v.back() != '"')
        return std::string(v);
    std::string out;
    for (std::size_t i = 1; i + 1 < v.size(); ++i) {
        if (v[i] == '\\' && i + 2 < v.size())
            ++i;
        out.push_back(v[i]);
    }
    return out;
}

/* One element of a weighted list (Accept-Encoding, TE...): its token and q-value. */
struct Weighted {
    std::string_view name; /* as written; compare with iequals */
    double q = 1.0;        /* 1 when absent; 0 when malformed (fail safe) */
};

/* RFC 9110 §12.4.2: a qvalue exactly as the grammar has it ("0", "0.5", "1", "1.000": at most
 * three decimals, never above 1), or nullopt. No strtod: no locale, no "1e-1", no "nan". */
inline std::optional<double> parse_qvalue(std::string_view v) noexcept {
    if (v.empty() || (v[0] != '0' && v[0] != '1') || v.size() > 5 ||
        (v.size() > 1 && v[1] != '.'))
        return std::nullopt;
    int thousandths = 0, scale = 100;
    for (std::size_t i = 2; i < v.size(); ++i, scale /= 10) {
        if (v[i] < '0' || v[i] > '9')
            return std::nullopt;
        thousandths += (v[i] - '0') * scale;
    }
    if (v[0] == '1' && thousandths != 0)
        return std::nullopt;
    return v[0] == '1' ? 1.0 : thousandths / 1000.0;
}

/* RFC 9110 §12.4.2: the q-value of a parameter list ("q=0.5;x=y"): 1 when absent, 0 when
 * malformed (fail safe: a weight we cannot read refuses rather than prefers). */
inline double parse_q(std::string_view params) {
    while (!params.empty()) {
        const std::size_t semi = params.find(';');
        std::string_view p = trim(params.substr(0, semi));
        if (p.size() >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=')
            return parse_qvalue(p.substr(2)).value_or(0);
        if (semi == std::string_view::npos)
            break;
        params.remove_prefix(semi + 1);
    }
    return 1;
}

/* RFC 9110 §12.4.2: the elements of a weighted list (Accept-Encoding, TE...), in order. */
inline std::vector<Weighted> weighted_list(std::string_view value) {
    std::vector<Weighted> out;
    for (std::string_view item : split_list(value)) {
        const std::size_t semi = item.find(';');
        Weighted w;
        w.name = trim(item.substr(0, semi));
        w.q = semi == std::string_view::npos ? 1.0 : parse_q(item.substr(semi + 1));
        out.push_back(w);
    }
    return out;
}

/* RFC 9110 §8.8.3: one entity tag of a list: weak flag and opaque-tag with its quotes ("*" for
 * the wildcard). */
struct EntityTag {
    bool weak = false;
    std::string_view opaque;
};

/* RFC 9110 §13.1.1/§13.1.2: the entity tags of an If-None-Match / If-Match value; commas
 * inside quotes belong to the tag. Stops at the first malformed element (what follows it cannot
 * be trusted). */
inline std::vector<EntityTag> entity_tags(std::string_view s) {
    std::vector<EntityTag> out;
    std::size_t i = 0;
    while (i < s.size()) {
        const char c = s[i];
        if (c == ' ' || c == '\t' || c == ',') {
            ++i;
            continue;
        }
        EntityTag tag;
        if (c == '*') {
            tag.opaque = s.substr(i, 1);
            out.push_back(tag);
            ++i;
            continue;
        }
        if (s.compare(i, 2, "W/") == 0) {
            tag.weak = true;
            i += 2;
        }
        if (i >= s.size() || s[i] != '"')
            break;
        const std::size_t close = s.find('"', i + 1);
        if (close == std::string_view::npos)
            break;
        tag.opaque = s.substr(i, close - i + 1);
        out.push_back(tag);
        i = close + 1;
    }
    return out;
}

/* RFC 9110 §8.8.3: an ETag field value parsed as one entity tag, or nullopt if malformed. */
inline std::optional<EntityTag> entity_tag(std::string_view etag) {
    etag = trim(etag);
    auto tags = entity_tags(etag);
    if (tags.size() != 1 || tags[0].opaque == "*" ||
        tags[0].opaque.data() + tags[0].opaque.size() != etag.data() + etag.size())
        return std::nullopt;
    return tags[0];
}

/* RFC 9110 §8.8.3.2: strong comparison -- both tags strong and their opaque-tags identical. */
inline bool strong_match(const EntityTag &a, const EntityTag &b) noexcept {
    return !a.weak && !b.weak && a.opaque != "*" && a.opaque == b.opaque;
}

/* RFC 9110 §8.8.3.2: weak comparison -- opaque-tags identical, either or both may be weak. */
inline bool weak_match(const EntityTag &a, const EntityTag &b) noexcept {
    return a.opaque != "*" && a.opaque == b.opaque;
}

/* True if `list` (an If-None-Match value) matches `etag` by weak comparison (§13.1.2), or is
 * "*" and a representation exists. */
inline bool none_match_hits(std::string_view list, std::string_view etag) {
    const auto mine = entity_tag(etag);
    for (const EntityTag &t : entity_tags(list)) {
        if (t.opaque == "*")
            return true;
        if (mine && weak_match(t, *mine))
            return true;
    }
    return false;
}

/* RFC 9110 §13.1.1: true if `list` (an If-Match value) matches the current representation's
 * `etag` by strong comparison, or is "*" and `exists`. False when the condition fails (412). */
inline bool match_hits(std::string_view list, std::string_view etag, bool exists = true) {
    const auto mine = entity_tag(etag);
    for (const EntityTag &t : entity_tags(list)) {
        if (t.opaque == "*")
            return exists;
        if (mine && strong_match(t, *mine))
            return true;
    }
    return false;
}

/* RFC 9110 §8.8.3: an entity tag as a field value: W/"opaque" or "opaque". */
inline std::string format_entity_tag(const EntityTag &tag) {
    return (tag.weak ? "W/" : "") + std::string(tag.opaque);
}

/* RFC 9110 §8.6: a plain unsigned decimal (Content-Length, delta-seconds): digits only,
 * nullopt otherwise. A value past 2^64-1 is nullopt too; callers that must saturate use
 * delta_seconds. */
inline std::optional<uint64_t> parse_uint(std::string_view value) noexcept {
    value = trim(value);
    uint64_t n = 0;
    auto r = std::from_chars(value.data(), value.data() + value.size(), n);
    if (value.empty() || r.ec != std::errc() || r.ptr != value.data() + value.size() ||
        value.front() == '+' || value.front() == '-')
        return std::nullopt;
    return n;
}

/* delta-seconds (RFC 9111 §1.2.2): 1*DIGIT; a value too large to hold saturates at 2^31. */
inline std::optional<int64_t> delta_seconds(std::string_view value) noexcept {
    if (value.empty())
        return std::nullopt;
    int64_t n = 0;
    for (char c : value) {
        if (c < '0' || c > '9')
            return std::nullopt;
        n = n * 10 + (c - '0');
        if (n > 2147483648LL)
            n = 2147483648LL;
    }
    return n;
}

namespace detail {
/* Index (0-based) of a three-letter month or day name, case-insensitive; -1 if none. */
inline int name_index(std::string_view s, const char *const *names, int count) noexcept {
    for (int i = 0; i < count; ++i)
        if (iequals(s, names[i]))
            return i;
    return -1;
}
inline bool digits(std::string_view s, int &out) noexcept {
    if (s.empty())
        return false;
    out = 0;
    for (char c : s) {
        if (c < '0' || c > '9')
            return false;
        out = out * 10 + (c - '0');
    }
    return true;
}
/* "HH:MM:SS" exactly. */
inline bool clock(std::string_view s, int &h, int &m, int &sec) noexcept {
    return s.size() == 8 && s[2] == ':' && s[5] == ':' && digits(s.substr(0, 2), h) &&
           digits(s.substr(3, 2), m) && digits(s.substr(6, 2), sec) && h < 24 && m < 60 &&
           sec < 61;
}
inline const char *const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
inline const char *const kDays[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
inline const char *const kLongDays[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                        "Friday", "Saturday", "Sunday"};
/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
inline int64_t days_from_civil(int64_t y, int m, int d) noexcept {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}
inline std::optional<int64_t> to_epoch(int64_t y, int mon, int d, int h, int m, int s) noexcept {
    if (mon < 0 || d < 1 || d > 31)
        return std::nullopt;
    return days_from_civil(y, mon + 1, d) * 86400 + h * 3600 + m * 60 + s;
}
} // namespace detail

/* An HTTP-date (RFC 9110 §5.6.7) as seconds since the epoch, or nullopt: the three forms only,
 * exactly as specified (day and month names case-insensitive, "GMT" required where the form has
 * it), because a cache must treat anything else as invalid (an invalid Expires is "expired"):
 *   IMF-fixdate  "Sun, 06 Nov 1994 08:49:37 GMT"
 *   RFC 850      "Sunday, 06-Nov-94 08:49:37 GMT" (two-digit years over 50 years ahead are in
 *                the past century, RFC 9110's rule)
 *   asctime      "Sun Nov  6 08:49:37 1994" */
inline std::optional<int64_t> parse_http_date(std::string_view v) {
    using namespace detail;
    v = trim(v);
    int d = 0, y = 0, h = 0, m = 0, s = 0;
    if (v.size() == 29 && v[3] == ',' && v[4] == ' ' && v[7] == ' ' && v[11] == ' ' &&
        v[16] == ' ' && v[25] == ' ' && iequals(v.substr(26), "GMT")) {
        if (name_index(v.substr(0, 3), kDays, 7) < 0 || !digits(v.substr(5, 2), d) ||
            !digits(v.substr(12, 4), y) || !clock(v.substr(17, 8), h, m, s))
            return std::nullopt;
        return to_epoch(y, name_index(v.substr(8, 3), kMonths, 12), d, h, m, s);
    }
    const std::size_t comma = v.find(',');
    if (comma != std::string_view::npos && comma > 3) {
        std::string_view rest = v.substr(comma + 1);
        if (name_index(v.substr(0, comma), kLongDays, 7) < 0 || rest.size() != 23 ||
            rest[0] != ' ' || rest[3] != '-' || rest[7] != '-' || rest[10] != ' ' ||
            rest[19] != ' ' || !iequals(rest.substr(20), "GMT") || !digits(rest.substr(1, 2), d) ||
            !digits(rest.substr(8, 2), y) || !clock(rest.substr(11, 8), h, m, s))
            return std::nullopt;
        y += 1900;
        std::time_t now = std::time(nullptr);
        std::tm tm{};
        ::gmtime_r(&now, &tm);
        while (y < tm.tm_year + 1900 - 50)
            y += 100;
        return to_epoch(y, name_index(rest.substr(4, 3), kMonths, 12), d, h, m, s);
    }
    if (v.size() == 24 && v[3] == ' ' && v[7] == ' ' && v[10] == ' ' && v[19] == ' ') {
        std::string_view day = v.substr(8, 2);
        if (day[0] == ' ')
            day.remove_prefix(1);
        if (name_index(v.substr(0, 3), kDays, 7) < 0 || !digits(day, d) ||
            !clock(v.substr(11, 8), h, m, s) || !digits(v.substr(20, 4), y))
            return std::nullopt;
        return to_epoch(y, name_index(v.substr(4, 3), kMonths, 12), d, h, m, s);
    }
    return std::nullopt;
}

/* RFC 9110 §5.6.7: seconds since the epoch as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"). */
inline std::string format_http_date(int64_t seconds) {
    const std::time_t t = static_cast<std::time_t>(seconds);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[40];
    const std::size_t n = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    return std::string(buf, n);
}

} // namespace gh::http

#endif // GATEHOUSE_SDK_HTTP_HPP

// compress: negotiation, media-type matching and the header rules.
#include "compress.hpp"

#include <cctype>
#include <charconv>
#include <cstdlib>

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

// Splits a comma-separated list into trimmed, non-empty elements (RFC 9110 §5.6.1).
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

// One entity tag of a list (RFC 9110 §8.8.3): weak flag and opaque-tag with its quotes.
struct EntityTag {
    bool weak = false;
    std::string_view opaque; // "\"...\"" (quotes included), or "*"
};

// The entity tags of an If-None-Match value; commas inside quotes belong to the tag. Stops at
// the first malformed element (what follows it cannot be trusted).
std::vector<EntityTag> entity_tags(std::string_view s) {
    std::vector<EntityTag> out;
    size_t i = 0;
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
        const size_t close = s.find('"', i + 1);
        if (close == std::string_view::npos)
            break;
        tag.opaque = s.substr(i, close - i + 1);
        out.push_back(tag);
        i = close + 1;
    }
    return out;
}

bool is_strong_tag(std::string_view etag) {
    return etag.size() >= 2 && etag.front() == '"' && etag.back() == '"';
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

std::optional<Coding> coding_from_name(std::string_view name) noexcept {
    if (name == "gzip")
        return Coding::gzip;
    if (name == "br")
        return Coding::br;
    return std::nullopt;
}

Negotiation negotiate(std::optional<std::string_view> accept_encoding,
                      const std::vector<Coding> &enabled) {
    Negotiation n;
    if (!accept_encoding)
        return n;
    std::optional<double> q_gzip, q_br, q_identity, q_star;
    for (std::string_view item : split_list(*accept_encoding)) {
        const size_t semi = item.find(';');
        const std::string name = lower(trim(item.substr(0, semi)));
        const double q = semi == std::string_view::npos ? 1.0 : parse_q(item.substr(semi + 1));
        std::optional<double> *slot = nullptr;
        if (name == "gzip" || name == "x-gzip")
            slot = &q_gzip;
        else if (name == "br")
            slot = &q_br;
        else if (name == "identity")
            slot = &q_identity;
        else if (name == "*")
            slot = &q_star;
        if (slot != nullptr && (!*slot || q > **slot))
            *slot = q;
    }
    // RFC 9110 §12.5.3: identity is acceptable unless refused by identity;q=0, or by *;q=0
    // without an identity entry.
    n.identity_acceptable = q_identity.value_or(q_star.value_or(1)) > 0;
    double best = 0;
    for (Coding c : enabled) {
        const std::optional<double> &explicit_q = c == Coding::gzip ? q_gzip : q_br;
        const double q = explicit_q.value_or(q_star.value_or(0));
        if (q > best) { // strictly greater: an earlier (preferred) coding keeps a tie
            best = q;
            n.coding = c;
        }
    }
    if (q_identity && *q_identity > best)
        n.coding = Coding::identity;
    return n;
}

std::string media_type(std::string_view content_type) {
    return lower(trim(content_type.substr(0, content_type.find(';'))));
}

bool type_matches(std::string_view content_type, const std::vector<std::string> &types) {
    const std::string mt = media_type(content_type);
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
    if (is_strong_tag(t))
        return "W/" + std::string(t);
    return std::string(etag);
}

std::optional<std::string> strengthen_if_none_match(std::string_view if_none_match) {
    const std::vector<EntityTag> tags = entity_tags(if_none_match);
    std::string out(trim(if_none_match));
    bool added = false;
    for (const EntityTag &t : tags) {
        if (t.opaque == "*")
            return std::nullopt; // matches any current representation already
        if (!t.weak)
            continue;
        bool listed = false;
        for (const EntityTag &u : tags)
            listed = listed || (!u.weak && u.opaque == t.opaque);
        if (listed || out.find(", " + std::string(t.opaque)) != std::string::npos)
            continue;
        out += ", ";
        out += t.opaque;
        added = true;
    }
    return added ? std::optional<std::string>(std::move(out)) : std::nullopt;
}

bool lists_weak_form(std::string_view if_none_match, std::string_view etag) {
    const std::string_view strong = trim(etag);
    if (!is_strong_tag(strong))
        return false;
    for (const EntityTag &t : entity_tags(if_none_match))
        if (t.weak && t.opaque == strong)
            return true;
    return false;
}

std::optional<uint64_t> parse_length(std::string_view value) noexcept {
    value = trim(value);
    uint64_t n = 0;
    auto r = std::from_chars(value.data(), value.data() + value.size(), n);
    if (value.empty() || r.ec != std::errc() || r.ptr != value.data() + value.size())
        return std::nullopt;
    return n;
}

} // namespace compress_filter

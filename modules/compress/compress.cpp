// compress: negotiation, media-type matching and the header rules.
#include "compress.hpp"

#include <gatehouse/sdk/http.hpp>
#include <gatehouse/sdk/http/coding.hpp>

#include <cctype>
#include <charconv>
#include <cstdlib>

namespace compress_filter {

namespace {

using gh::http::EntityTag;
using gh::http::entity_tags;
using gh::http::lower;
using gh::http::split_list;
using gh::http::trim;

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
    std::vector<std::string_view> offered;
    offered.reserve(enabled.size());
    for (Coding c : enabled)
        if (c != Coding::identity)
            offered.push_back(coding_name(c));
    // The SDK's rule, shared with cache_disk's Accept-Encoding variant key.
    const gh::http::CodingChoice choice = gh::http::negotiate_coding(accept_encoding, offered);
    Negotiation n;
    n.coding = coding_from_name(choice.coding).value_or(Coding::identity);
    n.identity_acceptable = choice.identity_acceptable;
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
    return gh::http::parse_uint(value);
}

} // namespace compress_filter

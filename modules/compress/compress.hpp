// compress: the logic of the compress filter, free of the kernel (unit-tested directly).
// Negotiation (RFC 9110 §12.5.3), media-type matching and the header rules (Vary, ETag,
// If-None-Match, Cache-Control). The encoders are in encoder.hpp, the CPU guard in cpu_guard.hpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace compress_filter {

enum class Coding { identity, gzip, br };

std::string_view coding_name(Coding c) noexcept;
// "gzip" / "br" (as written in the config's `prefer`), else nullopt.
std::optional<Coding> coding_from_name(std::string_view name) noexcept;

// The outcome of Accept-Encoding negotiation.
struct Negotiation {
    Coding coding = Coding::identity; // identity: send the response as it is
    bool identity_acceptable = true;  // false for `identity;q=0`, or `*;q=0` without identity
};

// Negotiates a request's Accept-Encoding (nullopt: header absent; several lines joined with
// ", ") against the enabled codings, listed in server preference order, by the SDK's
// gh::http::negotiate_coding (RFC 9110 §12.5.3; the rule is spelled out in
// <gatehouse/sdk/http/coding.hpp>): highest q wins (own entry, else `*`); equal q goes to the
// earlier coding in `enabled`; identity wins only with a strictly higher q (its own, else `*`'s).
// A missing header means identity (the client states no preference: RFC 9110 §12.5.3 lets us
// pick, and identity is what every browser-less client handles); an empty one means identity
// only. cache_disk keys its Accept-Encoding variants with gh::http::coding_preference_key,
// which is built on the same rule.
Negotiation negotiate(std::optional<std::string_view> accept_encoding,
                      const std::vector<Coding> &enabled);

// True if `content_type` (a Content-Type value, parameters allowed) matches one of `types`
// ("type/subtype", "type/*" or "*/*"; case-insensitive).
bool type_matches(std::string_view content_type, const std::vector<std::string> &types);

// The media type of a Content-Type value, lower-cased, without parameters.
std::string media_type(std::string_view content_type);

// True if a Cache-Control value has the no-transform directive.
bool has_no_transform(std::string_view cache_control);

// The Vary value after merging Accept-Encoding into `current` (the joined existing values, or
// empty), or nullopt when nothing has to change (already listed, or `*`).
std::optional<std::string> merge_vary(std::string_view current);

// A strong ETag made weak (W/"x"); weak or malformed ones unchanged.
std::string weaken_etag(std::string_view etag);

// If-None-Match sent upstream for a request whose client may hold our weakened tags: for every
// weak entity tag W/"x" whose strong form "x" is not listed, "x" is appended, so an origin that
// compares strongly still recognises its own tag (RFC 9110 §13.1.2 asks for weak comparison,
// which the strong form also satisfies). nullopt: nothing to add (no weak tag, or `*`).
std::optional<std::string> strengthen_if_none_match(std::string_view if_none_match);

// True if `if_none_match` lists the weak form of the strong tag `etag` (the client holds the
// compressed variant we produced), so a 304 for it must carry the weak tag too.
bool lists_weak_form(std::string_view if_none_match, std::string_view etag);

// A Content-Length value as a number; nullopt if it is not a plain decimal.
std::optional<uint64_t> parse_length(std::string_view value) noexcept;

} // namespace compress_filter

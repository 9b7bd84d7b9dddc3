// cache_disk: the RFC 9111 rules of a shared cache, free of the kernel and of the disk (unit
// tested directly): Cache-Control parsing, storability, freshness and Age, Vary variants,
// conditional requests, 304 header updates and invalidation targets.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cache_disk {

struct Field {
    std::string name;
    std::string value;
};
using Fields = std::vector<Field>;

// Every value of `name` (case-insensitive), in order.
std::vector<std::string_view> values(const Fields &fields, std::string_view name);
// The values of `name` joined with ", " (nullopt when absent).
std::optional<std::string> joined(const Fields &fields, std::string_view name);
// The first value of `name`, or nullopt.
std::optional<std::string_view> first(const Fields &fields, std::string_view name);
void remove(Fields &fields, std::string_view name);
void set(Fields &fields, std::string_view name, std::string_view value);

// Cache-Control directives (RFC 9111 §5.2) of a request or response. Names are
// case-insensitive, arguments may be tokens or quoted strings; the first occurrence of a
// directive wins. A directive whose argument is not valid delta-seconds is recorded as invalid.
struct CacheControl {
    bool no_store = false;
    bool no_cache = false;
    bool private_ = false;
    bool public_ = false;
    bool must_revalidate = false;
    bool proxy_revalidate = false;
    bool only_if_cached = false;
    bool must_understand = false;
    bool max_stale_any = false; // max-stale without a value
    bool invalid_max_age = false;
    bool invalid_s_maxage = false;
    std::optional<int64_t> max_age;
    std::optional<int64_t> s_maxage;
    std::optional<int64_t> max_stale;
    std::optional<int64_t> min_fresh;
    std::optional<int64_t> stale_while_revalidate;
    std::optional<int64_t> stale_if_error;
};
CacheControl parse_cache_control(const std::vector<std::string_view> &lines);
CacheControl cache_control(const Fields &fields);

// The directives a shared cache obeys for a response: those of the targeted field `targeted`
// (RFC 9213, e.g. "CDN-Cache-Control") when it is present and a valid Structured Field
// Dictionary -- it then replaces Cache-Control entirely -- else Cache-Control. Empty
// `targeted`: Cache-Control only.
CacheControl response_cache_control(const Fields &response, const std::string &targeted);

// Request Cache-Control, with the HTTP/1.0 `Pragma: no-cache` honoured when the request has no
// Cache-Control (RFC 9111 §5.4 lets caches do so).
CacheControl request_cache_control(const Fields &request);

// True for header fields a cache never stores: hop-by-hop fields (RFC 9110 §7.6.1) and those
// named by Connection.
bool hop_by_hop(std::string_view name);
// The fields of a response as they may be stored: hop-by-hop and Connection-listed ones removed.
Fields storable_fields(const Fields &response);

// Statuses that are heuristically cacheable (RFC 9110 §15.1).
bool cacheable_by_default(unsigned status);

// Why a response is not stored (or `stored`). Each is a metric label.
enum class Verdict {
    stored,
    method,        // not GET
    status,        // 1xx, 206, 304, or a status the cache does not understand
    no_store,      // no-store in the request or the response
    private_,      // private (a shared cache)
    authorization, // request had Authorization and nothing allows sharing it
    vary_star,     // Vary: *
    no_freshness,  // no explicit freshness and not cacheable by default
    too_large,     // over max_object_size
    set_cookie,    // Set-Cookie and the route does not store those
    busy,          // the store's budget for bodies being collected (collect_size) is spent
};
std::string_view verdict_name(Verdict v);

struct StoreRules {
    bool store_set_cookie = false; // nginx and Varnish refuse to share responses with cookies
    std::string targeted = "CDN-Cache-Control"; // RFC 9213 field obeyed over Cache-Control
};

Verdict storability(std::string_view method, unsigned status, const Fields &request,
                    const Fields &response, const StoreRules &rules);

// Timing of a stored response, in milliseconds of wall-clock time (UNIX epoch).
struct Timing {
    int64_t request_ms = 0;  // when the request that produced it went upstream
    int64_t response_ms = 0; // when its head arrived
};

struct HeuristicRules {
    unsigned percent = 10;           // of (Date - Last-Modified)
    int64_t max_seconds = 24 * 3600; // cap
    std::string targeted = "CDN-Cache-Control"; // as StoreRules::targeted
};

// Freshness lifetime in seconds (RFC 9111 §4.2.1) for a shared cache: s-maxage, max-age,
// Expires - Date, else the heuristic for cacheable-by-default statuses with Last-Modified.
// 0 when there is none (or an invalid Expires / max-age: stale).
int64_t freshness_lifetime(unsigned status, const Fields &response, const Timing &t,
                           const HeuristicRules &h);
// The same with the response's directives already parsed (response_cache_control).
int64_t freshness_lifetime(unsigned status, const Fields &response, const CacheControl &cc,
                           const Timing &t, const HeuristicRules &h);

// current_age (RFC 9111 §4.2.3) in seconds at `now_ms`, from the Age and Date of the stored
// response and its timing.
int64_t current_age(const Fields &response, const Timing &t, int64_t now_ms);

// How a stored response may be used for a request.
enum class Use {
    fresh,      // serve it
    stale_ok,   // stale, but the request's max-stale accepts it: serve it
    revalidate, // stale, or no-cache somewhere: ask the origin with validators
};

struct Freshness {
    int64_t age = 0;      // seconds
    int64_t lifetime = 0; // seconds
    bool fresh() const { return age < lifetime; }
};

Use usable(const Freshness &f, const CacheControl &request_cc, const CacheControl &response_cc);

// True for status codes RFC 9110 defines.
bool defined_status(unsigned status);

// True when a stale response may never be served without revalidation (must-revalidate,
// proxy-revalidate, s-maxage, no-cache).
bool must_revalidate(const CacheControl &response_cc);

// The request's value of one field named by Vary, normalised so equivalent requests match:
// list elements trimmed and joined with ","; Accept-Encoding reduced to the request's ranking
// of br, gzip and identity (gh::http::coding_preference_key, e.g. "br=gzip>identity"): requests
// with one key get one coding from compress, whatever its settings. "\x01" stands for an absent
// field.
std::string vary_value(const Fields &request, std::string_view name);

// The Vary field names of a response, lower-cased and sorted, without duplicates; nullopt for
// "*".
std::optional<std::vector<std::string>> vary_names(const Fields &response);

// A stored variant's recorded values for its Vary names, in the order of `names`.
std::vector<std::string> vary_values(const Fields &request, const std::vector<std::string> &names);

// True if the request accepts the response's content coding (a stored variant chosen through a
// normalised Accept-Encoding must still be one the client can decode).
bool coding_acceptable(const Fields &request, const Fields &response);

// RFC 9110 §13.1.2/§13.1.3 for a GET/HEAD served from cache: true if the request's
// If-None-Match (else If-Modified-Since) says the client's copy is current, so the answer is a
// 304.
bool client_copy_current(const Fields &request, const Fields &stored);

// The fields a 304 sends (RFC 9110 §15.4.5) taken from the stored response.
Fields not_modified_fields(const Fields &stored);

// RFC 9111 §3.2: a 304 (or HEAD) response's fields update the stored ones -- each field present
// replaces the stored field of that name, except hop-by-hop fields and Content-Length (and the
// fields the stored body depends on: Content-Encoding, Content-Range, Transfer-Encoding).
void update_stored(Fields &stored, const Fields &fresh);

// RFC 9111 §4.3.4: does a 304 match the stored response it was meant to update? (Same strong
// ETag, or same Last-Modified when neither has an ETag.)
bool validates(const Fields &stored, const Fields &not_modified);

// True for methods that are not safe (RFC 9110 §9.2.1): their non-error responses invalidate.
bool unsafe_method(std::string_view method);

// The paths of Location and Content-Location that point at the same origin as the request
// (absolute URIs with another authority are ignored); `host` is the request's host name.
std::vector<std::string> invalidation_targets(const Fields &response, std::string_view scheme,
                                              std::string_view host);

} // namespace cache_disk

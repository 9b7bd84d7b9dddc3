// cache_disk: the RFC 9111 rules (see policy.hpp).
#include "policy.hpp"

#include <gatehouse/sdk/http.hpp>
#include <gatehouse/sdk/http/coding.hpp>

#include <algorithm>
#include <cctype>
#include <iterator>

namespace cache_disk {

using gh::http::iequals;
using gh::http::lower;
using gh::http::split_list;
using gh::http::trim;

std::vector<std::string_view> values(const Fields &fields, std::string_view name) {
    std::vector<std::string_view> out;
    for (const Field &f : fields)
        if (iequals(f.name, name))
            out.push_back(f.value);
    return out;
}

std::optional<std::string> joined(const Fields &fields, std::string_view name) {
    std::optional<std::string> out;
    for (const Field &f : fields) {
        if (!iequals(f.name, name))
            continue;
        if (!out)
            out.emplace();
        else
            out->append(", ");
        out->append(f.value);
    }
    return out;
}

std::optional<std::string_view> first(const Fields &fields, std::string_view name) {
    for (const Field &f : fields)
        if (iequals(f.name, name))
            return std::string_view(f.value);
    return std::nullopt;
}

void remove(Fields &fields, std::string_view name) {
    std::erase_if(fields, [&](const Field &f) { return iequals(f.name, name); });
}

void set(Fields &fields, std::string_view name, std::string_view value) {
    for (auto it = fields.begin(); it != fields.end(); ++it)
        if (iequals(it->name, name)) {
            it->value = std::string(value);
            fields.erase(std::remove_if(it + 1, fields.end(),
                                        [&](const Field &f) { return iequals(f.name, name); }),
                         fields.end());
            return;
        }
    fields.push_back({std::string(name), std::string(value)});
}

// ---- Cache-Control ---------------------------------------------------------------------------

namespace {

void delta(std::optional<int64_t> &slot, bool *invalid, bool has_arg, std::string_view arg) {
    if (slot || (invalid && *invalid))
        return; // the first occurrence wins
    auto v = has_arg ? gh::http::delta_seconds(gh::http::unquote(arg)) : std::nullopt;
    if (v)
        slot = v;
    else if (invalid)
        *invalid = true;
}

} // namespace

CacheControl parse_cache_control(const std::vector<std::string_view> &lines) {
    CacheControl cc;
    for (std::string_view line : lines)
        for (std::string_view item : split_list(line)) {
            const size_t eq = item.find('=');
            const std::string name = lower(trim(item.substr(0, eq)));
            const bool has_arg = eq != std::string_view::npos;
            const std::string_view arg = has_arg ? trim(item.substr(eq + 1)) : std::string_view();
            if (name == "no-store")
                cc.no_store = true;
            else if (name == "no-cache")
                cc.no_cache = true; // qualified or not: the whole response is revalidated
            else if (name == "private")
                cc.private_ = true;
            else if (name == "public")
                cc.public_ = true;
            else if (name == "must-revalidate")
                cc.must_revalidate = true;
            else if (name == "proxy-revalidate")
                cc.proxy_revalidate = true;
            else if (name == "only-if-cached")
                cc.only_if_cached = true;
            else if (name == "must-understand")
                cc.must_understand = true;
            else if (name == "max-age")
                delta(cc.max_age, &cc.invalid_max_age, has_arg, arg);
            else if (name == "s-maxage")
                delta(cc.s_maxage, &cc.invalid_s_maxage, has_arg, arg);
            else if (name == "max-stale") {
                if (!has_arg)
                    cc.max_stale_any = true;
                else
                    delta(cc.max_stale, nullptr, has_arg, arg);
            } else if (name == "min-fresh")
                delta(cc.min_fresh, nullptr, has_arg, arg);
            else if (name == "stale-while-revalidate")
                delta(cc.stale_while_revalidate, nullptr, has_arg, arg);
            else if (name == "stale-if-error")
                delta(cc.stale_if_error, nullptr, has_arg, arg);
        }
    return cc;
}

CacheControl cache_control(const Fields &fields) {
    return parse_cache_control(values(fields, "cache-control"));
}

namespace {

bool lcalpha(char c) { return c >= 'a' && c <= 'z'; }
bool digit(char c) { return c >= '0' && c <= '9'; }

// A Structured Field bare item (RFC 8941 §3.3) at the start of `v`; advances past it. Only the
// shape is checked; `integer` receives a non-negative Integer's value.
bool sf_bare_item(std::string_view &v, std::optional<int64_t> &integer) {
    if (v.empty())
        return false;
    const char c = v.front();
    if (digit(c) || c == '-') {
        size_t i = c == '-' ? 1 : 0;
        const size_t start = i;
        while (i < v.size() && (digit(v[i]) || v[i] == '.'))
            ++i;
        const std::string_view num = v.substr(start, i - start);
        if (num.empty() || num.size() > 16 || !digit(num.front()))
            return false;
        if (num.find('.') == std::string_view::npos && c != '-')
            integer = gh::http::delta_seconds(num);
        v.remove_prefix(i);
        return true;
    }
    if (c == '"') {
        for (size_t i = 1; i < v.size(); ++i) {
            if (v[i] == '\\') {
                ++i;
                continue;
            }
            if (v[i] == '"') {
                v.remove_prefix(i + 1);
                return true;
            }
        }
        return false;
    }
    if (c == '?') {
        if (v.size() < 2 || (v[1] != '0' && v[1] != '1'))
            return false;
        v.remove_prefix(2);
        return true;
    }
    if (c == ':') {
        const size_t close = v.find(':', 1);
        if (close == std::string_view::npos)
            return false;
        v.remove_prefix(close + 1);
        return true;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '*') {
        size_t i = 1;
        while (i < v.size() && (std::isalnum(static_cast<unsigned char>(v[i])) ||
                                std::string_view("!#$%&'*+-.^_`|~:/").find(v[i]) !=
                                    std::string_view::npos))
            ++i;
        v.remove_prefix(i);
        return true;
    }
    return false;
}

bool sf_key(std::string_view &v, std::string &key) {
    if (v.empty() || !(lcalpha(v.front()) || v.front() == '*'))
        return false;
    size_t i = 1;
    while (i < v.size() && (lcalpha(v[i]) || digit(v[i]) || v[i] == '_' || v[i] == '-' ||
                            v[i] == '.' || v[i] == '*'))
        ++i;
    key.assign(v.substr(0, i));
    v.remove_prefix(i);
    return true;
}

// A targeted cache-control field (RFC 9213): a Structured Field Dictionary. nullopt if it does
// not parse (the whole field is then ignored); directives with a value of the wrong type are
// ignored one by one.
std::optional<CacheControl> parse_targeted(std::string_view v) {
    CacheControl cc;
    std::vector<std::string> seen;
    v = trim(v);
    while (!v.empty()) {
        std::string key;
        if (!sf_key(v, key))
            return std::nullopt;
        std::optional<int64_t> integer;
        bool has_value = false;
        if (!v.empty() && v.front() == '=') {
            v.remove_prefix(1);
            if (!sf_bare_item(v, integer))
                return std::nullopt;
            has_value = true;
        }
        while (!v.empty() && v.front() == ';') { // parameters: checked, ignored
            v.remove_prefix(1);
            v = trim(v);
            std::string pkey;
            std::optional<int64_t> ignored;
            if (!sf_key(v, pkey))
                return std::nullopt;
            if (!v.empty() && v.front() == '=') {
                v.remove_prefix(1);
                if (!sf_bare_item(v, ignored))
                    return std::nullopt;
            }
        }
        v = trim(v);
        if (!v.empty()) {
            if (v.front() != ',')
                return std::nullopt;
            v = trim(v.substr(1));
            if (v.empty())
                return std::nullopt; // trailing comma
        }
        if (std::find(seen.begin(), seen.end(), key) != seen.end())
            continue; // the first occurrence wins here too
        seen.push_back(key);
        const bool flag = !has_value; // Boolean true
        if (key == "no-store" && flag)
            cc.no_store = true;
        else if (key == "no-cache" && flag)
            cc.no_cache = true;
        else if (key == "private" && flag)
            cc.private_ = true;
        else if (key == "public" && flag)
            cc.public_ = true;
        else if (key == "must-revalidate" && flag)
            cc.must_revalidate = true;
        else if (key == "proxy-revalidate" && flag)
            cc.proxy_revalidate = true;
        else if (key == "max-age" && integer)
            cc.max_age = integer;
        else if (key == "s-maxage" && integer)
            cc.s_maxage = integer;
        else if (key == "stale-while-revalidate" && integer)
            cc.stale_while_revalidate = integer;
        else if (key == "stale-if-error" && integer)
            cc.stale_if_error = integer;
    }
    return cc;
}

} // namespace

CacheControl response_cache_control(const Fields &response, const std::string &targeted) {
    if (!targeted.empty())
        if (auto v = joined(response, targeted))
            if (auto cc = parse_targeted(*v))
                return *cc;
    return cache_control(response);
}

CacheControl request_cache_control(const Fields &request) {
    auto lines = values(request, "cache-control");
    if (!lines.empty())
        return parse_cache_control(lines);
    CacheControl cc;
    for (std::string_view p : values(request, "pragma"))
        for (std::string_view item : split_list(p))
            if (iequals(item, "no-cache"))
                cc.no_cache = true;
    return cc;
}

// ---- what is stored ----------------------------------------------------------------------------

bool hop_by_hop(std::string_view name) {
    static constexpr std::string_view names[] = {
        "connection", "keep-alive", "proxy-connection", "te",
        "transfer-encoding", "upgrade", "trailer", "proxy-authenticate",
        "proxy-authorization", "proxy-authentication-info"};
    for (std::string_view n : names)
        if (iequals(n, name))
            return true;
    return false;
}

Fields storable_fields(const Fields &response) {
    std::vector<std::string> listed;
    for (std::string_view v : values(response, "connection"))
        for (std::string_view item : split_list(v))
            listed.push_back(lower(item));
    Fields out;
    out.reserve(response.size());
    for (const Field &f : response) {
        if (hop_by_hop(f.name))
            continue;
        const std::string n = lower(f.name);
        if (std::find(listed.begin(), listed.end(), n) != listed.end())
            continue;
        out.push_back(f);
    }
    return out;
}

bool cacheable_by_default(unsigned status) {
    switch (status) {
    case 200: case 203: case 204: case 300: case 301: case 308:
    case 404: case 405: case 410: case 414: case 501:
        return true;
    default:
        return false;
    }
}

// Status codes RFC 9110 defines (what must-understand asks about).
bool defined_status(unsigned s) {
    return (s >= 200 && s <= 206) || (s >= 300 && s <= 305) || s == 307 || s == 308 ||
           (s >= 400 && s <= 417) || s == 421 || s == 422 || s == 426 || (s >= 500 && s <= 505);
}

std::string_view verdict_name(Verdict v) {
    switch (v) {
    case Verdict::stored: return "stored";
    case Verdict::method: return "method";
    case Verdict::status: return "status";
    case Verdict::no_store: return "no_store";
    case Verdict::private_: return "private";
    case Verdict::authorization: return "authorization";
    case Verdict::vary_star: return "vary_star";
    case Verdict::no_freshness: return "no_freshness";
    case Verdict::too_large: return "too_large";
    case Verdict::set_cookie: return "set_cookie";
    case Verdict::busy: return "busy";
    }
    return "status";
}

namespace {

// Statuses whose meaning this cache understands well enough to store (RFC 9111 §3: "the
// response status code is final and understood"). 206 needs range assembly, 304 is an answer
// about another response: neither is stored as such.
bool understood(unsigned status) {
    if (status < 200 || status > 599 || status == 206 || status == 304)
        return false;
    return true;
}

bool explicit_freshness(const Fields &response, const CacheControl &cc) {
    return cc.max_age || cc.s_maxage || cc.public_ || first(response, "expires").has_value();
}

} // namespace

Verdict storability(std::string_view method, unsigned status, const Fields &request,
                    const Fields &response, const StoreRules &rules) {
    if (method != "GET")
        return Verdict::method;
    if (!understood(status))
        return Verdict::status;
    const CacheControl req = request_cache_control(request);
    const CacheControl res = response_cache_control(response, rules.targeted);
    // must-understand (RFC 9111 §5.2.2.3): a status we implement overrides no-store; an unknown
    // one is never stored.
    if (res.must_understand && !defined_status(status))
        return Verdict::status;
    if (req.no_store || (res.no_store && !res.must_understand))
        return Verdict::no_store;
    if (res.private_)
        return Verdict::private_;
    if (first(request, "authorization") && !res.must_revalidate && !res.public_ && !res.s_maxage)
        return Verdict::authorization;
    if (!vary_names(response))
        return Verdict::vary_star;
    if (!explicit_freshness(response, res) && !cacheable_by_default(status) && !res.no_cache)
        return Verdict::no_freshness;
    if (!rules.store_set_cookie && first(response, "set-cookie"))
        return Verdict::set_cookie;
    // Never usable without asking the origin and nothing to ask with: not worth a file.
    if (!res.stale_while_revalidate && !res.stale_if_error && !first(response, "etag") &&
        !first(response, "last-modified") &&
        freshness_lifetime(status, response, Timing{}, HeuristicRules{0, 0, rules.targeted}) <= 0)
        return Verdict::no_freshness;
    return Verdict::stored;
}

// ---- freshness and age -------------------------------------------------------------------------

namespace {

int64_t date_or(const Fields &response, const Timing &t) {
    if (auto d = first(response, "date"))
        if (auto v = gh::http::parse_http_date(*d))
            return *v;
    return t.response_ms / 1000;
}

} // namespace

int64_t freshness_lifetime(unsigned status, const Fields &response, const Timing &t,
                           const HeuristicRules &h) {
    return freshness_lifetime(status, response, response_cache_control(response, h.targeted), t,
                              h);
}

int64_t freshness_lifetime(unsigned status, const Fields &response, const CacheControl &cc,
                           const Timing &t, const HeuristicRules &h) {
    if (cc.s_maxage)
        return *cc.s_maxage;
    if (cc.invalid_s_maxage)
        return 0;
    if (cc.max_age)
        return *cc.max_age;
    if (cc.invalid_max_age)
        return 0;
    auto expires = values(response, "expires");
    if (!expires.empty()) {
        auto e = expires.size() == 1 ? gh::http::parse_http_date(expires.front()) : std::nullopt;
        if (!e)
            return 0; // invalid (or repeated) Expires means "already expired" (RFC 9111 §5.3)
        return std::max<int64_t>(0, *e - date_or(response, t));
    }
    if (!cacheable_by_default(status) && !cc.public_)
        return 0;
    auto lm = first(response, "last-modified");
    if (!lm)
        return 0;
    auto modified = gh::http::parse_http_date(*lm);
    if (!modified)
        return 0;
    const int64_t since = date_or(response, t) - *modified;
    if (since <= 0)
        return 0;
    return std::min<int64_t>(since * h.percent / 100, h.max_seconds);
}

int64_t current_age(const Fields &response, const Timing &t, int64_t now_ms) {
    int64_t age_value = 0;
    if (auto a = first(response, "age")) {
        // The first value of the first line; anything but delta-seconds is ignored.
        const std::string_view v = trim(a->substr(0, a->find(',')));
        if (auto n = gh::http::delta_seconds(v))
            age_value = *n;
    }
    const int64_t response_s = t.response_ms / 1000;
    int64_t apparent = 0;
    if (auto d = first(response, "date"))
        if (auto v = gh::http::parse_http_date(*d))
            apparent = std::max<int64_t>(0, response_s - *v);
    const int64_t delay = std::max<int64_t>(0, (t.response_ms - t.request_ms) / 1000);
    const int64_t corrected_age = age_value + delay;
    const int64_t initial = std::max(apparent, corrected_age);
    const int64_t resident = std::max<int64_t>(0, (now_ms - t.response_ms) / 1000);
    return initial + resident;
}

bool must_revalidate(const CacheControl &cc) {
    return cc.must_revalidate || cc.proxy_revalidate || cc.s_maxage.has_value() || cc.no_cache;
}

Use usable(const Freshness &f, const CacheControl &req, const CacheControl &res) {
    if (req.no_cache || res.no_cache)
        return Use::revalidate;
    // Ages are whole seconds, so an age of 0 is up to a second old: max-age=0 (a reload)
    // always asks the origin, as every browser expects.
    if (req.max_age && (f.age > *req.max_age || *req.max_age == 0))
        return Use::revalidate;
    if (f.fresh()) {
        if (req.min_fresh && f.lifetime - f.age < *req.min_fresh)
            return Use::revalidate;
        return Use::fresh;
    }
    if (must_revalidate(res))
        return Use::revalidate;
    const int64_t staleness = f.age - f.lifetime;
    if (req.max_stale_any || (req.max_stale && staleness <= *req.max_stale))
        return Use::stale_ok;
    return Use::revalidate;
}

// ---- variants -------------------------------------------------------------------------------------

namespace {

// The codings compress can produce: the Accept-Encoding variant key ranks these and identity,
// so requests with one key get one choice from compress whatever its `prefer`, `gzip` and
// `brotli` settings (gh::http::coding_preference_key's guarantee).
constexpr std::string_view kVariantCodings[] = {"br", "gzip"};

} // namespace

std::string vary_value(const Fields &request, std::string_view name) {
    auto v = joined(request, name);
    if (!v)
        return "\x01";
    if (iequals(name, "accept-encoding"))
        return gh::http::coding_preference_key(*v, kVariantCodings, std::size(kVariantCodings));
    std::string out;
    for (std::string_view item : split_list(*v)) {
        if (!out.empty())
            out.push_back(',');
        out.append(item);
    }
    return out;
}

std::optional<std::vector<std::string>> vary_names(const Fields &response) {
    std::vector<std::string> names;
    for (std::string_view line : values(response, "vary"))
        for (std::string_view item : split_list(line)) {
            if (item == "*")
                return std::nullopt;
            names.push_back(lower(item));
        }
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    return names;
}

std::vector<std::string> vary_values(const Fields &request, const std::vector<std::string> &names) {
    std::vector<std::string> out;
    out.reserve(names.size());
    for (const std::string &n : names)
        out.push_back(vary_value(request, n));
    return out;
}

bool coding_acceptable(const Fields &request, const Fields &response) {
    auto ce = first(response, "content-encoding");
    if (!ce || iequals(trim(*ce), "identity"))
        return true; // identity is refused only by identity;q=0, which no stored variant serves
    auto ae = joined(request, "accept-encoding");
    if (!ae)
        return false; // RFC 9110 §12.5.3 would allow any coding; a cache does not guess
    return gh::http::coding_acceptable(std::string_view(*ae), trim(*ce));
}

// ---- conditionals and updates -----------------------------------------------------------------

bool client_copy_current(const Fields &request, const Fields &stored) {
    if (auto inm = joined(request, "if-none-match")) {
        auto etag = first(stored, "etag");
        return gh::http::none_match_hits(*inm, etag ? *etag : std::string_view());
    }
    auto ims = first(request, "if-modified-since");
    if (!ims)
        return false;
    auto since = gh::http::parse_http_date(*ims);
    if (!since)
        return false;
    auto lm = first(stored, "last-modified");
    auto modified = lm ? gh::http::parse_http_date(*lm) : std::nullopt;
    if (!modified) {
        auto date = first(stored, "date");
        modified = date ? gh::http::parse_http_date(*date) : std::nullopt;
    }
    return modified && *modified <= *since;
}

Fields not_modified_fields(const Fields &stored) {
    static constexpr std::string_view keep[] = {"cache-control", "content-location", "date",
                                                "etag", "expires", "vary", "last-modified",
                                                "age", "cache-status"};
    Fields out;
    for (const Field &f : stored)
        for (std::string_view k : keep)
            if (iequals(f.name, k)) {
                out.push_back(f);
                break;
            }
    return out;
}

void update_stored(Fields &stored, const Fields &fresh) {
    static constexpr std::string_view kept[] = {"content-length", "content-encoding",
                                                "content-range", "transfer-encoding"};
    const Fields incoming = storable_fields(fresh);
    std::vector<std::string> replaced;
    for (const Field &f : incoming) {
        bool skip = false;
        for (std::string_view k : kept)
            skip = skip || iequals(f.name, k);
        if (skip)
            continue;
        const std::string n = lower(f.name);
        if (std::find(replaced.begin(), replaced.end(), n) == replaced.end()) {
            remove(stored, n);
            replaced.push_back(n);
        }
        stored.push_back(f);
    }
}

bool validates(const Fields &stored, const Fields &nm) {
    auto new_tag = first(nm, "etag");
    auto old_tag = first(stored, "etag");
    if (new_tag) {
        auto a = gh::http::entity_tag(*new_tag);
        auto b = old_tag ? gh::http::entity_tag(*old_tag) : std::nullopt;
        return a && b && a->opaque == b->opaque;
    }
    if (old_tag)
        return true; // a 304 without validators refers to the one we asked about
    auto new_lm = first(nm, "last-modified");
    auto old_lm = first(stored, "last-modified");
    return !new_lm || (old_lm && trim(*old_lm) == trim(*new_lm));
}

bool unsafe_method(std::string_view method) {
    return method != "GET" && method != "HEAD" && method != "OPTIONS" && method != "TRACE";
}

std::vector<std::string> invalidation_targets(const Fields &response, std::string_view scheme,
                                              std::string_view host) {
    std::vector<std::string> out;
    for (std::string_view name : {"location", "content-location"}) {
        auto v = first(response, name);
        if (!v)
            continue;
        std::string_view uri = trim(*v);
        if (uri.empty())
            continue;
        if (uri.front() == '/' && (uri.size() < 2 || uri[1] != '/')) {
            out.emplace_back(uri);
            continue;
        }
        const size_t colon = uri.find("://");
        if (colon == std::string_view::npos)
            continue; // a relative reference other than an absolute path: not resolved
        if (!iequals(uri.substr(0, colon), scheme))
            continue;
        std::string_view rest = uri.substr(colon + 3);
        const size_t slash = rest.find('/');
        std::string_view authority = rest.substr(0, slash);
        const size_t port = authority.rfind(':');
        if (port != std::string_view::npos && authority.find(']') == std::string_view::npos)
            authority = authority.substr(0, port);
        if (!iequals(authority, host))
            continue;
        out.emplace_back(slash == std::string_view::npos ? "/" : rest.substr(slash));
    }
    return out;
}

} // namespace cache_disk

// cache_disk: serving stale -- stale-if-error (and the configured grace) when the origin fails,
// and the background request behind stale-while-revalidate (RFC 5861, RFC 9111 §4.2.4).
#include "filter.hpp"

#include <gatehouse/sdk/http.hpp>

namespace cache_disk {

namespace {

// Request fields worth repeating in a background request: end-to-end, not conditional, not
// about this client's own cache.
std::vector<std::pair<std::string, std::string>> background_fields(const Fields &request,
                                                                   const Object &o) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const Field &f : storable_fields(request)) {
        const std::string n = gh::http::lower(f.name);
        if (n.rfind("if-", 0) == 0 || n == "range" || n == "cache-control" || n == "pragma" ||
            n == "content-length" || n == "expect")
            continue;
        out.emplace_back(f.name, f.value);
    }
    if (auto etag = first(o.headers, "etag"))
        out.emplace_back("If-None-Match", std::string(*etag));
    if (auto lm = first(o.headers, "last-modified"))
        out.emplace_back("If-Modified-Since", std::string(*lm));
    return out;
}

} // namespace

bool CacheFilter::stale_if_error_ok(const Config &c, const StreamState &st) const {
    const Object &o = *st.candidate;
    const CacheControl res = response_cache_control(o.headers, c.store_rules.targeted);
    if (must_revalidate(res))
        return false; // must-revalidate, proxy-revalidate, s-maxage, no-cache: never stale
    const CacheControl req = request_cache_control(st.request);
    const int64_t staleness = current_age(o.headers, o.timing, wall_ms()) -
                              freshness_lifetime(o.status, o.headers, o.timing, c.heuristic);
    return staleness < 0 || // still fresh (revalidated only because the request asked to)
           (c.stale_if_error_s > 0 && staleness <= c.stale_if_error_s) ||
           (res.stale_if_error && staleness <= *res.stale_if_error) ||
           (req.stale_if_error && staleness <= *req.stale_if_error);
}

gh_action_t CacheFilter::on_upstream_error(gh::Stream s, const Config &c) {
    auto st = stream_state(s);
    if (!st || !st->candidate || st->invalidate || !stale_if_error_ok(c, *st))
        return GH_CONTINUE;
    revalidations_.inc({"error"});
    return serve(s, c, *st, st->candidate, "stale_if_error",
                 "; fwd=stale; detail=" + std::string(s.upstream_error()));
}

void CacheFilter::revalidate_in_background(gh::Stream s, const Config &c, const StreamState &st,
                                           ObjectPtr o) {
    const auto fields = background_fields(st.request, *o);
    gh::CalloutRequest req;
    const std::string upstream(s.upstream());
    const std::string target(s.target());
    req.upstream = upstream;
    req.method = "GET";
    req.target = target;
    for (const auto &f : fields)
        req.headers.emplace_back(f.first, f.second);
    // The completion may run after this stream and its route config are gone: it keeps copies.
    std::shared_ptr<Store> store = st.store;
    const Fields request = st.request;
    const StoreRules rules = c.store_rules;
    const uint64_t max_object = c.limits.max_object_size;
    const int64_t sent = wall_ms();
    gh_status_t rc = gh::callout(req, [this, store, o, request, rules, max_object,
                                       sent](const gh::CalloutResponse &r) {
        store->end_revalidation(o->file);
        if (!r.ok()) {
            background_.inc({"error"});
            return;
        }
        const gh_callout_response_t &raw = r.raw();
        Fields resp;
        for (size_t i = 0; i < raw.header_count; ++i)
            resp.push_back({std::string(gh::sv(raw.headers[i].name)),
                            std::string(gh::sv(raw.headers[i].value))});
        const Timing timing{sent, wall_ms()};
        if (r.status() == 304) {
            if (!validates(o->headers, resp)) {
                background_.inc({"mismatch"});
                return;
            }
            background_.inc({"not_modified"});
            load_body(store, o, [this, store, resp, timing](std::shared_ptr<const Object> obj,
                                                            std::shared_ptr<const std::string> body) {
                if (!obj)
                    return;
                auto updated = std::make_shared<Object>(*obj);
                update_stored(updated->headers, resp);
                updated->timing = timing;
                persist(store, updated, body);
            });
            return;
        }
        const unsigned status = static_cast<unsigned>(r.status());
        if (storability("GET", status, request, resp, rules) != Verdict::stored ||
            r.body().size() > max_object) {
            background_.inc({"not_stored"});
            return;
        }
        auto obj = std::make_shared<Object>();
        obj->key = o->key;
        obj->headers = storable_fields(resp);
        remove(obj->headers, "content-length");
        auto names = vary_names(obj->headers);
        if (!names) {
            background_.inc({"not_stored"});
            return;
        }
        obj->vary_names = std::move(*names);
        obj->vary_values = vary_values(request, obj->vary_names);
        obj->status = status;
        obj->timing = timing;
        obj->file = object_file(obj->key, obj->vary_values);
        persist(store, obj, std::make_shared<const std::string>(r.body()));
        background_.inc({"refreshed"});
    });
    if (rc != GH_OK) {
        store->end_revalidation(o->file);
        background_.inc({"error"});
    }
}

} // namespace cache_disk

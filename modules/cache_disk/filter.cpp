// cache_disk: the filter's hooks -- lookup, revalidation, storing, invalidation. Answering from
// the store is in serve.cpp, the admin endpoint in admin.cpp.
#include "filter.hpp"

#include <gatehouse/sdk/http.hpp>

#include <algorithm>

namespace cache_disk {

namespace {

// The stream's state lives in a shared_ptr so offload completions can outlive the stream: the
// stream context slot holds a Holder, STREAM_END marks the state ended and drops the holder; a
// completion that finds it ended never touches the stream.
struct Holder {
    std::shared_ptr<StreamState> state;
};

std::shared_ptr<StreamState> state_of(gh::Stream s) {
    auto *h = s.ctx<Holder>();
    return h ? h->state : nullptr;
}

} // namespace

std::shared_ptr<StreamState> stream_state(gh::Stream s) { return state_of(s); }

namespace {

// A copy of the request's (GH_HEADERS_REQUEST) or the response's fields.
Fields fields_of(gh::Stream s, uint32_t which) {
    Fields out;
    const size_t n = s.header_count(which);
    out.reserve(n);
    for (size_t i = 0; i < n; ++i)
        if (auto f = s.header_at(which, i))
            out.push_back({std::string(f->first), std::string(f->second)});
    return out;
}

Fields request_fields(gh::Stream s) { return fields_of(s, GH_HEADERS_REQUEST); }
Fields response_fields(gh::Stream s) { return fields_of(s, GH_HEADERS_RESPONSE); }

gh_status_t respond(gh::Stream s, unsigned status, const Fields &fields, std::string_view body) {
    std::vector<gh_header_t> raw;
    raw.reserve(fields.size());
    for (const Field &f : fields)
        raw.push_back(gh_header_t{gh::str(f.name), gh::str(f.value)});
    return gh::host().respond(s.raw(), status, raw.data(), raw.size(), gh::bytes(body));
}

// The head as the client gets it, after every filter's edits (compress's Content-Encoding,
// Vary and weak ETag); our own Cache-Status is not stored. False (and storing off) if a filter
// made it Vary: *.
bool capture_head(gh::Stream s, StreamState &st) {
    st.captured = true;
    st.headers = storable_fields(response_fields(s));
    if (auto cl = first(st.headers, "content-length"))
        if (auto n = gh::http::parse_uint(*cl))
            st.length = *n;
    remove(st.headers, "cache-status");
    remove(st.headers, "content-length");
    auto names = vary_names(st.headers);
    if (!names) {
        st.storing = false;
        return false;
    }
    st.vary_names = std::move(*names);
    return true;
}

} // namespace

CacheFilter::CacheFilter() {
    if (gh::host_has(&gh_host_api_v1::admin_handle))
        gh::host().admin_handle(gh::Host::self(), &CacheFilter::admin, this);
}

CacheFilter::~CacheFilter() {
    if (gh::host_has(&gh_host_api_v1::admin_handle))
        gh::host().admin_handle(gh::Host::self(), nullptr, nullptr);
}

std::unique_ptr<Config> CacheFilter::parse_config(gh::ConfigNode table, const Config &base) {
    return cache_disk::parse_config(table, base);
}

void CacheFilter::activate(Config &c) {
    if (c.path.empty())
        return;
    std::lock_guard lock(stores_mu_);
    std::shared_ptr<Store> store = stores_[c.path].lock();
    if (!store) {
        store = std::make_shared<Store>(c.path, c.limits);
        const std::string path = c.path;
        StoreEvents events;
        events.usage = [this, path](uint64_t b, uint64_t n, uint64_t m) {
            bytes_.set(static_cast<double>(b), {path});
            objects_.set(static_cast<double>(n), {path});
            memory_.set(static_cast<double>(m), {path});
        };
        events.evicted = [this](std::string_view reason, uint64_t n) {
            evictions_.add(static_cast<double>(n), {reason});
        };
        events.loaded = [this, path](uint64_t objects, uint64_t bad, uint64_t ms) {
            if (bad)
                read_errors_.add(static_cast<double>(bad));
            gh::log(GH_LOG_INFO, "cache_disk: " + path + ": " + std::to_string(objects) +
                                     " objects indexed in " + std::to_string(ms) + " ms (" +
                                     std::to_string(bad) + " bad files deleted)");
        };
        if (auto err = store->open(std::move(events))) {
            gh::log_error("cache_disk: " + *err + "; caching is off for this configuration");
            return;
        }
        stores_[c.path] = store;
    } else {
        store->set_limits(c.limits);
    }
    c.store = std::move(store);
}

void CacheFilter::set_status_header(gh::Stream s, const Config &c, std::string_view detail) {
    if (!c.cache_status)
        return;
    std::string v = c.cache_status_name;
    v += "; ";
    v += detail;
    s.add_header(GH_HEADERS_RESPONSE, "Cache-Status", v);
}

gh_action_t CacheFilter::only_if_cached(gh::Stream s, const Config &c) {
    requests_.inc({"only_if_cached_miss"});
    Fields fields;
    if (c.cache_status)
        fields.push_back({"Cache-Status", c.cache_status_name + "; fwd=miss; detail=only-if-cached"});
    respond(s, 504, fields, {});
    return GH_RESPOND;
}

gh_action_t CacheFilter::on_pre_upstream(gh::Stream s, const Config &c) {
    Store *active = c.active_store();
    if (!c.enabled || !active)
        return GH_CONTINUE;
    const std::string_view method = s.method();
    const bool readable = method == "GET" || method == "HEAD";
    if (!readable && !unsafe_method(method))
        return GH_CONTINUE;
    auto st = std::make_shared<StreamState>();
    st->store = active->shared_from_this();
    st->key = cache_key(c.key, s.scheme(), s.host_name(), s.path(), s.query());
    s.emplace_ctx<Holder>(Holder{st});
    if (!readable) {
        st->invalidate = true;
        return GH_CONTINUE;
    }
    st->request = request_fields(s);
    const CacheControl req_cc = request_cache_control(st->request);
    const std::vector<ObjectPtr> variants = st->store->lookup(st->key);
    ObjectPtr chosen;
    for (const ObjectPtr &o : variants) {
        if (vary_values(st->request, o->vary_names) != o->vary_values ||
            !coding_acceptable(st->request, o->headers))
            continue;
        if (!chosen || o->timing.response_ms > chosen->timing.response_ms)
            chosen = o; // the most recent matching variant (RFC 9111 §4.1)
    }
    st->request_ms = wall_ms();
    if (!chosen) {
        if (req_cc.only_if_cached)
            return only_if_cached(s, c);
        st->status_detail = variants.empty() ? "fwd=uri-miss" : "fwd=vary-miss";
        if (c.collapse && method == "GET" && !req_cc.no_store)
            if (auto waiting = collapse(s, c, st))
                return *waiting;
        requests_.inc({"miss"});
        return GH_CONTINUE;
    }
    const CacheControl res_cc = response_cache_control(chosen->headers, c.store_rules.targeted);
    Freshness f;
    f.lifetime =
        freshness_lifetime(chosen->status, chosen->headers, res_cc, chosen->timing, c.heuristic);
    f.age = current_age(chosen->headers, chosen->timing, st->request_ms);
    st->freshness = f;
    st->freshness_of = chosen.get();
    const Use use = usable(f, req_cc, res_cc);
    if (use != Use::revalidate)
        return serve(s, c, *st, chosen, use == Use::fresh ? "hit" : "stale");
    // stale-while-revalidate (RFC 5861): within the window, answer with the stale copy now and
    // let one background request bring a fresh one.
    const int64_t staleness = f.age - f.lifetime;
    if (!f.fresh() && res_cc.stale_while_revalidate && staleness <= *res_cc.stale_while_revalidate &&
        !must_revalidate(res_cc) && !req_cc.no_cache && !req_cc.max_age && !req_cc.min_fresh) {
        if (st->store->begin_revalidation(chosen->file))
            revalidate_in_background(s, c, *st, chosen);
        return serve(s, c, *st, chosen, "stale_while_revalidate");
    }
    if (req_cc.only_if_cached)
        return only_if_cached(s, c);
    // Revalidate: our validators replace the client's (we answer its conditionals ourselves).
    st->candidate = chosen;
    st->status_detail = req_cc.no_cache ? "fwd=request" : "fwd=stale";
    s.remove_header(GH_HEADERS_REQUEST, "if-none-match");
    s.remove_header(GH_HEADERS_REQUEST, "if-modified-since");
    s.remove_header(GH_HEADERS_REQUEST, "if-range");
    s.remove_header(GH_HEADERS_REQUEST, "range");
    if (auto etag = first(chosen->headers, "etag"))
        s.set_header(GH_HEADERS_REQUEST, "if-none-match", *etag);
    if (auto lm = first(chosen->headers, "last-modified"))
        s.set_header(GH_HEADERS_REQUEST, "if-modified-since", *lm);
    return GH_CONTINUE;
}

gh_action_t CacheFilter::on_response_headers(gh::Stream s, const Config &c) {
    auto st = state_of(s);
    if (!st)
        return GH_CONTINUE;
    if (st->invalidate) {
        invalidate(s, c, *st);
        return GH_CONTINUE;
    }
    st->response_ms = wall_ms();
    const unsigned status = s.response_status();
    if (st->candidate && status == 304) {
        Fields nm = response_fields(s);
        if (validates(st->candidate->headers, nm))
            return revalidated(s, c, *st);
        revalidations_.inc({"mismatch"});
    } else if (st->candidate) {
        revalidations_.inc({status >= 500 ? "error" : "modified"});
        if (status >= 500 && status <= 504 && stale_if_error_ok(c, *st))
            return serve(s, c, *st, st->candidate, "stale_if_error",
                         "; fwd=stale; fwd-status=" + std::to_string(status));
    }
    const Fields response = response_fields(s);
    Verdict v = storability(s.method(), status, st->request, response, c.store_rules);
    if (v == Verdict::stored) {
        if (auto cl = first(response, "content-length"))
            if (auto n = gh::http::parse_uint(*cl); n && *n > c.limits.max_object_size)
                v = Verdict::too_large;
    }
    std::string detail = st->status_detail.empty() ? "fwd=miss" : st->status_detail;
    if (status != 0)
        detail += "; fwd-status=" + std::to_string(status);
    if (v == Verdict::stored && status == 204) {
        // No body, so no body chunk to wait for: store the head now.
        st->status = status;
        detail += "; stored";
        if (capture_head(s, *st))
            finish_store(*st, c);
    } else if (v == Verdict::stored && s.body_subscribe(GH_DIR_RESPONSE) == GH_OK) {
        st->storing = true;
        st->status = status;
        detail += "; stored";
    } else {
        stores_total_.inc({verdict_name(v)});
        if (v != Verdict::method)
            detail += "; detail=" + std::string(verdict_name(v));
        abandon_fill(*st); // waiters go upstream themselves, all at once
    }
    set_status_header(s, c, detail);
    return GH_CONTINUE;
}

gh_action_t CacheFilter::revalidated(gh::Stream s, const Config &c, StreamState &st) {
    revalidations_.inc({"not_modified"});
    auto state = state_of(s);
    gh_stream_t *raw = s.raw();
    const Config *cfg = &c;
    const Fields nm = response_fields(s);
    const Timing timing{st.request_ms, st.response_ms};
    std::shared_ptr<Store> store = st.store;
    gh_status_t rc = load_body(
        store, st.candidate,
        [this, state, raw, cfg, nm, timing, store](std::shared_ptr<const Object> stored,
                                                   std::shared_ptr<const std::string> body) {
            if (!stored) {
                // The stored body is gone: the 304 cannot be completed from it.
                if (state->ended)
                    return;
                gh::Stream s(raw);
                requests_.inc({"miss"});
                respond(s, 502, {}, {});
                return s.resume(GH_RESPOND);
            }
            // RFC 9111 §4.3.4: the 304's fields update the stored ones, and its arrival makes
            // the object fresh again.
            auto updated = std::make_shared<Object>(*stored);
            update_stored(updated->headers, nm);
            updated->timing = timing;
            persist(store, updated, body);
            if (state->ended)
                return;
            gh::Stream s(raw);
            requests_.inc({"revalidated"});
            answer(s, *cfg, *state, *updated, *body, state->status_detail + "; fwd-status=304",
                   current_age(updated->headers, updated->timing, wall_ms()));
            s.resume(GH_RESPOND);
        });
    if (rc != GH_OK)
        return GH_CONTINUE; // the 304 goes to the client as it is
    return GH_PAUSE;
}

void CacheFilter::invalidate(gh::Stream s, const Config &c, StreamState &st) {
    const unsigned status = s.response_status();
    if (status < 200 || status >= 400)
        return;
    std::vector<std::string> keys{st.key};
    const Fields response = response_fields(s);
    for (const std::string &path : invalidation_targets(response, s.scheme(), s.host_name())) {
        const size_t q = path.find('?');
        keys.push_back(cache_key(c.key, s.scheme(), s.host_name(), path.substr(0, q),
                                 q == std::string::npos ? std::string_view()
                                                        : std::string_view(path).substr(q + 1)));
    }
    std::vector<ObjectPtr> gone;
    for (const std::string &k : keys)
        for (ObjectPtr &o : st.store->erase_key(k))
            gone.push_back(std::move(o));
    if (gone.empty())
        return;
    invalidations_.add(static_cast<double>(gone.size()));
    std::shared_ptr<Store> store = st.store;
    gh::offload(
        [store, gone] {
            for (const auto &o : gone)
                store->remove_file(o->file);
        },
        [] {});
}

int32_t CacheFilter::on_response_body(gh::Stream s, const gh::Chunk &chunk, const Config &c) {
    auto st = state_of(s);
    if (!st || !st->storing)
        return GH_BODY_PASS;
    if (!st->captured) {
        if (!capture_head(s, *st)) {
            stores_total_.inc({verdict_name(Verdict::vary_star)});
            abandon_fill(*st);
            return GH_BODY_PASS;
        }
        publish_head(*st);
    }
    const bool too_large = st->body->size() + chunk.data.size() > c.limits.max_object_size;
    if (too_large || !st->store->charge_collecting(chunk.data.size())) {
        // Over the object limit, or the store's budget for bodies being collected is spent:
        // this response is passed on without being stored.
        st->storing = false;
        stores_total_.inc({verdict_name(too_large ? Verdict::too_large : Verdict::busy)});
        abandon_fill(*st);
        st->store->release_collecting(st->charged);
        st->charged = 0;
        st->body = std::make_shared<std::string>();
        return GH_BODY_PASS;
    }
    st->charged += chunk.data.size();
    if (st->fill) {
        std::lock_guard lock(st->fill->mu); // waiters copy from it on their workers
        st->body->append(chunk.data);
        st->fill->complete = chunk.last;
    } else {
        st->body->append(chunk.data);
    }
    if (st->fill)
        notify(st->fill);
    if (chunk.last)
        finish_store(*st, c);
    return GH_BODY_PASS;
}

void CacheFilter::finish_store(StreamState &st, const Config &) {
    st.storing = false;
    auto o = std::make_shared<Object>();
    o->key = st.key;
    o->vary_names = st.vary_names;
    o->vary_values = vary_values(st.request, st.vary_names);
    o->status = st.status;
    o->headers = std::move(st.headers);
    o->timing = Timing{st.request_ms, st.response_ms};
    o->file = object_file(o->key, o->vary_values);
    stores_total_.inc({"stored"});
    st.store->release_collecting(st.charged); // the body now belongs to the index
    st.charged = 0;
    persist(st.store, o, st.body); // shared with collapsed waiters; no longer appended to
    if (st.fill) {
        if (st.status == 204) { // finished from the head: no body chunk announced it
            publish_head(st);
            std::lock_guard lock(st.fill->mu);
            st.fill->complete = true;
        }
        notify(st.fill);
        st.store->fills().finish(st.key, st.fill);
        st.fill.reset();
    }
}

void CacheFilter::persist(std::shared_ptr<Store> store, std::shared_ptr<Object> o,
                          std::shared_ptr<const std::string> body) {
    o->body_size = body->size();
    o->file_size = encode_object(*o, {}).size() + body->size();
    o->memory_body = nullptr;
    o->on_disk = false;
    std::vector<ObjectPtr> evicted;
    if (!store->reserve(o->file_size, evicted)) {
        stores_total_.inc({verdict_name(Verdict::too_large)});
        return;
    }
    // Indexed (and served from memory) at once; the file follows.
    auto pending = std::make_shared<Object>(*o);
    pending->memory_body = body;
    // Once written, a small body stays in memory too (the store trims the tier to its size).
    o->on_disk = true;
    if (body->size() <= store->limits().memory_object_max)
        o->memory_body = body;
    ObjectPtr indexed = pending;
    store->insert(indexed, o->file_size);
    auto ok = std::make_shared<bool>(false);
    gh_status_t rc = gh::offload(
        [store, o, body, evicted, ok] {
            for (const auto &e : evicted)
                store->remove_file(e->file);
            *ok = !store->write_object(*o, *body);
        },
        [this, store, o, indexed, ok] {
            if (*ok)
                bytes_written_.add(static_cast<double>(o->file_size));
            else
                write_errors_.inc();
            store->settle(indexed, *ok ? ObjectPtr(o) : nullptr);
        });
    if (rc != GH_OK) {
        write_errors_.inc();
        store->settle(indexed, nullptr);
    }
}

void CacheFilter::on_stream_end(gh::Stream s, const Config &) {
    if (auto holder = s.take_ctx<Holder>()) {
        holder->state->ended = true;
        if (holder->state->charged) { // a body being collected that will never complete
            holder->state->store->release_collecting(holder->state->charged);
            holder->state->charged = 0;
        }
        abandon_fill(*holder->state); // a leader that did not finish releases its waiters
    }
}

} // namespace cache_disk

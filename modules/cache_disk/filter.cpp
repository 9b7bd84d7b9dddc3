// cache_disk: the filter's hooks -- lookup, serving, revalidation, storing, invalidation.
#include "filter.hpp"

#include <gatehouse/sdk/http.hpp>

#include <algorithm>
#include <charconv>

namespace cache_disk {

namespace {

using gh::http::iequals;

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

Fields request_fields(gh::Stream s) {
    Fields out;
    const size_t n = s.header_count(GH_HEADERS_REQUEST);
    out.reserve(n);
    for (size_t i = 0; i < n; ++i)
        if (auto f = s.header_at(GH_HEADERS_REQUEST, i))
            out.push_back({std::string(f->first), std::string(f->second)});
    return out;
}

Fields response_fields(gh::Stream s) {
    Fields out;
    const size_t n = s.header_count(GH_HEADERS_RESPONSE);
    out.reserve(n);
    for (size_t i = 0; i < n; ++i)
        if (auto f = s.header_at(GH_HEADERS_RESPONSE, i))
            out.push_back({std::string(f->first), std::string(f->second)});
    return out;
}

gh_status_t respond(gh::Stream s, unsigned status, const Fields &fields, std::string_view body) {
    std::vector<gh_header_t> raw;
    raw.reserve(fields.size());
    for (const Field &f : fields)
        raw.push_back(gh_header_t{gh::str(f.name), gh::str(f.value)});
    return gh::host().respond(s.raw(), status, raw.data(), raw.size(), gh::bytes(body));
}

// A single satisfiable "bytes=first-last" / "bytes=first-" / "bytes=-suffix" range of a body of
// `size` bytes; nullopt for anything else (multiple ranges, other units, unsatisfiable), which
// is then answered with the whole representation (RFC 9110 §14.2 lets a server ignore Range).
std::optional<std::pair<uint64_t, uint64_t>> single_range(std::string_view range, uint64_t size) {
    range = gh::http::trim(range);
    if (range.substr(0, 6) != "bytes=" || size == 0)
        return std::nullopt;
    std::string_view spec = gh::http::trim(range.substr(6));
    if (spec.find(',') != std::string_view::npos)
        return std::nullopt;
    const size_t dash = spec.find('-');
    if (dash == std::string_view::npos)
        return std::nullopt;
    auto a = gh::http::parse_uint(spec.substr(0, dash));
    auto b = gh::http::parse_uint(spec.substr(dash + 1));
    if (dash == 0) { // suffix
        if (!b || *b == 0)
            return std::nullopt;
        const uint64_t n = std::min(*b, size);
        return std::make_pair(size - n, size - 1);
    }
    if (!a || *a >= size || (b && *b < *a))
        return std::nullopt;
    return std::make_pair(*a, b ? std::min(*b, size - 1) : size - 1);
}

// If-Range (RFC 9110 §13.1.5): the range applies only if the validator matches strongly.
bool if_range_allows(const Fields &request, const Fields &stored) {
    auto ir = first(request, "if-range");
    if (!ir)
        return true;
    auto etag = first(stored, "etag");
    auto tag = gh::http::entity_tag(*ir);
    if (tag)
        return !tag->weak && etag && gh::http::trim(*etag) == gh::http::trim(*ir);
    auto lm = first(stored, "last-modified");
    return lm && gh::http::trim(*lm) == gh::http::trim(*ir);
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

std::string ttl_param(int64_t lifetime, int64_t age) {
    return "; ttl=" + std::to_string(lifetime - age);
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

namespace {

// The value of `name` in a query string, percent-decoded ('+' stays '+': keys contain them).
std::optional<std::string> query_param(std::string_view query, std::string_view name) {
    while (!query.empty()) {
        const size_t amp = query.find('&');
        std::string_view p = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        const size_t eq = p.find('=');
        if (p.substr(0, eq) != name)
            continue;
        std::string_view v = eq == std::string_view::npos ? std::string_view() : p.substr(eq + 1);
        std::string out;
        for (size_t i = 0; i < v.size(); ++i) {
            auto hex = [](char h) {
                return h >= '0' && h <= '9'   ? h - '0'
                       : h >= 'a' && h <= 'f' ? h - 'a' + 10
                       : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                              : -1;
            };
            if (v[i] == '%' && i + 2 < v.size() &&
                hex(v[i + 1]) >= 0 && hex(v[i + 2]) >= 0) {
                out.push_back(static_cast<char>(hex(v[i + 1]) * 16 + hex(v[i + 2])));
                i += 2;
            } else {
                out.push_back(v[i]);
            }
        }
        return out;
    }
    return std::nullopt;
}

} // namespace

void CacheFilter::admin(void *self, const gh_admin_request_t *request,
                        gh_admin_response_t *response) {
    auto &me = *static_cast<CacheFilter *>(self);
    const std::string_view method = gh::sv(request->method);
    const std::string_view path = gh::sv(request->path);
    const std::string_view query = gh::sv(request->query);
    std::vector<std::shared_ptr<Store>> stores;
    {
        std::lock_guard lock(me.stores_mu_);
        for (auto &[p, weak] : me.stores_)
            if (auto s = weak.lock())
                stores.push_back(std::move(s));
    }
    auto reply = [&](unsigned status, std::string body) {
        me.admin_reply_ = std::move(body);
        response->status = status;
        response->content_type = gh::str("application/json");
        response->body = gh::bytes(me.admin_reply_);
    };
    if (path == "/stats" && method == "GET") {
        std::string out = "{\"stores\":[";
        for (size_t i = 0; i < stores.size(); ++i)
            out += (i ? "," : "") + std::string("{\"objects\":") +
                   std::to_string(stores[i]->objects()) +
                   ",\"bytes\":" + std::to_string(stores[i]->bytes()) +
                   ",\"memory_bytes\":" + std::to_string(stores[i]->memory_bytes()) + "}";
        return reply(200, out + "]}\n");
    }
    if (path != "/purge")
        return reply(404, "{\"error\":\"not found: use POST /purge?key=... or ?prefix=..., "
                          "GET /stats\"}\n");
    if (method != "POST" && method != "DELETE" && method != "PURGE")
        return reply(405, "{\"error\":\"purge with POST\"}\n");
    auto key = query_param(query, "key");
    auto prefix = query_param(query, "prefix");
    if (key.has_value() == prefix.has_value() || (prefix && prefix->empty()) ||
        (key && key->empty()))
        return reply(400, "{\"error\":\"give exactly one of key= or prefix= (non-empty)\"}\n");
    size_t purged = 0;
    for (const auto &store : stores) {
        std::vector<ObjectPtr> gone = key ? store->erase_key(*key) : store->erase_prefix(*prefix);
        purged += gone.size();
        store->discard(std::move(gone));
    }
    me.purged_.add(static_cast<double>(purged));
    return reply(200, "{\"purged\":" + std::to_string(purged) + "}\n");
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
        if (auto err = store->open()) {
            gh::log_error("cache_disk: " + *err + "; caching is off for this configuration");
            return;
        }
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
        store->set_events(std::move(events));
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

// The body of a stored object: from memory while its file is being written, else read from
// disk through the offload pool. `done(body)` runs on this worker; body is null if the file
// is gone or fails its checksum (the object is then dropped from the index).
gh_status_t CacheFilter::load_body(std::shared_ptr<Store> store, ObjectPtr o, BodyDone done) {
    if (o->memory_body) {
        auto body = o->memory_body;
        return gh::post(gh::current_worker(), [o, body, done = std::move(done)]() mutable {
            done(std::make_shared<const Object>(*o), body);
        });
    }
    auto body = std::make_shared<std::string>();
    auto read = std::make_shared<std::optional<Object>>();
    return gh::offload([store, o, body, read] { *read = store->read_object(*o, body.get()); },
                       [this, store, o, body, read, done = std::move(done)]() mutable {
                           if (!*read || (*read)->key != o->key) {
                               read_errors_.inc();
                               store->erase_object(o);
                               store->remove_file(o->file);
                               return done(nullptr, nullptr);
                           }
                           store->promote(o, body); // small and hot: next time from memory
                           done(std::make_shared<const Object>(std::move(**read)), body);
                       });
}

// What a stored object answers a request with: its status (304 for a conditional request its
// copy satisfies, 206/416 for a single byte range) and which part of the body goes out.
struct Plan {
    unsigned code = 200;
    uint64_t offset = 0;
    uint64_t length = 0;
    bool only_validators = false; // a 304 carries the fields RFC 9110 §15.4.5 lists
    std::string content_range;
};

Plan plan_answer(gh::Stream s, const StreamState &st, const Object &obj, uint64_t size) {
    Plan p;
    p.code = obj.status;
    p.length = size;
    if (p.code == 200 && client_copy_current(st.request, obj.headers)) {
        p.code = 304;
        p.only_validators = true;
        p.length = 0;
    } else if (p.code == 200 && s.method() == "GET") {
        auto range = first(st.request, "range");
        if (range && if_range_allows(st.request, obj.headers)) {
            if (auto r = single_range(*range, size)) {
                p.code = 206;
                p.content_range = "bytes " + std::to_string(r->first) + "-" +
                                  std::to_string(r->second) + "/" + std::to_string(size);
                p.offset = r->first;
                p.length = r->second - r->first + 1;
            } else if (gh::http::trim(*range).substr(0, 6) == "bytes=" &&
                       range->find(',') == std::string_view::npos) {
                p.code = 416;
                p.content_range = "bytes */" + std::to_string(size);
                p.length = 0;
            }
        }
    }
    return p;
}

// Answers the client from a stored object. With `body` the reply is complete at once; without
// (a large object streamed from its file) it is prepared with respond_stream for p.length bytes
// and the caller writes them. `age` is the object's current age. The stored fields go to the
// kernel as views (it copies them): a hit costs no copy of the head.
gh_status_t CacheFilter::answer(gh::Stream s, const Config &c, const Object &obj,
                                const Plan &p, const std::string *body,
                                std::string_view status_value, int64_t age) {
    std::vector<gh_header_t> fields;
    fields.reserve(obj.headers.size() + 3);
    const Fields kept = p.only_validators ? not_modified_fields(obj.headers) : Fields{};
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, age).ptr;
    const std::string_view age_text(digits, static_cast<size_t>(end - digits));
    std::string status;
    if (p.code != 416) {
        for (const Field &f : p.only_validators ? kept : obj.headers)
            if (!gh::http::iequals(f.name, "age") && !gh::http::iequals(f.name, "content-range"))
                fields.push_back(gh_header_t{gh::str(f.name), gh::str(f.value)});
        fields.push_back(gh_header_t{gh::str("Age"), gh::str(age_text)});
        if (c.cache_status) {
            status.reserve(c.cache_status_name.size() + 2 + status_value.size());
            status.append(c.cache_status_name).append("; ").append(status_value);
            fields.push_back(gh_header_t{gh::str("Cache-Status"), gh::str(status)});
        }
    }
    if (!p.content_range.empty())
        fields.push_back(gh_header_t{gh::str("Content-Range"), gh::str(p.content_range)});
    const bool with_body = p.code != 304 && p.code != 416 && p.code != 204;
    if (body || !with_body) {
        std::string_view out;
        if (body && with_body)
            out = std::string_view(*body).substr(p.offset, p.length);
        return gh::host().respond(s.raw(), p.code, fields.data(), fields.size(), gh::bytes(out));
    }
    return gh::host().respond_stream(s.raw(), p.code, fields.data(), fields.size(), p.length);
}

void CacheFilter::answer(gh::Stream s, const Config &c, const StreamState &st, const Object &obj,
                         const std::string &body, std::string_view status_value, int64_t age) {
    answer(s, c, obj, plan_answer(s, st, obj, body.size()), &body, status_value, age);
}

// A large object from its file: verified, then sent in pieces, each read when the client has
// taken the previous one (the reply never holds more than one piece).
struct Pump {
    std::shared_ptr<Store> store;
    std::shared_ptr<OpenObject> file;
    std::shared_ptr<StreamState> state;
    gh_stream_t *stream = nullptr;
    uint64_t next = 0;
    uint64_t end = 0;
};

void pump(const std::shared_ptr<Pump> &p) {
    if (p->state->ended)
        return; // the client went away
    constexpr uint64_t kPiece = 256 * 1024;
    const size_t n = static_cast<size_t>(std::min(kPiece, p->end - p->next));
    auto piece = std::make_shared<std::optional<std::string>>();
    gh_status_t rc = gh::offload([p, n, piece] { *piece = p->store->read_body(*p->file, p->next, n); },
                                 [p, n, piece] {
                                     if (p->state->ended)
                                         return;
                                     gh::Stream s(p->stream);
                                     if (!*piece) {
                                         s.reply_abort(); // the file went wrong under us
                                         return;
                                     }
                                     p->next += n;
                                     const bool last = p->next >= p->end;
                                     s.reply_write(**piece, last);
                                     if (!last)
                                         gh::reply_drained(p->stream, [p] { pump(p); });
                                 });
    if (rc != GH_OK)
        gh::Stream(p->stream).reply_abort();
}

gh_action_t CacheFilter::serve_from_file(gh::Stream s, const Config &c, StreamState &st,
                                         ObjectPtr o, const char *result, std::string suffix) {
    auto state = state_of(s);
    gh_stream_t *raw = s.raw();
    const Config *cfg = &c;
    std::shared_ptr<Store> store = st.store;
    auto file = std::make_shared<std::shared_ptr<OpenObject>>();
    std::string res(result);
    gh_status_t rc = gh::offload(
        [store, o, file] { *file = store->open_object(*o); },
        [this, state, raw, cfg, store, o, file, res, suffix] {
            if (state->ended)
                return;
            gh::Stream s(raw);
            if (!*file) {
                read_errors_.inc();
                store->erase_object(o);
                store->remove_file(o->file);
                requests_.inc({"miss"});
                state->status_detail = "fwd=miss; detail=unreadable";
                return s.resume(GH_CONTINUE);
            }
            const Object &obj = (*file)->meta;
            const int64_t age = current_age(obj.headers, obj.timing, wall_ms());
            const int64_t lifetime =
                freshness_lifetime(obj.status, obj.headers, obj.timing, cfg->heuristic);
            const Plan p = plan_answer(s, *state, obj, obj.body_size);
            requests_.inc({res});
            if (answer(s, *cfg, obj, p, nullptr, "hit" + ttl_param(lifetime, age) + suffix,
                       age) != GH_OK) {
                requests_.inc({"miss"});
                return s.resume(GH_CONTINUE);
            }
            s.resume(GH_RESPOND);
            const bool streamed = p.code != 304 && p.code != 416 && p.code != 204;
            if (!streamed)
                return;
            auto job = std::make_shared<Pump>(Pump{store, *file, state, raw, p.offset,
                                                   p.offset + p.length});
            // After the kernel has taken the RESPOND (it runs first: same worker, in order).
            gh::post(gh::current_worker(), [job] {
                if (job->state->ended)
                    return;
                if (job->next >= job->end || gh::Stream(job->stream).method() == "HEAD")
                    return void(gh::Stream(job->stream).reply_write({}, true));
                pump(job);
            });
        });
    if (rc != GH_OK) {
        requests_.inc({"miss"});
        st.status_detail = "fwd=miss; detail=offload-failed";
        return GH_CONTINUE;
    }
    return GH_PAUSE;
}

gh_action_t CacheFilter::serve(gh::Stream s, const Config &c, StreamState &st, ObjectPtr o,
                               const char *result, std::string suffix) {
    if (o->memory_body) { // in memory: answer now, no pause
        Freshness f = st.freshness;
        if (st.freshness_of != o.get()) {
            f.age = current_age(o->headers, o->timing, wall_ms());
            f.lifetime = freshness_lifetime(o->status, o->headers, o->timing, c.heuristic);
        }
        requests_.inc({result});
        answer(s, c, st, *o, *o->memory_body, "hit" + ttl_param(f.lifetime, f.age) + suffix,
               f.age);
        return GH_RESPOND;
    }
    if (o->body_size > c.limits.memory_object_max &&
        gh::host_has(&gh_host_api_v1::respond_stream) &&
        gh::host_has(&gh_host_api_v1::reply_drained))
        return serve_from_file(s, c, st, o, result, std::move(suffix)); // never read whole
    auto state = state_of(s);
    gh_stream_t *raw = s.raw();
    const Config *cfg = &c; // the route config outlives its streams
    std::string res(result);
    gh_status_t rc = load_body(
        st.store, o,
        [this, state, raw, cfg, res, suffix](std::shared_ptr<const Object> obj,
                                     std::shared_ptr<const std::string> body) {
            if (state->ended)
                return; // the client went away while we read
            gh::Stream s(raw);
            if (!obj) {
                requests_.inc({"miss"});
                state->status_detail = "fwd=miss; detail=unreadable";
                return s.resume(GH_CONTINUE);
            }
            const int64_t age = current_age(obj->headers, obj->timing, wall_ms());
            const int64_t lifetime =
                freshness_lifetime(obj->status, obj->headers, obj->timing, cfg->heuristic);
            requests_.inc({res});
            answer(s, *cfg, *state, *obj, *body, "hit" + ttl_param(lifetime, age) + suffix, age);
            s.resume(GH_RESPOND);
        });
    if (rc != GH_OK) {
        requests_.inc({"miss"});
        st.status_detail = "fwd=miss; detail=offload-failed";
        return GH_CONTINUE;
    }
    return GH_PAUSE;
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

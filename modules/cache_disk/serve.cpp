// cache_disk: answering from the store -- a body from memory or disk, the status a request
// gets from a stored object (304, 206, 416), and large objects streamed from their file.
#include "filter.hpp"

#include <gatehouse/sdk/http.hpp>

#include <charconv>

namespace cache_disk {

namespace {

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

std::string ttl_param(int64_t lifetime, int64_t age) {
    return "; ttl=" + std::to_string(lifetime - age);
}

} // namespace

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
    auto state = stream_state(s);
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
    auto state = stream_state(s);
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

} // namespace cache_disk

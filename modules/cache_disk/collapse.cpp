// cache_disk: request collapsing (see collapse.hpp) -- the CacheFilter members that lead,
// join, feed and release fills.
#include "filter.hpp"

namespace cache_disk {

std::optional<gh_action_t> CacheFilter::collapse(gh::Stream s, const Config &c,
                                                 const std::shared_ptr<StreamState> &st) {
    // Conditional and range requests go upstream on their own: what they get back is not the
    // whole representation a waiter could share.
    if (st->no_collapse || first(st->request, "range") || first(st->request, "if-none-match") ||
        first(st->request, "if-modified-since") || !gh::host_has(&gh_host_api_v1::respond_stream))
        return std::nullopt;
    bool leader = false;
    std::shared_ptr<Fill> fill = st->store->fills().join_or_lead(st->key, leader);
    if (leader) {
        st->fill = std::move(fill);
        return std::nullopt;
    }
    auto w = std::make_shared<Waiter>();
    w->worker = gh::current_worker();
    w->stream = s.raw();
    w->config = &c;
    w->state = st;
    {
        std::lock_guard lock(fill->mu);
        if (fill->abandoned)
            return std::nullopt;
        fill->waiters.push_back(w);
    }
    st->waiter = w;
    collapsed_.inc({"waited"});
    // Whatever the fill already has (maybe its head) is taken from the event loop.
    gh::post(w->worker, [this, fill, w] { catch_up(fill, w); });
    // Not forever: a slow origin releases the waiter to ask it itself.
    gh::start_timer(c.collapse_timeout_ms, [this, fill, w] {
        {
            std::lock_guard lock(fill->mu);
            if (w->phase != Waiter::Phase::waiting)
                return;
            w->phase = Waiter::Phase::released;
        }
        release(w, "timeout");
    });
    return GH_PAUSE;
}

void CacheFilter::release(const std::shared_ptr<Waiter> &w, const char *why) {
    if (w->state->ended)
        return;
    collapsed_.inc({why});
    requests_.inc({"miss"});
    w->state->no_collapse = true;
    gh::Stream(w->stream).resume(GH_CONTINUE);
}

void CacheFilter::publish_head(StreamState &st) {
    if (!st.fill)
        return;
    {
        std::lock_guard lock(st.fill->mu);
        st.fill->status = st.status;
        st.fill->headers = st.headers;
        st.fill->vary_names = st.vary_names;
        st.fill->vary_values = vary_values(st.request, st.vary_names);
        st.fill->length = st.length;
        st.fill->timing = Timing{st.request_ms, st.response_ms};
        st.fill->body = st.body;
        st.fill->head_ready = true;
    }
    notify(st.fill);
}

void CacheFilter::notify(const std::shared_ptr<Fill> &fill) {
    std::vector<std::shared_ptr<Waiter>> waiters;
    {
        std::lock_guard lock(fill->mu);
        waiters = fill->waiters;
    }
    for (const auto &w : waiters)
        gh::post(w->worker, [this, fill, w] { catch_up(fill, w); });
}

void CacheFilter::abandon_fill(StreamState &st) {
    if (!st.fill)
        return;
    {
        std::lock_guard lock(st.fill->mu);
        st.fill->abandoned = !st.fill->complete;
    }
    notify(st.fill);
    st.store->fills().finish(st.key, st.fill);
    st.fill.reset();
}

// On the waiter's worker: take what is new in the fill and move the waiter on.
void CacheFilter::catch_up(const std::shared_ptr<Fill> &fill, const std::shared_ptr<Waiter> &w) {
    if (w->state->ended)
        return; // the waiter's client went away
    enum class Step { none, release, attach, write, abort } step = Step::none;
    std::string piece;
    bool last = false;
    unsigned status = 0;
    Fields headers;
    uint64_t length = UINT64_MAX;
    Timing timing;
    {
        std::lock_guard lock(fill->mu);
        if (w->phase == Waiter::Phase::waiting) {
            if (fill->abandoned) {
                w->phase = Waiter::Phase::released;
                step = Step::release;
            } else if (fill->head_ready) {
                // The response must suit this request too (its Vary, its Accept-Encoding).
                const Fields &req = w->state->request;
                if (vary_values(req, fill->vary_names) == fill->vary_values &&
                    coding_acceptable(req, fill->headers)) {
                    w->phase = Waiter::Phase::attaching;
                    step = Step::attach;
                    status = fill->status;
                    headers = fill->headers;
                    length = fill->length;
                    timing = fill->timing;
                } else {
                    w->phase = Waiter::Phase::released;
                    step = Step::release;
                }
            }
        } else if (w->phase == Waiter::Phase::attached) {
            const std::string &body = *fill->body;
            if (w->sent < body.size()) {
                piece.assign(body, w->sent);
                w->sent = body.size();
                step = Step::write;
            }
            if (fill->complete) {
                last = true;
                step = Step::write;
                w->phase = Waiter::Phase::finished;
            } else if (fill->abandoned) {
                step = Step::abort;
                w->phase = Waiter::Phase::finished;
            }
        }
    }
    gh::Stream s(w->stream);
    const Config &c = *w->config;
    switch (step) {
    case Step::none:
        return;
    case Step::release:
        return release(w, "released");
    case Step::attach: {
        Fields fields = headers;
        set(fields, "Age", std::to_string(current_age(headers, timing, wall_ms())));
        if (c.cache_status)
            fields.push_back({"Cache-Status", c.cache_status_name + "; " +
                                                  w->state->status_detail + "; collapsed"});
        std::vector<std::pair<std::string_view, std::string_view>> view;
        for (const Field &f : fields)
            view.emplace_back(f.name, f.value);
        if (s.respond_stream(status, view, status == 204 ? GH_LENGTH_UNKNOWN : length) != GH_OK) {
            {
                std::lock_guard lock(fill->mu);
                w->phase = Waiter::Phase::released;
            }
            return release(w, "released");
        }
        collapsed_.inc({"served"});
        requests_.inc({"collapsed"});
        s.resume(GH_RESPOND);
        // The kernel sends the head from the event loop; the body follows after it.
        gh::post(w->worker, [this, fill, w] {
            {
                std::lock_guard lock(fill->mu);
                w->phase = Waiter::Phase::attached;
            }
            catch_up(fill, w);
        });
        return;
    }
    case Step::write:
        s.reply_write(piece, last);
        return;
    case Step::abort:
        if (!piece.empty())
            s.reply_write(piece);
        collapsed_.inc({"aborted"});
        s.reply_abort();
        return;
    }
}

} // namespace cache_disk

// waf: the filter's hooks -- feeding the engine phase by phase and acting on its decisions.
#include "filter.hpp"

#include "engine_pool.hpp"

#include <gatehouse/sdk/http/cookie.hpp>
#include <gatehouse/sdk/http/query.hpp>

#include <chrono>
#include <cstdio>
#include <random>

namespace waf {

// Per-stream state. Shared with an offloaded engine call, so a stream that ends meanwhile does
// not free the transaction under an engine thread.
struct StreamState {
    std::shared_ptr<const RuleSet> rules; // keeps the set alive as long as the transaction
    std::unique_ptr<Transaction> tx;
    const Config *config = nullptr;
    std::shared_ptr<LogWriter> audit, native;
    std::string id;
    size_t request_bytes = 0;
    bool body_held = false;        // ACCESS returned GH_HOLD for the request body
    bool response_checked = false; // phase 3 ran
    bool response_peeked = false;  // `buffer`: the kernel holds the response body for us
    bool response_judged = false;  // phase 4 ran on the held body
    bool response_stream = false;  // `stream`: phase 4 as the body passes
    bool in_offload = false;       // an engine thread has the transaction
    bool ended = false;            // STREAM_END ran (while offloaded)
    bool finished = false;         // phase 5 ran
    std::string action;            // "blocked", "redirected", "dropped" ("" = let through)
    int decision_phase = 0;
    int status = 0;
    double engine_seconds[6] = {}; // by engine phase, observed once per request at the end
    std::vector<std::string> secrets;
    bool form_body = false; // urlencoded: its values are searched for redacted names
    std::string form;       // its first kFormKept bytes
    // What the audit event needs after the stream is gone.
    std::string client, method, host, uri, route;
};

namespace {

struct Slot {
    std::shared_ptr<StreamState> st;
};

// How much of an urlencoded body is kept to find the values of redacted arguments.
constexpr size_t kFormKept = 64 * 1024;

const char *phase_label(int phase) {
    static const char *names[] = {"0", "1", "2", "3", "4", "5"};
    return phase >= 0 && phase <= 5 ? names[phase] : "0";
}

std::string_view reason(int status) {
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

// "1.2.3.4:5" or "[::1]:5" -> ip, port.
std::pair<std::string, int> split_addr(std::string_view a) {
    size_t colon = a.rfind(':');
    if (colon == std::string_view::npos)
        return {std::string(a), 0};
    std::string_view ip = a.substr(0, colon);
    if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']')
        ip = ip.substr(1, ip.size() - 2);
    return {std::string(ip), std::atoi(std::string(a.substr(colon + 1)).c_str())};
}

bool named(const std::vector<std::string> &names, std::string_view n) {
    for (const std::string &x : names)
        if (gh::http::iequals(x, n))
            return true;
    return false;
}

bool has_request_body(gh::Stream &s) {
    if (s.request_header("transfer-encoding"))
        return true;
    auto cl = s.request_header("content-length");
    return cl && *cl != "0";
}

bool type_inspected(gh::Stream &s, const Config &c) {
    auto ct = s.response_header("content-type");
    if (!ct)
        return false;
    std::string_view t = gh::http::trim(ct->substr(0, ct->find(';')));
    for (const std::string &x : c.response_types)
        if (gh::http::iequals(x, t))
            return true;
    return false;
}

void add_form_secrets(std::string_view body, const Config &c, StreamState &st) {
    if (auto params = gh::http::parse_query(body))
        for (const auto &p : *params)
            if (named(c.redact, p.name))
                st.secrets.push_back(p.value);
}

} // namespace

WafFilter::WafFilter() {
    std::random_device rd;
    id_prefix_ = (static_cast<uint64_t>(rd()) << 16) ^ rd();
    for (const char *mode : {"on", "detect"})
        inspected_.add(0, {mode});
}

std::unique_ptr<Config> WafFilter::parse_config(gh::ConfigNode table, const Config &base) {
    return waf::parse_config(table, base);
}

void WafFilter::activate(Config &c) {
    // One writer per file for the generation; routes copy the module config, so they share it.
    if (!c.audit_log.empty()) {
        c.sinks->audit = std::make_shared<LogWriter>(c.audit_log);
        if (!c.sinks->audit->error().empty())
            throw std::runtime_error(gh::cat("[filter.waf] audit_log = \"", c.audit_log,
                                             "\": cannot open: ", c.sinks->audit->error()));
    }
    if (!c.engine_log.empty()) {
        c.sinks->native = std::make_shared<LogWriter>(c.engine_log);
        if (!c.sinks->native->error().empty())
            throw std::runtime_error(gh::cat("[filter.waf] engine_log = \"", c.engine_log,
                                             "\": cannot open: ", c.sinks->native->error()));
    }
    EnginePool::get().set_slice_us(static_cast<uint64_t>(c.engine_slice_us));
    // The routes' configs were parsed before this: the cache has the whole generation.
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.2f", c.cache->compile_seconds);
    gh::log_info(gh::cat("rules loaded: ", c.cache->compiles, " rule set(s) compiled in ", seconds,
                         " s, ", c.cache->variants, " mode/paranoia variant(s) sharing them",
                         c.ruleset ? gh::cat("; default: ", rule_count(*c.ruleset), " rules, mode ",
                                             c.mode == Mode::on ? "on" : "detect", ", paranoia ",
                                             c.paranoia, c.crs ? ", CRS" : "")
                                   : std::string()));
}

void WafFilter::deactivate(Config &c) {
    // Streams still running hold their own references; the files close after the last one.
    c.sinks->audit.reset();
    c.sinks->native.reset();
}

template <class F>
void WafFilter::timed(StreamState &st, int phase, F &&f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    const std::chrono::duration<double> d = std::chrono::steady_clock::now() - t0;
    st.engine_seconds[phase] += d.count();
}

gh_action_t WafFilter::engine_failed(const Config &c, const char *where) {
    gh::log_warn(gh::cat("engine failed in ", where, "; on_error = ",
                         c.on_error == OnError::closed ? "closed: 500" : "open: let through"));
    return c.on_error == OnError::closed ? GH_ERROR : GH_CONTINUE;
}

// Act on what the engine decided in `phase` (1-4; in a header phase of the kernel).
gh_action_t WafFilter::decide(gh::Stream s, StreamState &st, int phase) {
    std::optional<Verdict> v = st.tx->verdict();
    if (!v)
        return GH_CONTINUE;
    st.decision_phase = phase;
    switch (v->action) {
    case Verdict::Action::drop:
        st.action = "dropped";
        interventions_.inc({phase_label(phase), "drop"});
        return GH_DROP;
    case Verdict::Action::redirect:
        st.action = "redirected";
        st.status = v->status;
        interventions_.inc({phase_label(phase), "redirect"});
        if (s.respond(static_cast<uint32_t>(v->status), {{"Location", v->url}}) != GH_OK)
            return GH_ERROR;
        return GH_RESPOND;
    case Verdict::Action::deny:
        break;
    }
    st.action = "blocked";
    st.status = v->status;
    interventions_.inc({phase_label(phase), "deny"});
    const std::string body = gh::cat(v->status, " ", reason(v->status), "\n");
    if (s.respond(static_cast<uint32_t>(v->status), {{"Content-Type", "text/plain"}}, body) != GH_OK)
        return GH_ERROR;
    return GH_RESPOND;
}

gh_action_t WafFilter::on_access(gh::Stream s, const Config &c) {
    if (c.mode == Mode::off || !c.ruleset)
        return GH_CONTINUE;
    if (Slot *slot = s.ctx<Slot>(); slot != nullptr && slot->st->body_held)
        return request_body_done(s, c, *slot->st); // the GH_HOLD re-run
    try {
        return start(s, c);
    } catch (const std::exception &e) {
        errors_.inc({"1"});
        gh::log_warn(gh::cat("engine: ", e.what()));
        return engine_failed(c, "phase 1");
    }
}

gh_action_t WafFilter::start(gh::Stream s, const Config &c) {
    auto st = std::make_shared<StreamState>();
    s.emplace_ctx<Slot>(Slot{st});
    st->rules = c.ruleset;
    st->config = &c;
    st->audit = c.sinks->audit;
    st->native = c.sinks->native;
    char id[40];
    std::snprintf(id, sizeof id, "%012llx-%llx", static_cast<unsigned long long>(id_prefix_),
                  static_cast<unsigned long long>(next_id_.fetch_add(1) + 1));
    st->id = id;
    st->tx = std::make_unique<Transaction>(*c.ruleset, st->id);
    st->client = std::string(s.client_addr());
    st->method = std::string(s.method());
    st->host = std::string(s.host_name());
    st->uri = std::string(s.raw_target());
    st->route = std::string(s.route());
    inspected_.inc({c.mode == Mode::on ? "on" : "detect"});

    Transaction &tx = *st->tx;
    const auto [ip, port] = split_addr(s.client_addr());
    std::string_view version = s.version();
    if (version.substr(0, 5) == "HTTP/")
        version.remove_prefix(5);
    timed(*st, 1, [&] {
        tx.connection(ip, port, "0.0.0.0", 0);
        tx.uri(s.raw_target(), s.method(), version);
        const size_t n = s.header_count(GH_HEADERS_REQUEST);
        for (size_t i = 0; i < n; ++i)
            if (auto f = s.header_at(GH_HEADERS_REQUEST, i)) {
                tx.request_header(f->first, f->second);
                if (named(c.redact, f->first) && !f->second.empty())
                    st->secrets.emplace_back(f->second);
                if (gh::http::iequals(f->first, "cookie"))
                    for (const auto &ck : gh::http::parse_cookie_header(f->second))
                        if (named(c.redact, ck.name))
                            st->secrets.emplace_back(ck.value);
            }
        tx.process_request_headers();
    });
    if (auto params = gh::http::parse_query(s.query()))
        for (const auto &p : *params)
            if (named(c.redact, p.name))
                st->secrets.push_back(p.value);
    if (gh_action_t a = decide(s, *st, 1); a != GH_CONTINUE)
        return a;
    if (c.request_body && has_request_body(s) &&
        s.body_subscribe(GH_DIR_REQUEST, GH_BODY_STREAM) == GH_OK) {
        // The kernel reads the body, hands it to on_request_body as it arrives and holds it;
        // nothing of it goes upstream before this hook, run again, allows it.
        st->body_held = true;
        auto ct = s.request_header("content-type");
        st->form_body = !c.redact.empty() && ct &&
                        gh::http::iequals(gh::http::trim(ct->substr(0, ct->find(';'))),
                                          "application/x-www-form-urlencoded");
        return GH_HOLD;
    }
    timed(*st, 2, [&] { tx.process_request_body(); });
    return decide(s, *st, 2);
}

int32_t WafFilter::on_request_body(gh::Stream s, const gh::Chunk &chunk, const Config &) {
    Slot *slot = s.ctx<Slot>();
    if (slot == nullptr || !slot->st->body_held || slot->st->in_offload)
        return GH_BODY_PASS;
    StreamState &st = *slot->st;
    st.request_bytes += chunk.data.size();
    timed(st, 2, [&] { st.tx->append_request_body(chunk.data); });
    if (st.form_body && st.form.size() < kFormKept)
        st.form.append(chunk.data.substr(0, kFormKept - st.form.size()));
    return GH_BODY_PASS;
}

gh_action_t WafFilter::request_body_done(gh::Stream s, const Config &c, StreamState &st) {
    st.body_held = false;
    if (st.form_body) {
        add_form_secrets(st.form, c, st);
        std::string().swap(st.form);
    }
    if (st.request_bytes <= c.offload_above) {
        timed(st, 2, [&] { st.tx->process_request_body(); });
        return decide(s, st, 2);
    }
    return off_worker(s, st, 2, &Transaction::process_request_body);
}

// A large body: the rules run on the engine threads (low priority) while the worker serves its
// other connections; the stream pauses and resumes with the verdict. The state is shared with
// the job, so a client that leaves meanwhile frees nothing under it.
gh_action_t WafFilter::off_worker(gh::Stream s, StreamState &st, int phase,
                                  void (Transaction::*call)()) {
    auto keep = s.ctx<Slot>()->st;
    keep->in_offload = true;
    gh_stream_t *raw = s.raw();
    const bool queued = EnginePool::get().submit(
        gh::host().current_worker(),
        [this, keep, phase, call] { timed(*keep, phase, [&] { ((*keep->tx).*call)(); }); },
        [this, keep, raw, phase] {
            keep->in_offload = false;
            if (keep->ended)
                return finish(*keep, 0, true);
            gh::Stream stream(raw);
            stream.resume(decide(stream, *keep, phase));
        });
    if (!queued) {
        keep->in_offload = false;
        timed(st, phase, [&] { ((*st.tx).*call)(); });
        return decide(s, st, phase);
    }
    return GH_PAUSE;
}

gh_action_t WafFilter::on_response_headers(gh::Stream s, const Config &c) {
    Slot *slot = s.ctx<Slot>();
    if (slot == nullptr)
        return GH_CONTINUE;
    StreamState &st = *slot->st;
    if (st.response_peeked && !st.response_judged)
        return response_body_held(s, c, st);
    if (st.response_checked)
        return GH_CONTINUE;
    st.response_checked = true;
    const int status = static_cast<int>(s.response_status());
    try {
        timed(st, 3, [&] {
            const size_t n = s.header_count(GH_HEADERS_RESPONSE);
            for (size_t i = 0; i < n; ++i)
                if (auto f = s.header_at(GH_HEADERS_RESPONSE, i))
                    st.tx->response_header(f->first, f->second);
            st.tx->process_response_headers(status, "HTTP 1.1");
        });
    } catch (const std::exception &e) {
        errors_.inc({"3"});
        gh::log_warn(gh::cat("engine: ", e.what()));
        return engine_failed(c, "phase 3");
    }
    if (gh_action_t a = decide(s, st, 3); a != GH_CONTINUE)
        return a;
    if (c.response_body == ResponseBody::off || !type_inspected(s, c))
        return GH_CONTINUE;
    const bool bodiless = s.method() == "HEAD" || status == 204 || status == 304 || status < 200;
    if (!bodiless && s.body_subscribe(GH_DIR_RESPONSE, GH_BODY_STREAM) == GH_OK) {
        if (c.response_body == ResponseBody::stream) {
            st.response_stream = true;
            return GH_CONTINUE;
        }
        if (s.body_peek(GH_DIR_RESPONSE, GH_PEEK_WHOLE) == GH_OK) {
            // Nothing of the response leaves until this hook, run again, judged the body.
            st.response_peeked = true;
            return GH_HOLD;
        }
    }
    timed(st, 4, [&] { st.tx->process_response_body(); });
    return decide(s, st, 4);
}

gh_action_t WafFilter::response_body_held(gh::Stream s, const Config &c, StreamState &st) {
    st.response_judged = true;
    auto held = s.body_held(GH_DIR_RESPONSE);
    const std::string_view body = held ? *held : std::string_view();
    timed(st, 4, [&] { st.tx->append_response_body(body); });
    if (body.size() <= c.offload_above) {
        timed(st, 4, [&] { st.tx->process_response_body(); });
        return decide(s, st, 4);
    }
    return off_worker(s, st, 4, &Transaction::process_response_body);
}

int32_t WafFilter::on_response_body(gh::Stream s, const gh::Chunk &chunk, const Config &) {
    Slot *slot = s.ctx<Slot>();
    if (slot == nullptr || !slot->st->response_stream)
        return GH_BODY_PASS;
    StreamState &st = *slot->st;
    timed(st, 4, [&] { st.tx->append_response_body(chunk.data); });
    if (!chunk.last)
        return GH_BODY_PASS;
    st.response_stream = false;
    timed(st, 4, [&] { st.tx->process_response_body(); });
    std::optional<Verdict> v = st.tx->verdict();
    if (!v)
        return GH_BODY_PASS;
    // The head and most of the body are out: all that is left is to cut the response short.
    st.action = "blocked";
    st.decision_phase = 4;
    st.status = static_cast<int>(s.response_status());
    interventions_.inc({"4", "close"});
    return GH_BODY_ABORT;
}

void WafFilter::count_hits(const StreamState &st) {
    for (const Hit &h : st.tx->hits()) {
        bool own;
        {
            std::lock_guard g(hit_ids_lock_);
            own = hit_ids_.count(h.id) != 0 || (hit_ids_.size() < 500 && hit_ids_.insert(h.id).second);
        }
        hits_.inc({own ? std::to_string(h.id) : std::string("other")});
    }
}

void WafFilter::finish(StreamState &st, int status, bool aborted) {
    if (st.finished)
        return;
    st.finished = true;
    if (status > 0)
        st.tx->update_status(status);
    timed(st, 5, [&] { st.tx->process_logging(); });
    for (int phase = 1; phase <= 5; ++phase)
        if (st.engine_seconds[phase] > 0)
            engine_time_.observe(st.engine_seconds[phase], {phase_label(phase)});
    const Config &c = *st.config;
    const auto &hits = st.tx->hits();
    if (hits.empty() && st.action.empty())
        return;
    count_hits(st);
    if (c.mode == Mode::detect && !hits.empty())
        detected_.inc({phase_label(hits.front().phase)});
    if (st.native)
        for (const Hit &h : hits)
            st.native->write(h.line);
    if (!st.audit)
        return;
    AuditInput in;
    in.id = st.id;
    in.client = st.client;
    in.method = st.method;
    in.host = st.host;
    in.uri = st.uri;
    in.route = st.route;
    in.mode = c.mode == Mode::on ? "on" : "detect";
    in.action = !st.action.empty() ? st.action
                : aborted          ? "aborted"
                : c.mode == Mode::detect ? "detected"
                                         : "passed";
    in.phase = st.decision_phase;
    in.status = st.status ? st.status : status;
    in.inbound_score = st.tx->tx("anomaly_score");
    in.outbound_score = st.tx->tx("outbound_anomaly_score");
    in.hits = &hits;
    in.secret_values = st.secrets;
    in.redact_names = &c.redact;
    in.match_max = c.match_max;
    st.audit->write(audit_event(in));
    if (uint64_t d = st.audit->take_dropped())
        audit_dropped_.add(static_cast<double>(d));
}

void WafFilter::on_log(gh::Stream s, const Config &) {
    Slot *slot = s.ctx<Slot>();
    if (slot == nullptr || slot->st->in_offload)
        return;
    StreamState &st = *slot->st;
    finish(st, static_cast<int>(s.response_status()), false);
    if (!st.tx->hits().empty() || !st.action.empty()) {
        s.log_field("id", st.id);
        std::string ids;
        for (const Hit &h : st.tx->hits()) {
            if (!ids.empty())
                ids += ',';
            ids += std::to_string(h.id);
        }
        if (!ids.empty())
            s.log_field("rules", ids.substr(0, 1024));
        if (!st.action.empty())
            s.log_field("action", st.action);
    }
}

void WafFilter::on_stream_end(gh::Stream s, const Config &) {
    Slot *slot = s.ctx<Slot>();
    if (slot == nullptr)
        return;
    std::shared_ptr<StreamState> st = slot->st;
    s.take_ctx<Slot>();
    if (st->in_offload) {
        st->ended = true; // the offload's completion finishes it
        return;
    }
    finish(*st, 0, true);
}

} // namespace waf

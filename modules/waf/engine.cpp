// waf: libmodsecurity 3 behind engine.hpp. Its C++ API is used for what the C API lacks: rule
// messages as structures (ids, data, the rule's actions) and the TX collection (anomaly scores).
#include "engine.hpp"

#include <modsecurity/intervention.h>
#include <modsecurity/modsecurity.h>
#include <modsecurity/rule_message.h>
#include <modsecurity/rule_with_actions.h>
#include <modsecurity/rules_set.h>
#include <modsecurity/transaction.h>

#include <cstdlib>
#include <mutex>

namespace waf {

class RuleSet {
  public:
    modsecurity::RulesSet set;
};

namespace {

// libmodsecurity's parser keeps global state: one compile at a time in the process.
std::mutex &compile_lock() {
    static std::mutex m;
    return m;
}

// The rule's disruptive action. libmodsecurity keeps it private and reports `drop` exactly as
// `deny` (status 403, disruptive): its name is the only difference. Read through the explicit
// instantiation rule (access checks do not apply to the names in an explicit instantiation).
template <auto Member>
struct DisruptiveActionOf {
    friend modsecurity::actions::Action *modsecurity::RuleWithActions::*disruptive_member() {
        return Member;
    }
};
modsecurity::actions::Action *modsecurity::RuleWithActions::*disruptive_member();
template struct DisruptiveActionOf<&modsecurity::RuleWithActions::m_disruptiveAction>;

bool action_is_drop(const modsecurity::RuleWithActions *rule) {
    if (rule == nullptr || !rule->hasDisruptiveAction())
        return false;
    const modsecurity::actions::Action *a = rule->*disruptive_member();
    return a != nullptr && a->m_name && *a->m_name == "drop";
}

// The rule with this id in `phase` (engine numbering: 0 = connection ... 5 = logging).
const modsecurity::RuleWithActions *find_rule(modsecurity::RulesSet &set, int64_t id) {
    for (int p = 0; p < 8; ++p)
        for (const auto &r : set.m_rulesSetPhases[p]->m_rules)
            if (auto *rw = dynamic_cast<const modsecurity::RuleWithActions *>(r.get());
                rw != nullptr && rw->m_ruleId == id)
                return rw;
    return nullptr;
}

// `[name "value"]` from an engine log line ("" if absent).
std::string attribute(std::string_view line, std::string_view name) {
    const std::string open = "[" + std::string(name) + " \"";
    const size_t at = line.find(open);
    if (at == std::string_view::npos)
        return {};
    const size_t from = at + open.size();
    const size_t end = line.find("\"]", from);
    return std::string(line.substr(from, end == std::string_view::npos ? std::string_view::npos
                                                                         : end - from));
}

// The engine's log callback: `data` is the Transaction wrapper, `message` a RuleMessage.
void on_rule_message(void *data, const void *message) {
    if (data == nullptr || message == nullptr)
        return;
    auto *t = static_cast<Transaction *>(data);
    const auto *rm = static_cast<const modsecurity::RuleMessage *>(message);
    Hit h;
    h.id = rm->m_ruleId;
    h.phase = rm->m_phase;
    h.severity = rm->m_severity;
    h.disruptive = rm->m_isDisruptive;
    h.message = rm->m_message;
    h.data = rm->m_data;
    h.match = rm->m_match;
    h.line = modsecurity::RuleMessage::log(rm, 0);
    t->record(std::move(h));
}

// One engine per process, destroyed with the module (at dlclose or exit), after every
// transaction and rule set of it is gone.
struct EngineInstance {
    EngineInstance() {
        ms.setConnectorInformation("gatehouse-waf");
        ms.setServerLogCb(on_rule_message, modsecurity::RuleMessageLogProperty |
                                               modsecurity::IncludeFullHighlightLogProperty);
    }
    modsecurity::ModSecurity ms;
};

modsecurity::ModSecurity &engine() {
    static EngineInstance instance;
    return instance.ms;
}

} // namespace

Compiled compile(const std::vector<Source> &sources) {
    std::lock_guard lock(compile_lock());
    engine();
    auto rs = std::make_shared<RuleSet>();
    for (const Source &s : sources) {
        int rc = s.kind == Source::Kind::file ? rs->set.loadFromUri(s.content.c_str())
                                              : rs->set.load(s.content.c_str(), s.origin);
        if (rc < 0) {
            std::string e = rs->set.getParserError();
            while (!e.empty() && (e.back() == '\n' || e.back() == ' '))
                e.pop_back();
            if (s.kind == Source::Kind::text)
                e = s.origin + ": " + e;
            return {nullptr, e.empty() ? "the rules could not be loaded" : e};
        }
    }
    return {std::move(rs), {}};
}

Compiled merge(const RuleSet &front, const RuleSet &base) {
    std::lock_guard lock(compile_lock());
    auto rs = std::make_shared<RuleSet>();
    // Properties: the first set merged that has one wins, so `front`'s engine mode holds.
    for (const RuleSet *from : {&front, &base})
        if (rs->set.merge(const_cast<modsecurity::RulesSet *>(&from->set)) < 0)
            return {nullptr, rs->set.getParserError()};
    return {std::move(rs), {}};
}

size_t rule_count(const RuleSet &rules) {
    auto &phases = const_cast<modsecurity::RulesSet &>(rules.set).m_rulesSetPhases;
    size_t n = 0;
    for (int p = 0; p < 8; ++p)
        n += phases[p]->size();
    return n;
}

struct Transaction::Impl {
    Impl(const RuleSet &rules, std::string id_text, void *self)
        : set(const_cast<modsecurity::RulesSet &>(rules.set)), id(std::move(id_text)),
          t(&engine(), &set, id.data(), self) {}
    modsecurity::RulesSet &set;
    std::string id; // the engine copies it, but wants a char *
    modsecurity::Transaction t;
};

Transaction::Transaction(const RuleSet &rules, const std::string &id)
    : impl_(std::make_unique<Impl>(rules, id, this)) {}
Transaction::~Transaction() = default;

void *Transaction::native() const noexcept { return &impl_->t; }

namespace {
const unsigned char *u(std::string_view s) {
    return reinterpret_cast<const unsigned char *>(s.data());
}
} // namespace

void Transaction::connection(std::string_view client_ip, int client_port,
                             std::string_view server_ip, int server_port) {
    impl_->t.processConnection(std::string(client_ip).c_str(), client_port,
                               std::string(server_ip).c_str(), server_port);
}

void Transaction::uri(std::string_view target, std::string_view method, std::string_view version) {
    impl_->t.processURI(guard_encoded_query_mark(target).c_str(), std::string(method).c_str(),
                        std::string(version).c_str());
}

void Transaction::request_header(std::string_view name, std::string_view value) {
    impl_->t.addRequestHeader(u(name), name.size(), u(value), value.size());
}

void Transaction::process_request_headers() { impl_->t.processRequestHeaders(); }

void Transaction::append_request_body(std::string_view data) {
    impl_->t.appendRequestBody(u(data), data.size());
}

void Transaction::process_request_body() { impl_->t.processRequestBody(); }

void Transaction::response_header(std::string_view name, std::string_view value) {
    impl_->t.addResponseHeader(u(name), name.size(), u(value), value.size());
}

void Transaction::process_response_headers(int status, std::string_view protocol) {
    impl_->t.processResponseHeaders(status, std::string(protocol));
}

void Transaction::append_response_body(std::string_view data) {
    impl_->t.appendResponseBody(u(data), data.size());
}

void Transaction::process_response_body() { impl_->t.processResponseBody(); }

void Transaction::update_status(int status) { impl_->t.updateStatusCode(status); }

void Transaction::process_logging() { impl_->t.processLogging(); }

std::optional<Verdict> Transaction::verdict() {
    modsecurity::ModSecurityIntervention it;
    modsecurity::intervention::clean(&it);
    const bool disruptive = impl_->t.intervention(&it);
    // 3.0.9 has no msc_intervention_cleanup: the strings are ours to free.
    std::string url = it.url ? it.url : "";
    std::string log = it.log ? it.log : "";
    std::free(it.url);
    std::free(it.log);
    if (!disruptive || !it.disruptive)
        return std::nullopt;
    Verdict v;
    v.status = it.status;
    if (!url.empty()) {
        v.action = Verdict::Action::redirect;
        v.url = std::move(url);
        if (v.status < 300 || v.status > 399)
            v.status = 302;
    }
    if (v.status < 200 || v.status > 599)
        v.status = 403;
    // The disruptive rule's message comes only with the intervention, not through the log
    // callback: record it as a hit too.
    if (!log.empty()) {
        Hit h;
        h.id = std::atoll(attribute(log, "id").c_str());
        h.disruptive = true;
        h.message = attribute(log, "msg");
        h.data = attribute(log, "data");
        const std::string severity = attribute(log, "severity");
        h.severity = severity.empty() ? -1 : std::atoi(severity.c_str());
        if (size_t p = log.find("(phase "); p != std::string::npos)
            h.phase = std::atoi(log.c_str() + p + 7);
        h.line = log;
        v.rule_id = h.id;
        if (v.action == Verdict::Action::deny && action_is_drop(find_rule(impl_->set, h.id)))
            v.action = Verdict::Action::drop;
        hits_.push_back(std::move(h));
    }
    return v;
}

bool Transaction::blocking() const {
    return impl_->t.getRuleEngineState() == modsecurity::RulesSet::EnabledRuleEngine;
}

std::string Transaction::tx(std::string_view name) const {
    auto *c = impl_->t.m_collections.m_tx_collection;
    if (c == nullptr)
        return {};
    auto v = c->resolveFirst(std::string(name));
    return v ? *v : std::string();
}

std::string guard_encoded_query_mark(std::string_view target) {
    const size_t q = target.find('?');
    const std::string_view path = target.substr(0, q);
    std::string out;
    out.reserve(target.size() + 8);
    for (size_t i = 0; i < path.size(); ++i) {
        out += path[i];
        if (path[i] == '%' && i + 2 < path.size() && path[i + 1] == '3' &&
            (path[i + 2] == 'F' || path[i + 2] == 'f'))
            out += "25"; // "%3F" -> "%253F": decoded once, it stays "%3F"
    }
    if (q != std::string_view::npos)
        out.append(target.substr(q));
    return out;
}

} // namespace waf

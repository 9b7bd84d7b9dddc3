// waf: the engine interface -- the only part of the module that knows libmodsecurity.
//
// A RuleSet is a compiled set of SecLang rules, shared read-only by every worker; a Transaction
// runs one request/response through it, phase by phase. Compiling is not thread-safe in
// libmodsecurity 3.0.9, so every compile takes one process-wide lock (compile() does).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace waf {

// One piece of SecLang, in load order: a file (its path) or inline text (with where it came from,
// for error messages).
struct Source {
    enum class Kind { file, text } kind = Kind::text;
    std::string content; // the path, or the directives
    std::string origin;  // "rules_inline[2]", "generated settings"... (text only)
};

// A rule that matched and asked to be logged.
struct Hit {
    int64_t id = 0;
    int phase = 0;
    int severity = -1;
    bool disruptive = false;
    bool drop = false; // the disruptive action is `drop` (the engine reports a plain 403)
    std::string message;
    std::string data;  // logdata, expanded
    std::string match; // "Matched "Operator ..." against "ARGS:x" with value ..."
    std::string line;  // the engine's native log line, with [id "N"]
};

// What the rules decided, if anything disruptive.
struct Verdict {
    enum class Action { deny, redirect, drop } action = Action::deny;
    int status = 403;
    std::string url; // redirect target
    int64_t rule_id = 0;
};

class RuleSet;

// A compile result: the set, or the engine's message ("... File: F. Line: N. Column: C. ...").
struct Compiled {
    std::shared_ptr<const RuleSet> rules;
    std::string error;
};

// Compile `sources` in order into one set. Main thread or any thread: serialised inside.
Compiled compile(const std::vector<Source> &sources);

// A new set: `front`'s rules run before `base`'s in each phase, and `front`'s properties (its
// SecRuleEngine) win over `base`'s. `base`'s rules are shared, not copied.
Compiled merge(const RuleSet &front, const RuleSet &base);

// Rough count of rules (all phases), for logs.
size_t rule_count(const RuleSet &rules);

class Transaction {
  public:
    // `rules` must outlive the transaction (hold its shared_ptr next to it). `id` is the
    // engine's unique_id (in its log lines).
    Transaction(const RuleSet &rules, const std::string &id);
    ~Transaction();
    Transaction(const Transaction &) = delete;
    Transaction &operator=(const Transaction &) = delete;

    // Phase 1 inputs.
    void connection(std::string_view client_ip, int client_port, std::string_view server_ip,
                    int server_port);
    void uri(std::string_view target, std::string_view method, std::string_view version);
    void request_header(std::string_view name, std::string_view value);
    void process_request_headers();
    // Phase 2.
    void append_request_body(std::string_view data);
    void process_request_body();
    // Phase 3.
    void response_header(std::string_view name, std::string_view value);
    void process_response_headers(int status, std::string_view protocol);
    // Phase 4.
    void append_response_body(std::string_view data);
    void process_response_body();
    // Phase 5.
    void update_status(int status);
    void process_logging();

    // The pending disruptive decision, if any (the engine's strings are freed here).
    std::optional<Verdict> verdict();
    // True while the engine blocks (SecRuleEngine On, or ctl:ruleEngine=On).
    bool blocking() const;
    // A TX variable as text ("" if unset): anomaly scores.
    std::string tx(std::string_view name) const;

    // Rules that matched so far (log callback), in order.
    const std::vector<Hit> &hits() const noexcept { return hits_; }
    void record(Hit hit) { hits_.push_back(std::move(hit)); }
    // The engine's own transaction object (engine.cpp only).
    void *native() const noexcept;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::vector<Hit> hits_;
};

// The path part of an origin-form target with every "%3F" made "%253F", so libmodsecurity
// 3.0.9, which decodes before it splits off the query (CVE-2024-1019), still sees the whole path
// in REQUEST_FILENAME (as "%3F", decoded by t:urlDecode to "?" as 3.0.12 would).
std::string guard_encoded_query_mark(std::string_view target);

} // namespace waf

// waf: configuration keys, the generated directives, and compiling the rule sets (see README.md).
#include "config.hpp"

#include <glob.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>

namespace waf {

namespace {

std::string media_type_error(std::string_view t) {
    const size_t slash = t.find('/');
    if (slash == std::string_view::npos || slash == 0 || slash + 1 == t.size() ||
        t.find_first_of(" \t;,") != std::string_view::npos)
        return gh::cat("media types look like \"text/html\", got \"", t, "\"");
    return {};
}

std::string not_empty(std::string_view s) {
    return s.empty() ? std::string("must not be empty") : std::string();
}

gh::Keys<Config> declare() {
    using gh::Scope;
    constexpr Scope both = Scope::both;
    return std::move(
        gh::Keys<Config>("waf")
            .choice("mode", &Config::mode,
                    std::vector<std::pair<std::string, Mode>>{
                        {"on", Mode::on}, {"detect", Mode::detect}, {"off", Mode::off}},
                    both,
                    "`on` blocks (SecRuleEngine On), `detect` only logs and counts what would "
                    "have been blocked (DetectionOnly), `off` skips the engine for the route")
            .example("mode = \"detect\"")
            .flag("crs", &Config::crs, both,
                  "load the OWASP Core Rule Set from Debian's `modsecurity-crs` package: "
                  "`crs_setup`, then `rules_before`, then every `*.conf` of `crs_rules`")
            .example("crs = false")
            .string("crs_setup", &Config::crs_setup, both,
                    "the CRS set-up file loaded first", not_empty, "path")
            .example("crs_setup = \"/etc/gatehouse/crs-setup.conf\"")
            .string("crs_rules", &Config::crs_rules, both,
                    "the directory of the CRS rule files (`*.conf`, loaded in name order)",
                    not_empty, "path")
            .example("crs_rules = \"/opt/crs/rules\"")
            .integer("paranoia", &Config::paranoia, 1, 4, both,
                     "CRS paranoia level (`tx.paranoia_level`): higher levels run more rules and "
                     "flag more false positives")
            .example("paranoia = 2")
            .integer("inbound_threshold", &Config::inbound_threshold, 1, 10000, both,
                     "CRS inbound anomaly score that blocks a request "
                     "(`tx.inbound_anomaly_score_threshold`)")
            .example("inbound_threshold = 10")
            .integer("outbound_threshold", &Config::outbound_threshold, 1, 10000, both,
                     "CRS outbound anomaly score that blocks a response "
                     "(`tx.outbound_anomaly_score_threshold`)")
            .example("outbound_threshold = 8")
            .strings("rules_before", &Config::rules_before, both,
                     "SecLang files or globs loaded before the CRS (runtime exclusions: "
                     "`ctl:ruleRemoveById`...); a glob must match at least one file",
                     not_empty, "array of paths")
            .example("rules_before = [\"/etc/gatehouse/waf/before/*.conf\"]")
            .strings("rules", &Config::rules, both,
                     "SecLang files or globs loaded after the CRS (your rules, and exclusions "
                     "by `SecRuleRemoveById` / `SecRuleUpdateTargetById`)",
                     not_empty, "array of paths")
            .example("rules = [\"/etc/gatehouse/waf/*.conf\"]")
            .strings("rules_inline", &Config::rules_inline, both,
                     "SecLang directives written in the config, loaded last; each string may "
                     "hold several lines",
                     not_empty, "array of strings")
            .example("rules_inline = ['SecRule ARGS:id \"!@rx ^[0-9]+$\" "
                     "\"id:1001,phase:2,deny,status:400\"']")
            .flag("base_rules", &Config::base_rules, both,
                  "the engine's recommended base rules (ids 200000–200007: XML/JSON body "
                  "processors, 400 on a body the engine cannot parse or with 1,000+ arguments)")
            .example("base_rules = false")
            .flag("request_body", &Config::request_body, both,
                  "inspect request bodies (phase 2 sees `ARGS_POST`, JSON, XML, multipart); the "
                  "body is held until the rules allowed it, up to the route's `body_limit`")
            .example("request_body = false")
            .choice("response_body", &Config::response_body,
                    std::vector<std::pair<std::string, ResponseBody>>{
                        {"buffer", ResponseBody::buffer},
                        {"stream", ResponseBody::stream},
                        {"off", ResponseBody::off}},
                    both,
                    "phase 4: `buffer` holds a response of a `response_types` type (up to the "
                    "route's `body_limit`) so a deny is a clean 403; `stream` forwards it while "
                    "inspecting and closes the connection on a deny; `off` skips phase 4")
            .example("response_body = \"stream\"")
            .strings("response_types", &Config::response_types, both,
                     "response media types phase 4 inspects (exact, case-insensitive, parameters "
                     "ignored)",
                     media_type_error, "array of media types")
            .example("response_types = [\"text/html\", \"application/json\"]")
            .bytes("offload_above", &Config::offload_above, 0, UINT64_MAX, both,
                   "request or response bodies larger than this are inspected on the module's "
                   "low-priority engine threads, so the worker keeps serving its other "
                   "connections (`0`: always)")
            .example("offload_above = \"16k\"")
            .integer("engine_slice_us", &Config::engine_slice_us, 0, 1000000, Scope::module,
                     "while an engine thread inspects a body it yields the CPU every this many "
                     "microseconds (at least 50), so a worker that has requests to serve runs "
                     "within about that long (`0`: never yields; the engine then keeps the CPU "
                     "up to a scheduler tick)")
            .example("engine_slice_us = 500")
            .choice("on_error", &Config::on_error,
                    std::vector<std::pair<std::string, OnError>>{{"closed", OnError::closed},
                                                                 {"open", OnError::open}},
                    both,
                    "when the engine fails on a request: `closed` answers 500, `open` lets the "
                    "request through unchecked (counted in `waf_engine_errors_total`)")
            .example("on_error = \"open\"")
            .string("audit_log", &Config::audit_log, Scope::module,
                    "file for the JSON audit events, one line per flagged request (see *Audit "
                    "log*); empty: none",
                    {}, "path")
            .example("audit_log = \"/var/log/gatehouse/waf-audit.json\"")
            .string("engine_log", &Config::engine_log, Scope::module,
                    "file for the engine's native lines (`ModSecurity: Warning. ... [id \"N\"]`), "
                    "for tools that read ModSecurity's error log; empty: none",
                    {}, "path")
            .example("engine_log = \"/var/log/gatehouse/modsec.log\"")
            .strings("redact", &Config::redact, both,
                     "argument, header and cookie names whose values the audit log replaces "
                     "with `[redacted]` (case-insensitive, also inside matched data)",
                     {}, "array of strings")
            .example("redact = [\"password\", \"ssn\"]")
            .bytes("match_max", &Config::match_max, 16, 65536, both,
                   "matched data and messages in the audit log are cut to this many bytes")
            .example("match_max = 1024"));
}

bool is_glob(std::string_view p) { return p.find_first_of("*?[") != std::string_view::npos; }

// Expand one `rules`/`rules_before` entry into files, in name order.
bool expand(const std::string &pattern, std::vector<Source> &out, std::string &error) {
    if (!is_glob(pattern)) {
        struct stat st {};
        if (::stat(pattern.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
            error = gh::cat("cannot read rules file ", pattern);
            return false;
        }
        out.push_back({Source::Kind::file, pattern, {}});
        return true;
    }
    glob_t g{};
    int rc = ::glob(pattern.c_str(), GLOB_ERR, nullptr, &g);
    if (rc != 0 || g.gl_pathc == 0) {
        ::globfree(&g);
        error = gh::cat("no file matches ", pattern);
        return false;
    }
    for (size_t i = 0; i < g.gl_pathc; ++i)
        out.push_back({Source::Kind::file, g.gl_pathv[i], {}});
    ::globfree(&g);
    return true;
}

std::string key_of(const std::vector<Source> &sources) {
    std::string k;
    for (const Source &s : sources) {
        k += s.kind == Source::Kind::file ? "F" : "T";
        k += std::to_string(s.content.size());
        k += ':';
        k += s.content;
    }
    return k;
}

// The node an error about the rules is best reported at.
gh::ConfigNode rules_node(gh::ConfigNode table) {
    for (const char *k : {"rules_inline", "rules", "rules_before", "crs", "crs_setup", "crs_rules"})
        if (gh::ConfigNode n = table.get(k); n.present())
            return n;
    return table;
}

void report(gh::ConfigNode table, const std::string &message) {
    gh::ConfigNode at = rules_node(table);
    at.error(gh::cat("rules refused by the engine: ", message));
}

Compiled find_or_compile(RuleCache &cache, const std::string &key,
                         const std::function<Compiled()> &make) {
    std::lock_guard lock(cache.lock);
    auto it = cache.sets.find(key);
    if (it != cache.sets.end())
        return it->second;
    Compiled c = make();
    cache.sets.emplace(key, c);
    return c;
}

} // namespace

const gh::Keys<Config> &keys() {
    static const gh::Keys<Config> declared = declare();
    return declared;
}

std::string engine_directives(const Config &c) {
    std::string d;
    d += gh::cat("SecRequestBodyAccess ", c.request_body ? "On" : "Off", "\n");
    // The kernel bounds what it holds (the route's body_limit); the engine takes all it is given.
    d += "SecRequestBodyLimit 1073741824\n"
         "SecRequestBodyNoFilesLimit 1073741824\n"
         "SecRequestBodyLimitAction ProcessPartial\n"
         "SecRequestBodyJsonDepthLimit 512\n"
         "SecArgumentsLimit 1000\n"
         "SecPcreMatchLimit 1000\n"
         "SecPcreMatchLimitRecursion 1000\n";
    d += gh::cat("SecResponseBodyAccess ", c.response_body == ResponseBody::off ? "Off" : "On",
                 "\n");
    if (!c.response_types.empty()) {
        d += "SecResponseBodyMimeType";
        for (const std::string &t : c.response_types)
            d += " " + t;
        d += "\n";
    }
    d += "SecResponseBodyLimit 1073741824\n"
         "SecResponseBodyLimitAction ProcessPartial\n"
         "SecArgumentSeparator &\n"
         "SecCookieFormat 0\n"
         "SecAuditEngine Off\n";
    if (!c.base_rules)
        return d;
    d += R"(SecRule REQUEST_HEADERS:Content-Type "^(?:application(?:/soap\+|/)|text/)xml" "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "^application/json" "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule &ARGS "@ge 1000" "id:200007,phase:2,t:none,log,deny,status:400,msg:'Failed to fully parse request body due to large argument count',severity:2"
SecRule REQBODY_ERROR "!@eq 0" "id:200002,phase:2,t:none,log,deny,status:400,msg:'Failed to parse request body.',logdata:'%{reqbody_error_msg}',severity:2"
SecRule MULTIPART_STRICT_ERROR "!@eq 0" "id:200003,phase:2,t:none,log,deny,status:400,msg:'Multipart request body failed strict validation'"
SecRule MULTIPART_UNMATCHED_BOUNDARY "@eq 1" "id:200004,phase:2,t:none,log,deny,msg:'Multipart parser detected a possible unmatched boundary.'"
SecRule TX:/^MSC_/ "!@streq 0" "id:200005,phase:2,t:none,deny,msg:'ModSecurity internal error flagged: %{MATCHED_VAR_NAME}'"
)";
    return d;
}

std::string settings_directives(const Config &c) {
    return gh::cat("SecRuleEngine ", c.mode == Mode::on ? "On" : "DetectionOnly", "\n",
                   "SecAction \"id:", kSettingsRuleId,
                   ",phase:1,pass,nolog,t:none,setvar:tx.paranoia_level=", c.paranoia,
                   ",setvar:tx.inbound_anomaly_score_threshold=", c.inbound_threshold,
                   ",setvar:tx.outbound_anomaly_score_threshold=", c.outbound_threshold, "\"\n");
}

std::vector<Source> rule_sources(const Config &c, std::string &error) {
    std::vector<Source> out;
    out.push_back({Source::Kind::text, engine_directives(c), "engine settings"});
    if (c.crs) {
        struct stat st {};
        if (::stat(c.crs_setup.c_str(), &st) != 0) {
            error = gh::cat("crs = true needs ", c.crs_setup,
                            " (Debian package modsecurity-crs; or set crs_setup)");
            return {};
        }
        out.push_back({Source::Kind::file, c.crs_setup, {}});
    }
    for (const std::string &p : c.rules_before)
        if (!expand(p, out, error))
            return {};
    if (c.crs && !expand(c.crs_rules + "/*.conf", out, error)) {
        error += " (Debian package modsecurity-crs; or set crs_rules)";
        return {};
    }
    for (const std::string &p : c.rules)
        if (!expand(p, out, error))
            return {};
    for (size_t i = 0; i < c.rules_inline.size(); ++i)
        out.push_back({Source::Kind::text, c.rules_inline[i], gh::cat("rules_inline[", i, "]")});
    return out;
}

std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base) {
    auto c = std::make_unique<Config>(base);
    const unsigned errors = gh::config_error_count();
    keys().read(table, *c);
    if (c->engine_slice_us > 0 && c->engine_slice_us < Config::kMinSliceUs)
        table.get("engine_slice_us")
            .error(gh::cat("must be 0 (never yield) or at least ", Config::kMinSliceUs,
                           ": a shorter slice leaves the engine no time between the interruptions"));
    if (gh::config_level() == gh::ConfigLevel::module) {
        c->cache = std::make_shared<RuleCache>();
        c->sinks = std::make_shared<Sinks>();
    }
    c->ruleset.reset();
    if (gh::config_error_count() != errors || c->mode == Mode::off)
        return c;
    std::string error;
    std::vector<Source> sources = rule_sources(*c, error);
    if (!error.empty()) {
        rules_node(table).error(error);
        return c;
    }
    RuleCache &cache = *c->cache;
    const std::string shared_key = key_of(sources);
    Compiled shared = find_or_compile(cache, "rules\n" + shared_key, [&] {
        ++cache.compiles;
        const auto t0 = std::chrono::steady_clock::now();
        Compiled compiled = compile(sources);
        cache.compile_seconds +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        return compiled;
    });
    if (!shared.rules) {
        report(table, shared.error);
        return c;
    }
    const std::string settings = settings_directives(*c);
    Compiled front = find_or_compile(cache, "settings\n" + settings, [&] {
        return compile({{Source::Kind::text, settings, "generated settings"}});
    });
    if (!front.rules) {
        report(table, front.error);
        return c;
    }
    Compiled merged = find_or_compile(cache, "merged\n" + settings + shared_key, [&] {
        ++cache.variants;
        return merge(*front.rules, *shared.rules);
    });
    if (!merged.rules) {
        report(table, merged.error);
        return c;
    }
    c->ruleset = merged.rules;
    return c;
}

} // namespace waf

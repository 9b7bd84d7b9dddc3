// waf: the engine wrapper on the real libmodsecurity -- phases, verdicts, drop, detection-only,
// the CVE-2024-1019 guard.
#include "engine.hpp"

#include <gtest/gtest.h>

namespace waf {
namespace {

std::shared_ptr<const RuleSet> rules(const std::string &text) {
    Compiled c = compile({{Source::Kind::text, "SecRuleEngine On\nSecRequestBodyAccess On\n"
                                                   "SecResponseBodyAccess On\n"
                                                   "SecResponseBodyMimeType text/html\n" +
                                                       text,
                           "test"}});
    EXPECT_TRUE(c.rules) << c.error;
    return c.rules;
}

struct Exchange {
    explicit Exchange(std::shared_ptr<const RuleSet> r) : set(std::move(r)), tx(*set, "t-1") {
        tx.connection("192.0.2.1", 4000, "0.0.0.0", 0);
    }
    std::shared_ptr<const RuleSet> set;
    Transaction tx;
};

TEST(WafEngine, DenyInPhaseOneWithTheRuleStatusAndItsHit) {
    Exchange r(rules("SecRule REQUEST_HEADERS:X-A \"@streq 1\" \"id:10,phase:1,deny,status:406,msg:'a'\""));
    r.tx.uri("/x", "GET", "1.1");
    r.tx.request_header("X-A", "1");
    r.tx.process_request_headers();
    auto v = r.tx.verdict();
    ASSERT_TRUE(v);
    EXPECT_EQ(v->action, Verdict::Action::deny);
    EXPECT_EQ(v->status, 406);
    EXPECT_EQ(v->rule_id, 10);
    ASSERT_FALSE(r.tx.hits().empty());
    EXPECT_EQ(r.tx.hits().back().message, "a");
    EXPECT_NE(r.tx.hits().back().line.find("[id \"10\"]"), std::string::npos);
    EXPECT_FALSE(r.tx.verdict()) << "a verdict is reported once";
}

TEST(WafEngine, RedirectAndDropAreToldApart) {
    auto set = rules("SecRule ARGS:go \"@streq 1\" \"id:11,phase:1,redirect:https://e.test/x\"\n"
                     "SecRule ARGS:drop \"@streq 1\" \"id:12,phase:1,drop\"\n"
                     "SecRule ARGS:deny \"@streq 1\" \"id:13,phase:1,deny\"");
    struct Case {
        const char *uri;
        Verdict::Action action;
        int status;
    } cases[] = {{"/?go=1", Verdict::Action::redirect, 302},
                 {"/?drop=1", Verdict::Action::drop, 403},
                 {"/?deny=1", Verdict::Action::deny, 403}};
    for (const Case &c : cases) {
        Exchange r(set);
        r.tx.uri(c.uri, "GET", "1.1");
        r.tx.process_request_headers();
        auto v = r.tx.verdict();
        ASSERT_TRUE(v) << c.uri;
        EXPECT_EQ(v->action, c.action) << c.uri;
        EXPECT_EQ(v->status, c.status) << c.uri;
        if (c.action == Verdict::Action::redirect) {
            EXPECT_EQ(v->url, "https://e.test/x");
        }
    }
}

TEST(WafEngine, BodyPhasesSeeWhatWasAppended) {
    auto set = rules("SecRule ARGS_POST:evil \"@streq 1\" \"id:20,phase:2,deny\"\n"
                     "SecRule RESPONSE_BODY \"@contains secret\" \"id:21,phase:4,deny\"");
    Exchange r(set);
    r.tx.uri("/f", "POST", "1.1");
    r.tx.request_header("Content-Type", "application/x-www-form-urlencoded");
    r.tx.process_request_headers();
    EXPECT_FALSE(r.tx.verdict());
    r.tx.append_request_body("a=1&ev");
    r.tx.append_request_body("il=1");
    r.tx.process_request_body();
    auto v = r.tx.verdict();
    ASSERT_TRUE(v);
    EXPECT_EQ(v->rule_id, 20);

    Exchange ok(set);
    ok.tx.uri("/f", "GET", "1.1");
    ok.tx.process_request_headers();
    ok.tx.process_request_body();
    EXPECT_FALSE(ok.tx.verdict());
    ok.tx.response_header("Content-Type", "text/html");
    ok.tx.process_response_headers(200, "HTTP 1.1");
    ok.tx.append_response_body("<p>the secret</p>");
    ok.tx.process_response_body();
    auto v4 = ok.tx.verdict();
    ASSERT_TRUE(v4);
    EXPECT_EQ(v4->rule_id, 21);
}

TEST(WafEngine, DetectionOnlyLogsButNeverDecides) {
    Compiled c = compile({{Source::Kind::text,
                           "SecRuleEngine DetectionOnly\n"
                           "SecRule ARGS:x \"@streq 1\" \"id:30,phase:1,deny,log,msg:'seen'\"",
                           "test"}});
    ASSERT_TRUE(c.rules) << c.error;
    Exchange r(c.rules);
    r.tx.uri("/?x=1", "GET", "1.1");
    r.tx.process_request_headers();
    EXPECT_FALSE(r.tx.verdict());
    EXPECT_FALSE(r.tx.blocking());
    ASSERT_EQ(r.tx.hits().size(), 1u);
    EXPECT_EQ(r.tx.hits()[0].id, 30);
}

TEST(WafEngine, MergedSettingsRunFirstAndTheirModeWins) {
    Compiled base = compile({{Source::Kind::text,
                              "SecRuleEngine On\n"
                              "SecRule TX:level \"@eq 2\" \"id:40,phase:1,deny,status:418\"",
                              "base"}});
    ASSERT_TRUE(base.rules) << base.error;
    for (const char *mode : {"On", "DetectionOnly"}) {
        Compiled front = compile({{Source::Kind::text,
                                   std::string("SecRuleEngine ") + mode +
                                       "\nSecAction \"id:41,phase:1,pass,nolog,setvar:tx.level=2\"",
                                   "front"}});
        ASSERT_TRUE(front.rules) << front.error;
        Compiled merged = merge(*front.rules, *base.rules);
        ASSERT_TRUE(merged.rules) << merged.error;
        Exchange r(merged.rules);
        r.tx.uri("/", "GET", "1.1");
        r.tx.process_request_headers();
        auto v = r.tx.verdict();
        if (std::string(mode) == "On") {
            ASSERT_TRUE(v);
            EXPECT_EQ(v->status, 418);
        } else {
            EXPECT_FALSE(v);
        }
    }
}

TEST(WafEngine, CompileErrorsCarryFileAndLine) {
    Compiled c = compile({{Source::Kind::text, "SecRule ARGS \"@rx a\" \"id:1,phase:1,pass\"\n"
                                               "SecRule ARGS \"@rx b\" \"phase:1,nosuch\"",
                           "rules_inline[3]"}});
    EXPECT_FALSE(c.rules);
    EXPECT_NE(c.error.find("rules_inline[3]"), std::string::npos) << c.error;
    EXPECT_NE(c.error.find("Line: 2"), std::string::npos) << c.error;
}

TEST(WafEngine, EncodedQueryMarkStaysInThePath) {
    EXPECT_EQ(guard_encoded_query_mark("/a%3Fb?c=%3F"), "/a%253Fb?c=%3F");
    EXPECT_EQ(guard_encoded_query_mark("/a%3f"), "/a%253f");
    EXPECT_EQ(guard_encoded_query_mark("/a%3"), "/a%3");
    EXPECT_EQ(guard_encoded_query_mark("/plain?x=1"), "/plain?x=1");
    // REQUEST_FILENAME keeps what follows the encoded '?': rules on it see the payload.
    Exchange r(rules("SecRule REQUEST_FILENAME \"@contains <script>\" \"id:50,phase:1,t:urlDecode,deny\""));
    r.tx.uri("/x%3F<script>", "GET", "1.1");
    r.tx.process_request_headers();
    EXPECT_TRUE(r.tx.verdict());
}

} // namespace
} // namespace waf

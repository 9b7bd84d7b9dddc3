// waf: audit events -- JSON shape, redaction of secret values and of redacted variables, cuts.
#include "audit.hpp"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace waf {
namespace {

TEST(WafAudit, RedactsKnownValuesAndQuotedVariables) {
    const std::vector<std::string> names = {"password"};
    EXPECT_EQ(redact("found within ARGS:password: hunter2", names, {}),
              "found within ARGS:password: [redacted]");
    EXPECT_EQ(redact("variable `ARGS:Password' (Value: `hunter2' ) [file", names, {}),
              "variable `ARGS:Password' (Value: `[redacted]' ) [file");
    EXPECT_EQ(redact("x=hunter2 and hunter2", {}, {"hunter2"}), "x=[redacted] and [redacted]");
    EXPECT_EQ(redact("ARGS:user: bob", names, {}), "ARGS:user: bob");
}

TEST(WafAudit, EventIsOneJsonLineWithTheRules) {
    std::vector<Hit> hits(2);
    hits[0].id = 942100;
    hits[0].phase = 2;
    hits[0].message = "SQL Injection";
    hits[0].data = "Matched Data: s&1c found within ARGS:password: " + std::string(600, 'x');
    hits[1].id = 949110;
    hits[1].disruptive = true;
    const std::vector<std::string> names = {"password"};
    AuditInput in;
    in.id = "abc-1";
    in.method = "POST";
    in.uri = "/login?token=t0ps3cret";
    in.action = "blocked";
    in.phase = 2;
    in.status = 403;
    in.inbound_score = "10";
    in.hits = &hits;
    in.secret_values = {"t0ps3cret"};
    in.redact_names = &names;
    in.match_max = 64;
    const std::string line = audit_event(in);
    EXPECT_EQ(line.find('\n'), std::string::npos);
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["id"], "abc-1");
    EXPECT_EQ(j["action"], "blocked");
    EXPECT_EQ(j["scores"]["inbound"], 10);
    EXPECT_EQ(j["uri"], "/login?token=[redacted]");
    ASSERT_EQ(j["rules"].size(), 2u);
    EXPECT_EQ(j["rules"][0]["id"], 942100);
    EXPECT_EQ(j["rules"][0]["data"], "Matched Data: s&1c found within ARGS:password: [redacted]");
    EXPECT_EQ(j["rules"][1]["disruptive"], true);
}

TEST(WafAudit, LongDataIsCut) {
    std::vector<Hit> hits(1);
    hits[0].data = std::string(1000, 'y');
    AuditInput in;
    in.hits = &hits;
    in.match_max = 100;
    auto j = nlohmann::json::parse(audit_event(in));
    EXPECT_LE(j["rules"][0]["data"].get<std::string>().size(), 100u + 3);
}

TEST(WafAudit, WriterAppendsLinesInOrder) {
    const auto path = std::filesystem::temp_directory_path() / "waf-writer-test.log";
    std::filesystem::remove(path);
    {
        LogWriter w(path.string());
        ASSERT_EQ(w.error(), "");
        for (int i = 0; i < 100; ++i)
            w.write("line " + std::to_string(i));
        w.flush();
    }
    std::ifstream in(path);
    std::string line;
    int n = 0;
    while (std::getline(in, line))
        EXPECT_EQ(line, "line " + std::to_string(n++));
    EXPECT_EQ(n, 100);
    std::filesystem::remove(path);
    LogWriter bad("/nonexistent-dir/x.log");
    EXPECT_NE(bad.error(), "");
    bad.write("ignored"); // no file: dropped quietly, never blocks
}

} // namespace
} // namespace waf

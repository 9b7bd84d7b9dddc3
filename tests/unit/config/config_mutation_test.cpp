// Mutated configs (values swapped for other types and out-of-range numbers, lines dropped,
// repeated or broken): whatever the text, parsing neither throws nor crashes, and it either
// gives a config or refuses with errors that each name the file and a line of it.
#include "config/config.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using namespace gatehouse::config;

namespace {

constexpr const char* base = R"([server]
workers = 2
log_level = "info"

[modules]
load = ["round_robin", "least_conn"]

[timeouts]
header = "10s"
keepalive = "75s"

[limits]
max_header_bytes = "16k"
max_headers = 100
max_body_bytes = "10m"

[forwarding]
trusted_proxies = ["10.0.0.0/8", "::1/128"]

[[listener]]
name = "main"
listen = "127.0.0.1:8080"

[[listener]]
listen = "[::1]:8081"

[upstream.app]
balancer = "least_conn"
servers = [
  { address = "127.0.0.1:9001", weight = 2 },
  { address = "127.0.0.1:9002" },
]
keepalive = 32
max_fails = 3
fail_backoff = "10s"
connect_timeout = "2s"

[upstream.app.health]
path = "/healthz"
interval = "2s"

[[route]]
name = "api"
host = "api.example.com"
path = "/v1/"
upstream = "app"

[[route]]
path = "/"
upstream = "app"
)";

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        lines.push_back(line);
    return lines;
}

const std::array<const char*, 14> values = {
    "\"x\"", "0", "-1", "99999999999999999999", "true", "[]", "{}", "\"1s\"", "\"-5s\"",
    "\"10m\"", "\"\"", "1.5", "[1, \"a\"]", "\"127.0.0.1:99999\""};

std::string mutate(const std::string& text, std::mt19937& rng) {
    auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
    std::vector<std::string> lines = lines_of(text);
    const size_t edits = 1 + pick(3);
    for (size_t i = 0; i < edits && !lines.empty(); ++i) {
        std::string& line = lines[pick(lines.size())];
        switch (pick(5)) {
        case 0: // another value
            if (auto eq = line.find(" = "); eq != std::string::npos)
                line = line.substr(0, eq + 3) + values[pick(values.size())];
            break;
        case 1: line.clear(); break;                          // dropped
        case 2: lines.push_back(lines[pick(lines.size())]); break; // repeated at the end
        case 3:                                               // a byte changed
            if (!line.empty())
                line[pick(line.size())] = "=[]\"{},.#\\x"[pick(11)];
            break;
        case 4: line.insert(pick(line.size() + 1), 1, '"'); break; // an unbalanced quote
        }
    }
    std::string out;
    for (const auto& line : lines)
        out += line + "\n";
    return out;
}

} // namespace

TEST(ConfigMutation, TheBaseIsValid) {
    Diagnostics diag("test.toml");
    auto config = parse_config(base, "test.toml", diag);
    for (const auto& e : diag.errors())
        ADD_FAILURE() << e.to_string();
    EXPECT_NE(config, nullptr);
}

TEST(ConfigMutation, AnyTextGivesAConfigOrErrorsWithFileAndLine) {
    std::mt19937 rng(20261128);
    int refused = 0, accepted = 0;
    for (int i = 0; i < 3000; ++i) {
        const std::string text = mutate(base, rng);
        const size_t line_count = lines_of(text).size();
        Diagnostics diag("test.toml");
        std::unique_ptr<Config> config;
        ASSERT_NO_THROW(config = parse_config(text, "test.toml", diag)) << text;
        if (diag.errors().empty()) {
            EXPECT_NE(config, nullptr) << text;
            ++accepted;
            continue;
        }
        ++refused;
        for (const auto& e : diag.errors()) {
            const std::string s = e.to_string();
            EXPECT_EQ(s.rfind("test.toml:", 0), 0u) << s;
            EXPECT_GE(e.line, 1u) << s << "\n" << text;
            EXPECT_LE(e.line, line_count + 1) << s << "\n" << text;
            EXPECT_FALSE(e.message.empty()) << s;
        }
    }
    EXPECT_GT(refused, 300);
    EXPECT_GT(accepted, 100);
}

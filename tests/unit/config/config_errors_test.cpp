#include "config/config.hpp"

#include <gtest/gtest.h>

using namespace gatehouse::config;

namespace {
constexpr const char* base = R"(
[modules]
load = ["round_robin"]
[[listener]]
listen = "127.0.0.1:0"
[upstream.app]
servers = [{ address = "127.0.0.1:9001" }]
[[route]]
upstream = "app"
)";

std::vector<std::string> errors_of(const std::string& text) {
    Diagnostics diag("test.toml");
    parse_config(text, "test.toml", diag);
    std::vector<std::string> out;
    for (const auto& e : diag.errors())
        out.push_back(e.to_string());
    return out;
}

bool any_contains(const std::vector<std::string>& errors, std::string_view needle) {
    for (const auto& e : errors)
        if (e.find(needle) != std::string::npos)
            return true;
    return false;
}
} // namespace

TEST(ConfigErrors, ValidConfigHasNoErrors) { EXPECT_TRUE(errors_of(base).empty()); }

TEST(ConfigErrors, UnknownKeyNamesFileLinePathAndSuggestion) {
    auto errors = errors_of(std::string(base) + "[server]\nworkrs = 2\n");
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0], "test.toml:11: [server.workrs] unknown key 'workrs' (did you mean 'workers'?)");
}

TEST(ConfigErrors, WrongTypeIsReported) {
    auto errors = errors_of(std::string(base) + "[server]\nworkers = \"two\"\n");
    EXPECT_TRUE(any_contains(errors, "[server.workers] expected an integer, found a string"));
}

TEST(ConfigErrors, BadDurationAndSize) {
    auto errors = errors_of(std::string(base) + "[timeouts]\nheader = \"10 seconds\"\n[limits]\nmax_body_bytes = \"lots\"\n");
    EXPECT_TRUE(any_contains(errors, "[timeouts.header] expected a duration"));
    EXPECT_TRUE(any_contains(errors, "[limits.max_body_bytes] expected a size"));
}

TEST(ConfigErrors, RouteToUnknownUpstreamSuggestsTheClosest) {
    auto errors = errors_of(std::string(base) + "[[route]]\nupstream = \"ap\"\n");
    EXPECT_TRUE(any_contains(errors, "[route[1].upstream] no [upstream.ap] (did you mean 'app'?)"));
}

TEST(ConfigErrors, BalancerMustBeLoaded) {
    auto errors = errors_of(std::string(base) + "[upstream.other]\nbalancer = \"least_conn\"\nservers = [{ address = \"127.0.0.1:1\" }]\n");
    EXPECT_TRUE(any_contains(errors, "balancer module 'least_conn' is not in modules.load"));
}

TEST(ConfigErrors, ServerListedTwiceInOneUpstream) {
    auto errors = errors_of(std::string(base) + "[upstream.other]\nservers = [\n"
                                                "  { address = \"127.0.0.1:1\" },\n"
                                                "  { address = \"127.0.0.2:1\" },\n"
                                                "  { address = \"127.0.0.1:1\", weight = 2 },\n]\n");
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0], "test.toml:14: [upstream.other.servers[2].address] '127.0.0.1:1' is "
                         "already in this upstream as '127.0.0.1:1'; give one entry a higher "
                         "weight instead");
    // Host names compare without case; the same address in two upstreams is fine.
    errors = errors_of(std::string(base) + "[upstream.other]\nservers = [{ address = "
                       "\"Backend.local:80\" }, { address = \"backend.LOCAL:80\" }]\n"
                       "[upstream.third]\nservers = [{ address = \"127.0.0.1:9001\" }]\n");
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_TRUE(any_contains(errors, "'backend.LOCAL:80' is already in this upstream as "
                                     "'Backend.local:80'"));
}

TEST(ConfigErrors, DuplicateRouteIsRefusedNamingTheFirst) {
    auto errors = errors_of(std::string(base) + "[[route]]\nupstream = \"app\"\n");
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0], "test.toml:10: [route[1]] same host, path and match as route[0] (line 8): "
                         "this one could never be chosen");
    // Another host, path or match is another route.
    EXPECT_TRUE(errors_of(std::string(base) + "[[route]]\nupstream = \"app\"\nhost = \"a\"\n"
                          "[[route]]\nupstream = \"app\"\nmatch = \"exact\"\n[[route]]\n"
                          "upstream = \"app\"\npath = \"/x\"\n").empty());
    // Host names are compared without case, as requests are matched.
    auto twice = errors_of(std::string(base) + "[[route]]\nupstream = \"app\"\nhost = \"A.example\"\n"
                           "[[route]]\nupstream = \"app\"\nhost = \"a.EXAMPLE\"\n");
    EXPECT_TRUE(any_contains(twice, "[route[2]] same host, path and match as route[1]"));
}

TEST(ConfigErrors, RouteHostWithAPortIsRefused) {
    for (const char* host : {"example.com:8080", "[::1]:80", "127.0.0.1:8080"}) {
        auto errors = errors_of(std::string(base) + "[[route]]\nupstream = \"app\"\nhost = \"" +
                                host + "\"\n");
        EXPECT_TRUE(any_contains(errors, std::string("[route[1].host] '") + host)) << host;
        EXPECT_TRUE(any_contains(errors, "has a port")) << host;
    }
    for (const char* host : {"example.com", "[::1]", "127.0.0.1", "*.example.com"})
        EXPECT_TRUE(errors_of(std::string(base) + "[[route]]\nupstream = \"app\"\nhost = \"" +
                              host + "\"\n").empty()) << host;
}

TEST(ConfigErrors, UpstreamHostMustBeAHostName) {
    EXPECT_TRUE(errors_of(std::string(base) + "[upstream.b]\nservers = [{ address = \"127.0.0.1:1\" }]\n"
                          "host = \"app.internal:8080\"\n").empty());
    auto errors = errors_of(std::string(base) + "[upstream.b]\nservers = [{ address = \"127.0.0.1:1\" }]\n"
                            "host = \"a b\\r\\nX-Evil: 1\"\n");
    EXPECT_TRUE(any_contains(errors, "[upstream.b.host] 'a b")) << (errors.empty() ? "" : errors[0]);
}

TEST(ConfigErrors, KeepaliveIsAutoOrANumber) {
    for (const char* value : {"\"auto\"", "0", "64"})
        EXPECT_TRUE(errors_of(std::string(base) + "[upstream.b]\nservers = [{ address = \"127.0.0.1:1\" }]\n"
                              "keepalive = " + value + "\n").empty()) << value;
    auto errors = errors_of(std::string(base) + "[upstream.b]\nservers = [{ address = \"127.0.0.1:1\" }]\n"
                            "keepalive = \"lots\"\n");
    EXPECT_TRUE(any_contains(errors, "[upstream.b.keepalive] 'lots' is neither \"auto\" nor a number"));
    errors = errors_of(std::string(base) + "[upstream.b]\nservers = [{ address = \"127.0.0.1:1\" }]\n"
                       "keepalive = -1\n");
    EXPECT_TRUE(any_contains(errors, "[upstream.b.keepalive] -1 is out of range"));
}

TEST(ConfigErrors, ListenerIsRequiredAndAddressChecked) {
    auto errors = errors_of("[[listener]]\nlisten = \"nowhere\"\n");
    EXPECT_TRUE(any_contains(errors, "[listener[0].listen] 'nowhere' is not ADDRESS:PORT"));
    errors = errors_of("[server]\nworkers = 1\n");
    EXPECT_TRUE(any_contains(errors, "at least one [[listener]] is required"));
}

TEST(ConfigErrors, TomlSyntaxErrorHasALine) {
    auto errors = errors_of("[server\nworkers = 1\n");
    ASSERT_FALSE(errors.empty());
    EXPECT_TRUE(any_contains(errors, "test.toml:1: TOML syntax:"));
}

TEST(ConfigErrors, CidrsAreValidated) {
    auto errors = errors_of(std::string(base) + "[forwarding]\ntrusted_proxies = [\"10.0.0.0/33\"]\n");
    EXPECT_TRUE(any_contains(errors, "[forwarding.trusted_proxies[0]] expected a CIDR"));
}

TEST(Cidr, ContainsMatchesPrefixBits) {
    Cidr c;
    ASSERT_TRUE(parse_cidr("10.1.0.0/16", c));
    uint8_t in[4] = {10, 1, 200, 3}, out[4] = {10, 2, 0, 1};
    EXPECT_TRUE(cidr_contains(c, in, false));
    EXPECT_FALSE(cidr_contains(c, out, false));
    ASSERT_TRUE(parse_cidr("::1/128", c));
    uint8_t loop6[16] = {};
    loop6[15] = 1;
    EXPECT_TRUE(cidr_contains(c, loop6, true));
    EXPECT_FALSE(cidr_contains(c, in, false));
}

#include "admin/config.hpp"

#include <gtest/gtest.h>

using gatehouse::admin::AdminConfig;
using gatehouse::admin::read_admin_config;

namespace {

struct Read {
    AdminConfig config;
    std::vector<std::string> errors;
};

Read read(std::string_view toml_text) {
    toml::table table = toml::parse(toml_text, std::string_view("gatehouse.toml"));
    gatehouse::config::Diagnostics diag("gatehouse.toml");
    gatehouse::config::TableReader reader(table, "admin", diag);
    Read r;
    read_admin_config(reader, r.config);
    for (const auto& d : diag.errors())
        r.errors.push_back(d.to_string());
    return r;
}

} // namespace

TEST(AdminConfig, AbsentListenMeansNoAdminEndpoint) {
    Read r = read("");
    EXPECT_TRUE(r.errors.empty());
    EXPECT_FALSE(r.config.enabled);
}

TEST(AdminConfig, ListenTakesAnIpAndPort) {
    Read v4 = read("listen = \"127.0.0.1:9901\"");
    EXPECT_TRUE(v4.errors.empty());
    EXPECT_TRUE(v4.config.enabled);
    EXPECT_EQ(v4.config.host, "127.0.0.1");
    EXPECT_EQ(v4.config.port, 9901);
    Read v6 = read("listen = \"[::1]:0\"");
    EXPECT_TRUE(v6.errors.empty());
    EXPECT_EQ(v6.config.host, "::1");
    EXPECT_EQ(v6.config.port, 0);
}

TEST(AdminConfig, BadListenValuesAreErrorsAtTheirLine) {
    Read no_port = read("\nlisten = \"127.0.0.1\"");
    ASSERT_EQ(no_port.errors.size(), 1u);
    EXPECT_EQ(no_port.errors[0],
              "gatehouse.toml:2: [admin.listen] '127.0.0.1' is not ADDRESS:PORT");
    Read name = read("listen = \"localhost:9901\"");
    ASSERT_EQ(name.errors.size(), 1u);
    EXPECT_NE(name.errors[0].find("'localhost' is not an IP address"), std::string::npos);
    EXPECT_FALSE(name.config.enabled);
    Read wrong_type = read("listen = 9901");
    EXPECT_EQ(wrong_type.errors.size(), 1u);
}

TEST(AdminConfig, UnknownKeyIsAnErrorWithASuggestion) {
    Read r = read("listen = \"127.0.0.1:9901\"\nlistn = \"x\"");
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_NE(r.errors[0].find("admin.listn"), std::string::npos) << r.errors[0];
    EXPECT_NE(r.errors[0].find("listen"), std::string::npos) << r.errors[0];
}

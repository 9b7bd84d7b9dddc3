#include "admin/status.hpp"

#include "modules/loader.hpp"
#include "upstream/pool.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using gatehouse::admin::config_sha256;
using gatehouse::admin::status_json;
using gatehouse::admin::StatusInputs;
using nlohmann::json;

namespace {

gatehouse::config::UpstreamConfig two_servers() {
    gatehouse::config::UpstreamConfig cfg;
    cfg.name = "app";
    cfg.balancer = "least_conn";
    for (const char* address : {"10.0.0.1:8080", "10.0.0.2:8080"}) {
        gatehouse::config::ServerEntry e;
        e.address = address;
        cfg.servers.push_back(e);
    }
    cfg.servers[1].weight = 3;
    cfg.servers[1].backup = true;
    return cfg;
}

} // namespace

TEST(Status, ConfigHashIsSha256Hex) {
    EXPECT_EQ(config_sha256("abc"),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(config_sha256(""),
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Status, DocumentListsVersionModulesAndUpstreamHealth) {
    gatehouse::modules::LoadedModule module;
    module.name = "least_conn";
    module.path = "/usr/lib/gatehouse/modules/least_conn.so";
    module.desc.version = "1.2.0";
    module.desc.abi_major = 1;
    module.desc.abi_minor = 0;
    module.desc.kinds = GH_KIND_BALANCER;

    gatehouse::upstream::UpstreamPool pool(two_servers(), 0);
    pool.peer(0).inflight = 4;
    pool.peer(0).consecutive_fails = 1;
    pool.peer(1).ejected_until_ns = gatehouse::upstream::now_ns() + 60'000'000'000;

    StatusInputs in;
    in.version = "0.3.0";
    in.config_file = "/etc/gatehouse/gatehouse.toml";
    in.config_hash = config_sha256("x = 1\n");
    in.generation = 2;
    in.started_at = std::chrono::system_clock::from_time_t(1'700'000'000); // 2023-11-14T22:13:20Z
    in.modules = {&module};
    in.pools = {&pool};

    json doc = json::parse(status_json(in));
    EXPECT_EQ(doc["version"], "0.3.0");
    EXPECT_EQ(doc["config_file"], "/etc/gatehouse/gatehouse.toml");
    EXPECT_EQ(doc["config_hash"], config_sha256("x = 1\n"));
    EXPECT_EQ(doc["generation"], 2);
    EXPECT_EQ(doc["started_at"], "2023-11-14T22:13:20Z");
    EXPECT_GT(doc["uptime_seconds"].get<int64_t>(), 0);
    EXPECT_EQ(doc["ready"], true);

    ASSERT_EQ(doc["modules"].size(), 1u);
    EXPECT_EQ(doc["modules"][0], json({{"name", "least_conn"},
                                       {"version", "1.2.0"},
                                       {"abi", "1.0"},
                                       {"kinds", "balancer"},
                                       {"path", "/usr/lib/gatehouse/modules/least_conn.so"}}));

    ASSERT_EQ(doc["upstreams"].size(), 1u);
    const json& app = doc["upstreams"][0];
    EXPECT_EQ(app["name"], "app");
    EXPECT_EQ(app["balancer"], "least_conn");
    ASSERT_EQ(app["servers"].size(), 2u);
    EXPECT_EQ(app["servers"][0], json({{"address", "10.0.0.1:8080"},
                                       {"weight", 1},
                                       {"backup", false},
                                       {"healthy", true},
                                       {"inflight", 4},
                                       {"consecutive_fails", 1}}));
    EXPECT_EQ(app["servers"][1]["healthy"], false) << "an ejected server";
    pool.peer(0).active_healthy = false;
    EXPECT_EQ(json::parse(status_json(in))["upstreams"][0]["servers"][0]["healthy"], false)
        << "a server failing active checks";
    EXPECT_EQ(app["servers"][1]["weight"], 3);
    EXPECT_EQ(app["servers"][1]["backup"], true);
}

TEST(Status, InvalidUtf8InANameDoesNotThrow) {
    gatehouse::modules::LoadedModule module;
    module.name = "bad\xff";
    StatusInputs in;
    in.modules = {&module};
    json doc = json::parse(status_json(in));
    EXPECT_EQ(doc["modules"][0]["version"], "") << "a module without a version string";
    EXPECT_EQ(doc["modules"][0]["abi"], "0.0");
}

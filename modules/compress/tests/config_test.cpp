// compress: the declared keys -- README table, defaults, uniform range errors, per-key checks --
// read through the SDK's fake host.
#include "config.hpp"

#include <gatehouse/sdk/testing.hpp>

#include <gtest/gtest.h>

namespace compress_filter {
namespace {

using gh::testing::Value;

struct Parsed {
    std::unique_ptr<Config> config;
    std::vector<std::string> errors;
};

Parsed parse(const Value &table) {
    gh::testing::FakeHost host;
    Parsed p;
    p.config = gh::testing::parse_table(parse_config, table, Config{});
    p.errors = host.config_errors;
    return p;
}

TEST(CompressConfig, ReadmeKeyTableIsTheDeclaration) {
    EXPECT_EQ(gh::testing::key_table_mismatch(keys(), COMPRESS_README), "");
}

TEST(CompressConfig, EveryDeclaredKeyIsReadAndValidated) {
    auto p = parse(Value::table({{"gzip_level", 4},
                                 {"brotli_block", "64k"},
                                 {"types", Value::array({"text/html"})},
                                 {"flush", "always"},
                                 {"cpu_window", "500ms"},
                                 {"prefer", Value::array({"gzip"})}}));
    ASSERT_TRUE(p.errors.empty()) << p.errors[0];
    EXPECT_EQ(p.config->gzip_params.level, 4);
    EXPECT_EQ(p.config->gzip_params.max_chain, 0); // zlib's own for a level other than 6
    EXPECT_EQ(p.config->brotli_params.block, 64u * 1024);
    EXPECT_EQ(p.config->types, std::vector<std::string>{"text/html"});
    EXPECT_EQ(p.config->flush, FlushPolicy::always);
    EXPECT_EQ(p.config->cpu_window_ms, 500u);
    EXPECT_EQ(p.config->prefer, (std::vector<Coding>{Coding::gzip, Coding::br}));
}

TEST(CompressConfig, RangeErrorsUseTheSdksWording) {
    auto p = parse(Value::table({{"gzip_level", 10},
                                 {"brotli_block", "512"},
                                 {"cpu_window", "5ms"},
                                 {"flush", "never"},
                                 {"types", Value::array({"text"})}}));
    EXPECT_EQ(p.errors,
              (std::vector<std::string>{
                  "gzip_level: must be between 1 and 9, got 10",
                  "brotli_block: must be between 1k and 16m, got 512",
                  "types: media types look like \"type/subtype\", \"type/*\" or \"*/*\", got "
                  "\"text\"",
                  "flush: must be one of \"auto\", \"always\", got \"never\"",
                  "cpu_window: must be between 10ms and 1m, got 5ms"}));
}

TEST(CompressConfig, GzipMemoryOverTheBoundIsRefusedAtTheKey) {
    auto p = parse(Value::table({{"gzip_mem_level", 8}}));
    ASSERT_EQ(p.errors.size(), 1u);
    EXPECT_EQ(p.errors[0].rfind("gzip_mem_level: gzip_window = 15 with gzip_mem_level = 8 needs 262",
                                0),
              0u)
        << p.errors[0];
}

} // namespace
} // namespace compress_filter

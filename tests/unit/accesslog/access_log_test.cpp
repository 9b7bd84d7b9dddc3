#include "accesslog/access_log.hpp"

#include "config/diagnostics.hpp"
#include "config/table_reader.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

using namespace gatehouse::accesslog;
using gatehouse::config::Diagnostics;
using gatehouse::config::TableReader;
using Format = AccessLogConfig::Format;
namespace fs = std::filesystem;

namespace {

// 2026-11-28T01:02:03.456Z
std::chrono::system_clock::time_point fixed_time() {
    using namespace std::chrono;
    return sys_days{year{2026} / November / 28} + hours{1} + minutes{2} + seconds{3} +
           milliseconds{456};
}

AccessRecord sample_record() {
    AccessRecord r;
    r.start = fixed_time();
    r.client_address = "127.0.0.1:5555";
    r.method = "GET";
    r.target = "/api/items?id=7";
    r.host = "example.com";
    r.user_agent = "curl/8.0";
    r.referer = "https://example.com/";
    r.route = "api";
    r.upstream = "app";
    r.upstream_address = "10.0.0.1:9001";
    r.version = 11;
    r.status = 200;
    r.bytes_sent = 1234;
    r.bytes_received = 78;
    r.header_read_us = 120;
    r.upstream_connect_us = 1000;
    r.upstream_first_byte_us = 4200;
    r.total_us = 5499;
    r.termination = "completed";
    r.tls = true;
    r.attempts = 2;
    return r;
}

std::string line_of(Format format, const AccessRecord& r) {
    std::string out;
    format_access_line(format, r, out);
    return out;
}

std::vector<std::string> read_lines(const fs::path& path) {
    std::ifstream in(path);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);)
        lines.push_back(line);
    return lines;
}

class TempDir {
public:
    TempDir() {
        std::string pattern = (fs::temp_directory_path() / "gatehouse-alog-XXXXXX").string();
        path_ = ::mkdtemp(pattern.data());
    }
    ~TempDir() { fs::remove_all(path_); }
    fs::path operator/(const char* name) const { return path_ / name; }

private:
    fs::path path_;
};

std::unique_ptr<AccessLog> open_file(const fs::path& path, Format format) {
    std::string error;
    auto log = AccessLog::open({path.string(), format}, error);
    EXPECT_TRUE(log) << error;
    return log;
}

} // namespace

TEST(AccessLogFormat, CombinedLineIsExact) {
    EXPECT_EQ(line_of(Format::combined, sample_record()),
              "127.0.0.1 - - [28/Nov/2026:01:02:03 +0000] \"GET /api/items?id=7 HTTP/1.1\" 200 "
              "1234 \"https://example.com/\" \"curl/8.0\" upstream=10.0.0.1:9001 route=api "
              "t_header=0.000 t_connect=0.001 t_first_byte=0.004 t_total=0.005 term=completed "
              "attempts=2\n");
}

TEST(AccessLogFormat, CombinedShowsDashForMissingFieldsAndTimings) {
    AccessRecord r;
    r.start = fixed_time();
    r.client_address = "[::1]:5555";
    r.version = 10;
    r.status = 400;
    r.termination = "rejected";
    EXPECT_EQ(line_of(Format::combined, r),
              "::1 - - [28/Nov/2026:01:02:03 +0000] \"-\" 400 0 \"-\" \"-\" upstream=- route=- "
              "t_header=- t_connect=- t_first_byte=- t_total=- term=rejected attempts=0\n");
    r.method = "GET";
    r.target = "/";
    EXPECT_NE(line_of(Format::combined, r).find("\"GET / HTTP/1.0\""), std::string::npos);
}

TEST(AccessLogFormat, CombinedEscapesQuotesBackslashesAndControlBytes) {
    AccessRecord r = sample_record();
    r.user_agent = "evil\"agent\\\n\x01\xff";
    r.referer = "a\tb";
    r.route = "my route";
    std::string line = line_of(Format::combined, r);
    EXPECT_NE(line.find("\"evil\\x22agent\\x5C\\x0A\\x01\\xFF\""), std::string::npos) << line;
    EXPECT_NE(line.find("\"a\\x09b\""), std::string::npos) << line;
    EXPECT_NE(line.find(" route=my\\x20route "), std::string::npos) << line;
    EXPECT_EQ(line.find('\n'), line.size() - 1); // still one line
}

TEST(AccessLogFormat, JsonLineIsExact) {
    EXPECT_EQ(line_of(Format::json, sample_record()),
              R"({"time":"2026-11-28T01:02:03.456Z","client":"127.0.0.1:5555","method":"GET",)"
              R"("target":"/api/items?id=7","version":"HTTP/1.1","host":"example.com",)"
              R"("status":200,"bytes_sent":1234,"bytes_received":78,)"
              R"("referer":"https://example.com/","user_agent":"curl/8.0","route":"api",)"
              R"("upstream":"app","upstream_address":"10.0.0.1:9001","t_header_ms":0.12,)"
              R"("t_connect_ms":1.0,"t_first_byte_ms":4.2,"t_total_ms":5.499,)"
              R"("termination":"completed","tls":true,"attempts":2})"
              "\n");
}

TEST(AccessLogFormat, ModuleFieldsFollowTheKernelsInBothFormats) {
    AccessRecord r = sample_record();
    std::vector<std::pair<std::string, std::string>> fields{{"cache", "HIT"},
                                                            {"waf_rule", "942100 sqli"}};
    r.fields = fields;
    std::string line = line_of(Format::combined, r);
    EXPECT_TRUE(line.ends_with(" term=completed attempts=2 cache=HIT waf_rule=942100\\x20sqli\n"))
        << line;
    line = line_of(Format::json, r);
    EXPECT_TRUE(line.ends_with(R"("attempts":2,"cache":"HIT","waf_rule":"942100 sqli"})" "\n"))
        << line;
}

TEST(AccessLogFormat, JsonParsesBackWithEveryKeyAndNullTimings) {
    AccessRecord r = sample_record();
    r.user_agent = "quote\" newline\n ctl\x01";
    r.upstream_connect_us = -1;
    r.upstream_first_byte_us = -1;
    auto j = nlohmann::json::parse(line_of(Format::json, r));
    for (const char* key :
         {"time", "client", "method", "target", "version", "host", "status", "bytes_sent",
          "bytes_received", "referer", "user_agent", "route", "upstream", "upstream_address",
          "t_header_ms", "t_connect_ms", "t_first_byte_ms", "t_total_ms", "termination", "tls",
          "attempts"})
        EXPECT_TRUE(j.contains(key)) << key;
    EXPECT_EQ(j.size(), 21u);
    EXPECT_EQ(j["user_agent"], "quote\" newline\n ctl\x01");
    EXPECT_TRUE(j["t_connect_ms"].is_null());
    EXPECT_TRUE(j["t_first_byte_ms"].is_null());
    EXPECT_DOUBLE_EQ(j["t_total_ms"].get<double>(), 5.499);
}

TEST(AccessLogFormat, JsonReplacesInvalidUtf8InsteadOfThrowing) {
    AccessRecord r = sample_record();
    r.target = "/caf\xe9";
    std::string line;
    EXPECT_NO_THROW(line = line_of(Format::json, r));
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["target"], "/caf\xef\xbf\xbd"); // U+FFFD
}

TEST(AccessLogFile, LinesFromTwoThreadsAreNeitherTornNorLostNorReordered) {
    TempDir dir;
    fs::path path = dir / "access.log";
    constexpr int per_thread = 20000;
    {
        auto log = open_file(path, Format::json);
        ASSERT_TRUE(log);
        auto produce = [&](unsigned worker) {
            AccessRecord r = sample_record();
            for (int i = 0; i < per_thread; ++i) {
                std::string target = "/w" + std::to_string(worker) + "/" + std::to_string(i);
                r.target = target;
                log->write(worker, r);
                // Pauses let the writer steal partly filled buffers between hand-overs.
                if (i % 2000 == 0)
                    std::this_thread::sleep_for(std::chrono::milliseconds(15));
            }
        };
        std::thread a(produce, 0), b(produce, 1);
        a.join();
        b.join();
        log->flush();
        EXPECT_EQ(log->dropped_lines(), 0u);
    }
    auto lines = read_lines(path);
    ASSERT_EQ(lines.size(), 2u * per_thread);
    int next[2] = {0, 0};
    for (const auto& line : lines) {
        auto target = nlohmann::json::parse(line)["target"].get<std::string>();
        unsigned worker = target[2] - '0';
        ASSERT_LT(worker, 2u) << target;
        EXPECT_EQ(target.substr(4), std::to_string(next[worker]));
        ++next[worker];
    }
    EXPECT_EQ(next[0], per_thread);
    EXPECT_EQ(next[1], per_thread);
}

TEST(AccessLogFile, QuietWorkersLineIsWrittenWithoutFlush) {
    TempDir dir;
    fs::path path = dir / "access.log";
    auto log = open_file(path, Format::combined);
    ASSERT_TRUE(log);
    log->write(3, sample_record());
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (fs::file_size(path) == 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(read_lines(path).size(), 1u);
}

TEST(AccessLogFile, FlushWritesEveryBufferedLine) {
    TempDir dir;
    fs::path path = dir / "access.log";
    auto log = open_file(path, Format::combined);
    ASSERT_TRUE(log);
    log->write(0, sample_record());
    log->write(AccessLog::kMaxWorkers + 5, sample_record()); // out of range: locked path
    log->write(7, sample_record());
    log->flush();
    EXPECT_EQ(read_lines(path).size(), 3u);
}

TEST(AccessLogFile, ReopenAfterRenameWritesToTheNewFile) {
    TempDir dir;
    fs::path path = dir / "access.log";
    fs::path rotated = dir / "access.log.1";
    auto log = open_file(path, Format::combined);
    ASSERT_TRUE(log);
    log->write(0, sample_record());
    log->flush();
    fs::rename(path, rotated);
    log->write(0, sample_record()); // the fd still points at the renamed file
    log->flush();
    log->reopen();
    AccessRecord r = sample_record();
    r.target = "/after-reopen";
    log->write(0, r);
    log->write(1, r);
    log->flush();
    auto old_lines = read_lines(rotated);
    auto new_lines = read_lines(path);
    EXPECT_EQ(old_lines.size(), 2u);
    ASSERT_EQ(new_lines.size(), 2u);
    for (const auto& line : new_lines)
        EXPECT_NE(line.find("/after-reopen"), std::string::npos);
}

TEST(AccessLogFile, OpenFailureNamesThePathAndTheReason) {
    std::string error;
    auto log = AccessLog::open({"/nonexistent-gatehouse-dir/access.log", Format::combined}, error);
    EXPECT_FALSE(log);
    EXPECT_EQ(error, "cannot open access log '/nonexistent-gatehouse-dir/access.log': "
                     "No such file or directory");
}

TEST(AccessLogFile, EmptyPathIsOffNotAnError) {
    std::string error = "stale";
    EXPECT_FALSE(AccessLog::open({}, error));
    EXPECT_TRUE(error.empty());
}

namespace {
struct ConfigResult {
    AccessLogConfig config;
    std::vector<std::string> errors;
};

ConfigResult read_config(const std::string& text) {
    ConfigResult result;
    Diagnostics diag("test.toml");
    toml::table root = toml::parse(text);
    TableReader reader(*root["access_log"].as_table(), "access_log", diag);
    read_access_log_config(reader, "/etc/gatehouse", result.config);
    for (const auto& e : diag.errors())
        result.errors.push_back(e.to_string());
    return result;
}
} // namespace

TEST(AccessLogConfig, DefaultsAreOffAndCombined) {
    auto r = read_config("[access_log]\n");
    EXPECT_TRUE(r.errors.empty());
    EXPECT_EQ(r.config.path, "");
    EXPECT_EQ(r.config.format, Format::combined);
}

TEST(AccessLogConfig, RelativePathIsResolvedAgainstTheConfigDirectory) {
    auto r = read_config("[access_log]\npath = \"logs/access.log\"\nformat = \"json\"\n");
    EXPECT_TRUE(r.errors.empty());
    EXPECT_EQ(r.config.path, "/etc/gatehouse/logs/access.log");
    EXPECT_EQ(r.config.format, Format::json);
    EXPECT_EQ(read_config("[access_log]\npath = \"stdout\"\n").config.path, "stdout");
    EXPECT_EQ(read_config("[access_log]\npath = \"/var/log/a.log\"\n").config.path,
              "/var/log/a.log");
}

TEST(AccessLogConfig, UnknownFormatNamesTheAllowedValues) {
    auto r = read_config("[access_log]\nformat = \"xml\"\n");
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0],
              "test.toml:2: [access_log.format] unknown format 'xml' (allowed: combined, json)");
}

TEST(AccessLogConfig, UnknownKeyAndWrongTypeAreErrors) {
    auto r = read_config("[access_log]\nfromat = \"json\"\npath = 3\n");
    ASSERT_EQ(r.errors.size(), 2u);
    EXPECT_EQ(r.errors[0], "test.toml:3: [access_log.path] expected a string, found an integer");
    EXPECT_EQ(r.errors[1],
              "test.toml:2: [access_log.fromat] unknown key 'fromat' (did you mean 'format'?)");
}

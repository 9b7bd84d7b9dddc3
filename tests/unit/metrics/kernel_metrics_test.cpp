#include "metrics/kernel_metrics.hpp"

#include "metrics.hpp"
#include "upstream/pool.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <unistd.h>

using gatehouse::metrics::GenerationMetrics;
using gatehouse::metrics::KernelMetrics;
using gatehouse::metrics::kNoRoute;

namespace {

bool has_line(const std::string& text, const std::string& line) {
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);)
        if (l == line)
            return true;
    return false;
}

#define EXPECT_LINE(text, line)                                                                    \
    EXPECT_TRUE(has_line(text, line)) << "missing: " << line << "\n" << text

// The exposition format, line by line (text format 0.0.4): HELP/TYPE comments, samples
// `name{labels} value` of a declared family, histograms with _bucket/_sum/_count and every
// bucket series ending in le="+Inf" with counts that never decrease. Returns the problems.
std::vector<std::string> lint_exposition(const std::string& text) {
    static const std::regex help(R"re(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .*$)re");
    static const std::regex type(
        R"re(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$)re");
    static const std::regex sample(
        R"re(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*")(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*")*)?\})? ([-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?|[-+]?Inf|NaN)$)re");
    static const std::regex le(R"re((^|,)le="([^"]*)")re");
    std::vector<std::string> problems;
    std::map<std::string, std::string> types;
    std::set<std::string> helped;
    std::map<std::string, std::pair<std::string, double>> last_bucket; // series -> (le, count)
    std::set<std::string> sums, counts;
    std::istringstream in(text);
    std::smatch m;
    for (std::string line; std::getline(in, line);) {
        if (std::regex_match(line, m, help)) {
            helped.insert(m[1]);
        } else if (std::regex_match(line, m, type)) {
            if (types.count(m[1]))
                problems.push_back("TYPE twice: " + line);
            types[m[1]] = m[2];
        } else if (std::regex_match(line, m, sample)) {
            std::string name = m[1], labels = m[3];
            double value = std::strtod(m[8].str().c_str(), nullptr);
            std::string family = name;
            for (const char* suffix : {"_bucket", "_sum", "_count"})
                if (!types.count(name) && name.size() > std::strlen(suffix) &&
                    name.ends_with(suffix))
                    family = name.substr(0, name.size() - std::strlen(suffix));
            if (!types.count(family) || !helped.count(family)) {
                problems.push_back("sample without HELP/TYPE: " + line);
                continue;
            }
            if (types[family] != "histogram")
                continue;
            std::string series_labels = std::regex_replace(labels, le, "");
            std::string key = family + "{" + series_labels + "}";
            if (name == family + "_bucket") {
                std::smatch bound;
                if (!std::regex_search(labels, bound, le)) {
                    problems.push_back("bucket without le: " + line);
                    continue;
                }
                auto& [previous_le, previous_count] = last_bucket[key];
                if (value < previous_count)
                    problems.push_back("bucket counts decrease: " + line);
                previous_le = bound[2];
                previous_count = value;
            } else if (name == family + "_sum") {
                sums.insert(key);
            } else if (name == family + "_count") {
                counts.insert(key);
                if (last_bucket[key].second != value)
                    problems.push_back("_count differs from the +Inf bucket: " + line);
            } else {
                problems.push_back("histogram sample that is no _bucket/_sum/_count: " + line);
            }
        } else {
            problems.push_back("not exposition format: " + line);
        }
    }
    for (const auto& [key, bucket] : last_bucket) {
        if (bucket.first != "+Inf")
            problems.push_back("bucket series not ending in le=\"+Inf\": " + key);
        if (!sums.count(key) || !counts.count(key))
            problems.push_back("histogram without _sum/_count: " + key);
    }
    return problems;
}

// promtool's own parser and linter, when the prometheus package is installed.
bool promtool_accepts(const std::string& text, std::string& output) {
    auto file = std::filesystem::temp_directory_path() /
                ("gatehouse-metrics-" + std::to_string(::getpid()) + ".txt");
    std::ofstream(file) << text;
    std::string command = "promtool check metrics < " + file.string() + " 2>&1";
    FILE* pipe = ::popen(command.c_str(), "r");
    char chunk[512];
    while (pipe && std::fgets(chunk, sizeof chunk, pipe))
        output += chunk;
    int status = pipe ? ::pclose(pipe) : -1;
    std::filesystem::remove(file);
    return status == 0;
}

} // namespace

TEST(KernelMetrics, IncrementsFromTwoWorkersSumExactlyWhileScraped) {
    KernelMetrics km(2);
    GenerationMetrics g = km.bind({"api"}, {"app"});
    constexpr int kPerWorker = 200'000;
    std::atomic<bool> done{false};
    std::thread scraper([&] {
        while (!done.load())
            (void)km.render({});
    });
    auto work = [&](unsigned worker) {
        for (int i = 0; i < kPerWorker; ++i) {
            km.shard(worker).connection_opened();
            g.request_done(worker, 0, 200, 1500);
            g.upstream_attempt(worker, 0, 700);
            g.upstream_connection(worker, 0, i % 2 == 0);
            km.shard(worker).connection_closed();
        }
    };
    std::thread w0(work, 0), w1(work, 1);
    w0.join();
    w1.join();
    done = true;
    scraper.join();

    std::string text = km.render({});
    EXPECT_LINE(text, "gatehouse_requests_total{route=\"api\",code_class=\"2xx\"} 400000");
    EXPECT_LINE(text, "gatehouse_request_duration_seconds_count{route=\"api\"} 400000");
    EXPECT_LINE(text, "gatehouse_request_duration_seconds_sum{route=\"api\"} 600");
    EXPECT_LINE(text,
                "gatehouse_upstream_response_duration_seconds_count{upstream=\"app\"} 400000");
    EXPECT_LINE(text,
                "gatehouse_upstream_connections_total{upstream=\"app\",reused=\"true\"} 200000");
    EXPECT_LINE(text,
                "gatehouse_upstream_connections_total{upstream=\"app\",reused=\"false\"} 200000");
    EXPECT_LINE(text, "gatehouse_connections_total 400000");
    EXPECT_LINE(text, "gatehouse_connections_open 0");
}

TEST(KernelMetrics, StatusesCountInTheirCodeClass) {
    KernelMetrics km(1);
    GenerationMetrics g = km.bind({"web"}, {});
    for (unsigned status : {101u, 200u, 204u, 301u, 404u, 431u, 502u, 504u})
        g.request_done(0, 0, status, 10);
    g.request_done(0, kNoRoute, 404, 10);
    g.request_done(0, 0, 0, 10); // aborted before any response: not counted
    g.request_done(0, 0, 600, 10);
    std::string text = km.render({});
    EXPECT_LINE(text, "gatehouse_requests_total{route=\"web\",code_class=\"1xx\"} 1");
    EXPECT_LINE(text, "gatehouse_requests_total{route=\"web\",code_class=\"2xx\"} 2");
    EXPECT_LINE(text, "gatehouse_requests_total{route=\"web\",code_class=\"3xx\"} 1");
    EXPECT_LINE(text, "gatehouse_requests_total{route=\"web\",code_class=\"4xx\"} 2");
    EXPECT_LINE(text, "gatehouse_requests_total{route=\"web\",code_class=\"5xx\"} 2");
    EXPECT_LINE(text, "gatehouse_requests_total{route=\"\",code_class=\"4xx\"} 1")
        << "a request that matched no route";
    EXPECT_LINE(text, "gatehouse_request_duration_seconds_count{route=\"web\"} 8");
}

TEST(KernelMetrics, HistogramBucketsAreCumulativeAndEndWithInf) {
    KernelMetrics km(1);
    GenerationMetrics g = km.bind({"r"}, {});
    for (uint64_t us : {500u, 1'000u, 3'000u, 20'000u, 30'000'000u})
        g.request_done(0, 0, 200, us);
    std::string text = km.render({});
    auto bucket = [](const char* le, int n) {
        return fmt::format("gatehouse_request_duration_seconds_bucket{{route=\"r\",le=\"{}\"}} {}",
                           le, n);
    };
    EXPECT_LINE(text, bucket("0.001", 2)) << "an observation equal to a bound is in its bucket";
    EXPECT_LINE(text, bucket("0.005", 3));
    EXPECT_LINE(text, bucket("0.01", 3));
    EXPECT_LINE(text, bucket("0.025", 4));
    EXPECT_LINE(text, bucket("10", 4));
    EXPECT_LINE(text, bucket("+Inf", 5));
    EXPECT_LINE(text, "gatehouse_request_duration_seconds_count{route=\"r\"} 5");
    EXPECT_LINE(text, "gatehouse_request_duration_seconds_sum{route=\"r\"} 30.0245");
}

TEST(KernelMetrics, ConnectionsTlsAndRejectsAreCounted) {
    KernelMetrics km(2);
    for (int i = 0; i < 3; ++i)
        km.shard(i % 2).connection_opened();
    km.shard(1).connection_closed();
    km.shard(0).tls_handshake(false);
    km.shard(1).tls_handshake(true);
    km.shard(1).tls_handshake(true);
    km.shard(0).tls_handshake_failed();
    km.shard(0).rejected(431);
    km.shard(1).rejected(431);
    km.shard(1).rejected(400);
    km.shard(1).rejected(42); // not a status: ignored, not a crash
    std::string text = km.render({});
    EXPECT_LINE(text, "gatehouse_connections_open 2");
    EXPECT_LINE(text, "gatehouse_connections_total 3");
    EXPECT_LINE(text, "gatehouse_tls_handshakes_total{resumed=\"false\"} 1");
    EXPECT_LINE(text, "gatehouse_tls_handshakes_total{resumed=\"true\"} 2");
    EXPECT_LINE(text, "gatehouse_tls_handshake_failures_total 1");
    EXPECT_LINE(text, "gatehouse_requests_rejected_total{code=\"431\"} 2");
    EXPECT_LINE(text, "gatehouse_requests_rejected_total{code=\"400\"} 1");
    EXPECT_EQ(text.find("code=\"413\""), std::string::npos) << "codes never seen are not listed";
}

TEST(KernelMetrics, SeriesKeepTheirCountsAcrossReloads) {
    KernelMetrics km(1);
    GenerationMetrics first = km.bind({"a", "b"}, {"app"});
    first.request_done(0, 1, 200, 10);
    GenerationMetrics second = km.bind({"b", "c"}, {"app"});
    second.request_done(0, 0, 200, 10);
    first.request_done(0, 1, 200, 10); // a request still finishing on the old generation
    std::string text = km.render({});
    EXPECT_LINE(text, "gatehouse_requests_total{route=\"b\",code_class=\"2xx\"} 3");
    EXPECT_LINE(text, "gatehouse_requests_total{route=\"c\",code_class=\"2xx\"} 0");
}

TEST(KernelMetrics, ServerHealthAndInflightAreReadFromThePool) {
    gatehouse::config::UpstreamConfig cfg;
    cfg.name = "app";
    for (const char* address : {"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"}) {
        gatehouse::config::ServerEntry e;
        e.address = address;
        cfg.servers.push_back(e);
    }
    gatehouse::upstream::UpstreamPool pool(cfg, 0);
    pool.peer(0).inflight = 3;
    pool.peer(1).ejected_until_ns = gatehouse::upstream::now_ns() + 60'000'000'000;
    pool.peer(2).active_healthy = false;
    KernelMetrics km(1);
    std::string text = km.render({&pool});
    EXPECT_LINE(text,
                "gatehouse_upstream_server_inflight{upstream=\"app\",server=\"10.0.0.1:80\"} 3");
    EXPECT_LINE(text,
                "gatehouse_upstream_server_healthy{upstream=\"app\",server=\"10.0.0.1:80\"} 1");
    EXPECT_LINE(text,
                "gatehouse_upstream_server_healthy{upstream=\"app\",server=\"10.0.0.2:80\"} 0")
        << "passively ejected";
    EXPECT_LINE(text,
                "gatehouse_upstream_server_healthy{upstream=\"app\",server=\"10.0.0.3:80\"} 0")
        << "failing active checks";
}

TEST(KernelMetrics, LabelValuesAreEscaped) {
    KernelMetrics km(1);
    GenerationMetrics g = km.bind({"say \"hi\"\\"}, {});
    g.request_done(0, 0, 200, 1);
    EXPECT_LINE(km.render({}),
                "gatehouse_requests_total{route=\"say \\\"hi\\\"\\\\\",code_class=\"2xx\"} 1");
}

// The whole /metrics text (kernel + module metrics) must parse as Prometheus text format.
TEST(KernelMetrics, MetricsPageIsValidPrometheusText) {
    KernelMetrics km(2);
    GenerationMetrics g = km.bind({"api", "web"}, {"app"});
    g.request_done(0, 0, 200, 1234);
    g.request_done(1, kNoRoute, 404, 50);
    g.upstream_attempt(1, 0, 900);
    km.shard(0).rejected(400);
    gatehouse::config::UpstreamConfig cfg;
    cfg.name = "app";
    cfg.servers.resize(1);
    cfg.servers[0].address = "127.0.0.1:9000";
    gatehouse::upstream::UpstreamPool pool(cfg, 0);

    std::string error;
    gh_metric* hits = gatehouse::metrics::register_metric(GH_METRIC_COUNTER, "kmtest_hits_total",
                                                          "Hits.", {"kind"}, {}, error);
    gh_metric* sizes = gatehouse::metrics::register_metric(GH_METRIC_HISTOGRAM, "kmtest_size_bytes",
                                                           "Sizes.", {}, {100, 1000}, error);
    ASSERT_TRUE(hits && sizes) << error;
    gh_str_t kind{"a", 1};
    gatehouse::metrics::record(hits, GH_METRIC_ADD, &kind, 1, 2);
    gatehouse::metrics::record(sizes, GH_METRIC_OBSERVE, nullptr, 0, 500);

    std::string page = km.render({&pool}) + gatehouse::metrics::render_prometheus();
    std::vector<std::string> problems = lint_exposition(page);
    std::printf("[ checked  ] exposition format with the built-in line check\n");
    EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems) << "\n" << page;

    if (std::system("command -v promtool > /dev/null 2>&1") == 0) {
        std::string output;
        std::printf("[ checked  ] exposition format with promtool check metrics\n");
        EXPECT_TRUE(promtool_accepts(page, output)) << output << "\n" << page;
    } else {
        std::printf("[ skipped  ] promtool not installed: built-in line check only\n");
    }
}

TEST(KernelMetrics, LineCheckCatchesBrokenExposition) {
    EXPECT_FALSE(lint_exposition("gatehouse_x 1\n").empty()) << "no TYPE";
    EXPECT_FALSE(lint_exposition("# HELP h h\n# TYPE h histogram\n"
                                 "h_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n")
                     .empty())
        << "no +Inf bucket";
    EXPECT_FALSE(lint_exposition("# HELP c c\n# TYPE c counter\nc{a=b} 1\n").empty())
        << "unquoted label";
    EXPECT_TRUE(lint_exposition("# HELP c c\n# TYPE c counter\nc{a=\"b\"} 1.5e3\n").empty());
}

// waf: the audit writer and the JSON events (nlohmann-json).
#include "audit.hpp"

#include <gatehouse/sdk/http.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

namespace waf {

LogWriter::LogWriter(std::string path) : path_(std::move(path)) {
    file_ = std::fopen(path_.c_str(), "ae");
    if (file_ == nullptr) {
        error_ = std::strerror(errno);
        return;
    }
    thread_ = std::thread([this] { run(); });
}

LogWriter::~LogWriter() {
    {
        std::lock_guard g(lock_);
        stop_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable())
        thread_.join();
    if (file_ != nullptr)
        std::fclose(file_);
}

void LogWriter::write(std::string line) {
    if (file_ == nullptr)
        return;
    {
        std::lock_guard g(lock_);
        if (pending_.size() >= kMaxPending) {
            dropped_.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        pending_.push_back(std::move(line));
    }
    wake_.notify_one();
}

void LogWriter::flush() {
    std::unique_lock g(lock_);
    drained_.wait(g, [this] { return (pending_.empty() && !writing_) || file_ == nullptr; });
}

void LogWriter::run() {
    std::deque<std::string> batch;
    std::unique_lock g(lock_);
    for (;;) {
        wake_.wait(g, [this] { return stop_ || !pending_.empty(); });
        if (pending_.empty() && stop_)
            return;
        batch.swap(pending_);
        writing_ = true;
        g.unlock();
        for (const std::string &line : batch) {
            std::fwrite(line.data(), 1, line.size(), file_);
            std::fputc('\n', file_);
        }
        std::fflush(file_);
        batch.clear();
        g.lock();
        writing_ = false;
        drained_.notify_all();
    }
}

namespace {

// Cut at max bytes, not inside a UTF-8 sequence; "…" marks the cut.
std::string truncated(std::string_view s, size_t max) {
    if (s.size() <= max)
        return std::string(s);
    size_t n = max;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80)
        --n;
    return std::string(s.substr(0, n)) + "…";
}

// Replace the text from `from` up to the first `end` (or the end of text) by "[redacted]".
void blank_after(std::string &text, size_t from, std::string_view end) {
    size_t stop = end.empty() ? std::string::npos : text.find(end, from);
    if (stop == std::string::npos)
        stop = text.size();
    text.replace(from, stop - from, "[redacted]");
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char &c : out)
        c = gh::http::ascii_lower(c);
    return out;
}

std::string iso_time() {
    using namespace std::chrono;
    const auto now = system_clock::now();
    const std::time_t t = system_clock::to_time_t(now);
    const auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(ms));
    return buf;
}

} // namespace

std::string redact(std::string_view text, const std::vector<std::string> &names,
                   const std::vector<std::string> &values) {
    std::string out(text);
    for (const std::string &v : values) {
        if (v.size() < 2)
            continue; // one character would blank half the message
        for (size_t at = out.find(v); at != std::string::npos;
             at = out.find(v, at + sizeof("[redacted]") - 1))
            out.replace(at, v.size(), "[redacted]");
    }
    const std::string low = lower(out);
    // Work from the end so earlier offsets stay valid.
    std::vector<std::pair<size_t, std::string_view>> cuts;
    for (const std::string &name : names) {
        const std::string n = lower(name);
        for (size_t at = low.find(":" + n); at != std::string::npos;
             at = low.find(":" + n, at + 1)) {
            const size_t after = at + 1 + n.size();
            if (low.compare(after, 2, ": ") == 0)
                cuts.emplace_back(after + 2, std::string_view()); // "found within ARGS:n: v"
            else if (low.compare(after, 10, "' (value: ") == 0)
                cuts.emplace_back(after + 11, "' )"); // "variable `ARGS:n' (Value: `v' )"
        }
    }
    std::sort(cuts.begin(), cuts.end(), [](auto &a, auto &b) { return a.first > b.first; });
    for (const auto &[from, end] : cuts)
        if (from <= out.size())
            blank_after(out, from, end);
    return out;
}

std::string audit_event(const AuditInput &in) {
    static const std::vector<std::string> none;
    const auto &names = in.redact_names ? *in.redact_names : none;
    nlohmann::json rules = nlohmann::json::array();
    if (in.hits != nullptr)
        for (const Hit &h : *in.hits) {
            nlohmann::json r = {{"id", h.id},
                                {"phase", h.phase},
                                {"message", truncated(redact(h.message, names, in.secret_values),
                                                      in.match_max)},
                                {"data", truncated(redact(h.data, names, in.secret_values),
                                                   in.match_max)}};
            if (h.severity >= 0)
                r["severity"] = h.severity;
            if (h.disruptive)
                r["disruptive"] = true;
            rules.push_back(std::move(r));
        }
    nlohmann::json scores = nlohmann::json::object();
    if (!in.inbound_score.empty())
        scores["inbound"] = std::atoi(in.inbound_score.c_str());
    if (!in.outbound_score.empty())
        scores["outbound"] = std::atoi(in.outbound_score.c_str());
    nlohmann::json e = {
        {"time", iso_time()},
        {"id", in.id},
        {"client", in.client},
        {"method", in.method},
        {"host", in.host},
        {"uri", truncated(redact(in.uri, names, in.secret_values), 2048)},
        {"route", in.route},
        {"mode", in.mode},
        {"action", in.action},
        {"phase", in.phase},
        {"status", in.status},
        {"rules", std::move(rules)},
        {"scores", std::move(scores)},
    };
    return e.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace waf

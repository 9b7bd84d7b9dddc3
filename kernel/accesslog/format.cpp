// Line formats of the access log: NCSA combined with extra key=value fields, and JSON.
#include "accesslog/access_log.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <iterator>

namespace gatehouse::accesslog {

namespace {

struct UtcTime {
    int year;
    unsigned month, day, hour, minute, second, millisecond;
};

// Calendar arithmetic instead of gmtime_r: no libc call per line.
UtcTime utc_time(std::chrono::system_clock::time_point tp) {
    using namespace std::chrono;
    auto ms = floor<milliseconds>(tp);
    auto day = floor<days>(ms);
    year_month_day ymd{day};
    hh_mm_ss hms{ms - day};
    return {int(ymd.year()),
            unsigned(ymd.month()),
            unsigned(ymd.day()),
            unsigned(hms.hours().count()),
            unsigned(hms.minutes().count()),
            unsigned(hms.seconds().count()),
            unsigned(hms.subseconds().count())};
}

// Like nginx's default escaping: '"', '\' (so the escape is unambiguous), control bytes and
// non-ASCII bytes become \xHH, so one request is always one parseable line. Unquoted key=value
// fields escape spaces too.
bool needs_escape(unsigned char c, bool escape_space) {
    return c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || (escape_space && c == ' ');
}

void append_escaped(std::string& out, std::string_view s, bool escape_space = false) {
    static constexpr char hex[] = "0123456789ABCDEF";
    size_t clean = 0;
    for (size_t i = 0; i < s.size(); ++i) {
        auto c = static_cast<unsigned char>(s[i]);
        if (!needs_escape(c, escape_space))
            continue;
        out.append(s.substr(clean, i - clean));
        const char escaped[4] = {'\\', 'x', hex[c >> 4], hex[c & 0xf]};
        out.append(escaped, 4);
        clean = i + 1;
    }
    out.append(s.substr(clean));
}

// nginx prints "-" for an empty variable.
void append_field(std::string& out, std::string_view s, bool escape_space = false) {
    if (s.empty())
        out += '-';
    else
        append_escaped(out, s, escape_space);
}

// "127.0.0.1:5555" -> "127.0.0.1", "[::1]:5555" -> "::1"; anything else as it is.
std::string_view client_ip(std::string_view address) {
    if (!address.empty() && address.front() == '[') {
        size_t close = address.find(']');
        return close == std::string_view::npos ? address : address.substr(1, close - 1);
    }
    size_t colon = address.find(':');
    if (colon != std::string_view::npos && address.find(':', colon + 1) == std::string_view::npos)
        return address.substr(0, colon);
    return address;
}

std::string version_text(unsigned version) {
    return fmt::format("HTTP/{}.{}", version / 10, version % 10);
}

// Seconds with millisecond precision (rounded), as nginx's $request_time; "-" for n/a.
void append_seconds(std::string& out, int64_t us) {
    if (us < 0) {
        out += '-';
        return;
    }
    int64_t ms = (us + 500) / 1000;
    fmt::format_to(std::back_inserter(out), "{}.{:03}", ms / 1000, ms % 1000);
}

void append_combined(const AccessRecord& r, std::string& out) {
    static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    UtcTime t = utc_time(r.start);
    append_field(out, client_ip(r.client_address), true);
    fmt::format_to(std::back_inserter(out), " - - [{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000] \"",
                   t.day, months[(t.month - 1) % 12], t.year, t.hour, t.minute, t.second);
    if (r.method.empty()) {
        out += '-'; // no parseable request line
    } else {
        append_escaped(out, r.method);
        out += ' ';
        append_escaped(out, r.target);
        out += ' ';
        out += version_text(r.version);
    }
    fmt::format_to(std::back_inserter(out), "\" {} {} \"", r.status, r.bytes_sent);
    append_field(out, r.referer);
    out += "\" \"";
    append_field(out, r.user_agent);
    out += "\" upstream=";
    append_field(out, r.upstream_address, true);
    out += " route=";
    append_field(out, r.route, true);
    const std::pair<const char*, int64_t> timings[] = {
        {" t_header=", r.header_read_us},
        {" t_connect=", r.upstream_connect_us},
        {" t_first_byte=", r.upstream_first_byte_us},
        {" t_total=", r.total_us}};
    for (auto [name, us] : timings) {
        out += name;
        append_seconds(out, us);
    }
    out += " term=";
    append_field(out, r.termination, true);
    fmt::format_to(std::back_inserter(out), " attempts={}", r.attempts);
    for (const auto& [name, value] : r.fields) {
        out += ' ';
        append_field(out, name, true);
        out += '=';
        append_field(out, value, true);
    }
    out += '\n';
}

nlohmann::ordered_json milliseconds_or_null(int64_t us) {
    if (us < 0)
        return nullptr;
    return static_cast<double>(us) / 1000.0;
}

std::string iso_time(std::chrono::system_clock::time_point tp) {
    UtcTime t = utc_time(tp);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", t.year, t.month, t.day,
                       t.hour, t.minute, t.second, t.millisecond);
}

// ordered_json keeps the keys in the documented order, which is easier to read than sorted.
void append_json(const AccessRecord& r, std::string& out) {
    auto str = [](std::string_view s) { return std::string(s); };
    nlohmann::ordered_json j;
    j["time"] = iso_time(r.start);
    j["client"] = str(r.client_address);
    j["method"] = str(r.method);
    j["target"] = str(r.target);
    j["version"] = version_text(r.version);
    j["host"] = str(r.host);
    j["status"] = r.status;
    j["bytes_sent"] = r.bytes_sent;
    j["bytes_received"] = r.bytes_received;
    j["referer"] = str(r.referer);
    j["user_agent"] = str(r.user_agent);
    j["route"] = str(r.route);
    j["upstream"] = str(r.upstream);
    j["upstream_address"] = str(r.upstream_address);
    j["t_header_ms"] = milliseconds_or_null(r.header_read_us);
    j["t_connect_ms"] = milliseconds_or_null(r.upstream_connect_us);
    j["t_first_byte_ms"] = milliseconds_or_null(r.upstream_first_byte_us);
    j["t_total_ms"] = milliseconds_or_null(r.total_us);
    j["termination"] = str(r.termination);
    j["tls"] = r.tls;
    j["attempts"] = r.attempts;
    for (const auto& [name, value] : r.fields)
        j[name] = value; // "MODULE.name": never a kernel field
    // Request bytes are not guaranteed UTF-8: replace bad sequences rather than throw.
    out += j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    out += '\n';
}

} // namespace

void format_access_line(AccessLogConfig::Format format, const AccessRecord& record,
                        std::string& out) {
    if (format == AccessLogConfig::Format::json)
        append_json(record, out);
    else
        append_combined(record, out);
}

} // namespace gatehouse::accesslog

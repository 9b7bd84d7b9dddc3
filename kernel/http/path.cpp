#include "http/path.hpp"

namespace gatehouse::http {

namespace {
int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool is_unreserved(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

// Decodes %XX of unreserved characters; upper-cases the rest. False on a malformed escape.
bool decode_unreserved(std::string_view path, std::string& out) {
    static constexpr char digits[] = "0123456789ABCDEF";
    out.clear();
    for (size_t i = 0; i < path.size(); ++i) {
        char c = path[i];
        if (c != '%') {
            out.push_back(c);
            continue;
        }
        if (i + 2 >= path.size())
            return false;
        int hi = hex_value(path[i + 1]);
        int lo = hex_value(path[i + 2]);
        if (hi < 0 || lo < 0)
            return false;
        auto decoded = static_cast<unsigned char>(hi * 16 + lo);
        if (is_unreserved(decoded)) {
            out.push_back(static_cast<char>(decoded));
        } else {
            out.push_back('%');
            out.push_back(digits[hi]);
            out.push_back(digits[lo]);
        }
        i += 2;
    }
    return true;
}

// RFC 3986 §5.2.4 remove_dot_segments, plus merging empty segments. False if ".." climbs
// above the root.
bool remove_dot_segments(const std::string& in, std::string& out) {
    out.clear();
    size_t i = 0;
    while (i < in.size()) {
        // in[i] == '/' always here
        size_t next = in.find('/', i + 1);
        if (next == std::string::npos)
            next = in.size();
        std::string_view segment(in.data() + i + 1, next - i - 1);
        bool last = next == in.size();
        if (segment == ".") {
            if (last)
                out.push_back('/');
        } else if (segment == "..") {
            if (out.empty())
                return false;
            out.resize(out.rfind('/'));
            if (last)
                out.push_back('/');
        } else if (segment.empty()) {
            if (last)
                out.push_back('/');
        } else {
            out.push_back('/');
            out.append(segment);
        }
        i = next;
    }
    if (out.empty())
        out = "/";
    return true;
}
} // namespace

bool normalise_target(std::string_view target, std::string& out_path, std::string_view& query) {
    if (target.empty() || target[0] != '/')
        return false;
    size_t q = target.find('?');
    std::string_view path = target.substr(0, q);
    query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
    // RFC 9112 §3.2: a request-target has no fragment; '#' is not allowed in the query either.
    if (target.find('#') != std::string_view::npos)
        return false;
    // Most paths need nothing done: no escapes, no empty or dot segments.
    bool plain = true;
    for (size_t i = 0; i < path.size() && plain; ++i)
        plain = path[i] != '%' &&
                !(path[i] == '/' && i + 1 < path.size() && (path[i + 1] == '/' || path[i + 1] == '.'));
    if (plain) {
        out_path.assign(path);
        return true;
    }
    thread_local std::string decoded;
    if (!decode_unreserved(path, decoded))
        return false;
    return remove_dot_segments(decoded, out_path);
}

} // namespace gatehouse::http

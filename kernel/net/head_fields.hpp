// Building the head sent on to the other side: the fields a message's Connection header makes
// hop-by-hop, and copying the fields that go on.
#pragma once

#include "http/message.hpp"

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::net {

// The names a message's Connection headers list: hop-by-hop for this message only (RFC 9110
// §7.6.1). Scanned only when the parser (or a module's edit) saw such a name, so the common
// message pays nothing.
class ConnectionOptions {
public:
    ConnectionOptions(const std::vector<http::Field>& fields, const http::Framing& framing);
    bool lists(std::string_view name) const;

private:
    std::vector<std::string_view> names_;
};

// "HTTP/1.1 NNN reason" CRLF at the end of `out`; `code` is 100..599.
inline void append_status_line(std::string& out, unsigned code, std::string_view reason) {
    const char line[] = {'H', 'T', 'T', 'P', '/', '1', '.', '1', ' ',
                         static_cast<char>('0' + code / 100),
                         static_cast<char>('0' + code / 10 % 10),
                         static_cast<char>('0' + code % 10), ' '};
    out.append(line, sizeof line);
    out.append(reason);
    out.append("\r\n");
}

// "name: value" CRLF at the end of `out`.
inline void append_field(std::string& out, std::string_view name, std::string_view value) {
    size_t at = out.size();
    out.resize(at + name.size() + value.size() + 4);
    char* p = out.data() + at;
    std::memcpy(p, name.data(), name.size());
    p += name.size();
    *p++ = ':';
    *p++ = ' ';
    std::memcpy(p, value.data(), value.size());
    p += value.size();
    *p++ = '\r';
    *p = '\n';
}

// Adds the Content-Length field a head goes on with: the parser took only digits, but "010"
// is read as octal 8 by a peer that parses with strtol(..., 0) -- a desync -- so anything but
// the plain decimal spelling is written again from the parsed value.
class FieldWriter;
void add_content_length(FieldWriter& fields, std::string& out, const http::Field& f,
                        uint64_t length);

// Appends header fields to a head being built. A field that is still its original
// "name: value" CRLF line in the stored head is copied from there, and consecutive such lines
// in one copy; any other (added or edited by a module, unusual whitespace) is formatted.
class FieldWriter {
public:
    FieldWriter(std::string& out, std::string_view stored)
        : out_(out), lo_(address(stored.data())), hi_(lo_ + stored.size()) {}
    FieldWriter(const FieldWriter&) = delete;
    FieldWriter& operator=(const FieldWriter&) = delete;
    ~FieldWriter() { flush(); }

    void add(const http::Field& f);
    void flush() {
        if (run_begin_)
            out_.append(run_begin_, static_cast<size_t>(run_end_ - run_begin_));
        run_begin_ = run_end_ = nullptr;
    }

private:
    static uintptr_t address(const char* p) { return reinterpret_cast<uintptr_t>(p); }
    std::string& out_;
    uintptr_t lo_, hi_;
    const char* run_begin_ = nullptr;
    const char* run_end_ = nullptr;
};

} // namespace gatehouse::net

#include "net/head_fields.hpp"

#include <fmt/format.h>

namespace gatehouse::net {

ConnectionOptions::ConnectionOptions(const std::vector<http::Field>& fields,
                                     const http::Framing& framing) {
    if (!framing.connection_options)
        return;
    for (const auto& f : fields)
        if (http::iequals(f.name, "connection"))
            http::for_each_token(f.value, [&](std::string_view t) { names_.push_back(t); });
}

bool ConnectionOptions::lists(std::string_view name) const {
    for (auto n : names_)
        if (http::iequals(n, name))
            return true;
    return false;
}

void FieldWriter::add(const http::Field& f) {
    uintptr_t line = address(f.name.data());
    uintptr_t value = address(f.value.data());
    uintptr_t end = value + f.value.size() + 2;
    if (line >= lo_ && end <= hi_ && value == line + f.name.size() + 2) {
        const char* l = f.name.data();
        const char* e = f.value.data() + f.value.size();
        if (l[f.name.size()] == ':' && l[f.name.size() + 1] == ' ' && e[0] == '\r' &&
            e[1] == '\n') {
            if (!run_begin_ || run_end_ != l) {
                flush();
                run_begin_ = l;
            }
            run_end_ = e + 2;
            return;
        }
    }
    flush();
    append_field(out_, f.name, f.value);
}

void add_content_length(FieldWriter& fields, std::string& out, const http::Field& f,
                        uint64_t length) {
    bool canonical = f.value.size() == 1 || (!f.value.empty() && f.value[0] != '0');
    if (canonical)
        return fields.add(f);
    fields.flush();
    char digits[24];
    auto end = fmt::format_to(digits, "{}", length);
    append_field(out, "Content-Length", std::string_view(digits, static_cast<size_t>(end - digits)));
}

} // namespace gatehouse::net

/*
 * gatehouse SDK, C++ wrapper -- serialising Structured Field Values (RFC 8941 §4.1). Part of
 * <gatehouse/sdk/http/structured.hpp>, which includes it; the types are declared there.
 * Every function returns nullopt for a value the RFC cannot represent, never a field a
 * recipient would have to reject.
 */
#ifndef GATEHOUSE_SDK_HTTP_STRUCTURED_WRITE_HPP
#define GATEHOUSE_SDK_HTTP_STRUCTURED_WRITE_HPP

#include "gatehouse/sdk/http/structured.hpp"

namespace gh::http::sf {

namespace detail {

/* RFC 8941 §4.1.4: -999,999,999,999,999 ..= 999,999,999,999,999. */
inline bool write_integer(int64_t v, std::string &out) {
    constexpr int64_t kMax = 999'999'999'999'999;
    if (v > kMax || v < -kMax)
        return false;
    out += std::to_string(v);
    return true;
}

/* RFC 8941 §4.1.5: rounded to three decimals (half to even), at most 12 integer digits, at
 * least one fractional digit, no trailing zeros. */
inline bool write_decimal(double v, std::string &out) {
    if (!std::isfinite(v) || std::fabs(v) >= 1e12)
        return false;
    const double t = std::nearbyint(v * 1000); // the default rounding mode: half to even
    if (std::fabs(t) >= 1e15)
        return false;
    const int64_t thousandths = static_cast<int64_t>(std::fabs(t));
    if (t < 0)
        out.push_back('-');
    out += std::to_string(thousandths / 1000);
    out.push_back('.');
    std::string frac = std::to_string(thousandths % 1000 + 1000).substr(1); // 3 digits
    while (frac.size() > 1 && frac.back() == '0')
        frac.pop_back();
    out += frac;
    return true;
}

/* RFC 8941 §4.1.6: printable ASCII only; '"' and '\' escaped. */
inline bool write_string(std::string_view v, std::string &out) {
    out.push_back('"');
    for (char c : v) {
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e)
            return false;
        if (c == '"' || c == '\\')
            out.push_back('\\');
        out.push_back(c);
    }
    out.push_back('"');
    return true;
}

/* RFC 8941 §4.1.3.1 */
inline bool write_bare(const BareItem &v, std::string &out) {
    if (auto *n = std::get_if<int64_t>(&v))
        return write_integer(*n, out);
    if (auto *d = std::get_if<double>(&v))
        return write_decimal(*d, out);
    if (auto *s = std::get_if<std::string>(&v))
        return write_string(*s, out);
    if (auto *t = std::get_if<Token>(&v)) {
        out += t->value; // §4.1.7
        return valid_token(t->value);
    }
    if (auto *b = std::get_if<ByteSequence>(&v)) { // §4.1.8
        for (char c : b->base64)
            if (!base64_char(c))
                return false;
        out += ':' + b->base64 + ':';
        return true;
    }
    out += std::get<bool>(v) ? "?1" : "?0"; // §4.1.9
    return true;
}

inline bool is_true(const BareItem &v) noexcept {
    auto *b = std::get_if<bool>(&v);
    return b != nullptr && *b;
}

/* RFC 8941 §4.1.1.2: ";key" for true, ";key=value" otherwise. */
inline bool write_params(const Parameters &params, std::string &out) {
    for (const auto &p : params) {
        if (!valid_key(p.first))
            return false;
        out += ';' + p.first;
        if (is_true(p.second))
            continue;
        out.push_back('=');
        if (!write_bare(p.second, out))
            return false;
    }
    return true;
}

/* RFC 8941 §4.1.3 */
inline bool write_item(const Item &it, std::string &out) {
    return write_bare(it.value, out) && write_params(it.params, out);
}

/* RFC 8941 §4.1.1.1 */
inline bool write_member(const Member &m, std::string &out) {
    if (auto *it = std::get_if<Item>(&m))
        return write_item(*it, out);
    const InnerList &l = std::get<InnerList>(m);
    out.push_back('(');
    for (std::size_t i = 0; i < l.items.size(); ++i) {
        if (i > 0)
            out.push_back(' ');
        if (!write_item(l.items[i], out))
            return false;
    }
    out.push_back(')');
    return write_params(l.params, out);
}

} // namespace detail

/* RFC 8941 §4.1.3: an Item as a field value, or nullopt if not representable. */
inline std::optional<std::string> serialize(const Item &item) {
    std::string out;
    if (!detail::write_item(item, out))
        return std::nullopt;
    return out;
}

/* RFC 8941 §4.1.1: a List as a field value ("" for an empty list: omit the field). */
inline std::optional<std::string> serialize(const List &list) {
    std::string out;
    for (std::size_t i = 0; i < list.size(); ++i) {
        if (i > 0)
            out += ", ";
        if (!detail::write_member(list[i], out))
            return std::nullopt;
    }
    return out;
}

/* RFC 8941 §4.1.2: a Dictionary as a field value; a member that is the Boolean true is written
 * as its key alone ("a, b=2"). */
inline std::optional<std::string> serialize(const Dictionary &dict) {
    std::string out;
    for (std::size_t i = 0; i < dict.size(); ++i) {
        if (i > 0)
            out += ", ";
        if (!detail::valid_key(dict[i].first))
            return std::nullopt;
        out += dict[i].first;
        const Item *it = std::get_if<Item>(&dict[i].second);
        if (it != nullptr && detail::is_true(it->value)) {
            if (!detail::write_params(it->params, out))
                return std::nullopt;
            continue;
        }
        out.push_back('=');
        if (!detail::write_member(dict[i].second, out))
            return std::nullopt;
    }
    return out;
}

} // namespace gh::http::sf

#endif // GATEHOUSE_SDK_HTTP_STRUCTURED_WRITE_HPP

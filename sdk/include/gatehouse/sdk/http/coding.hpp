/*
 * gatehouse SDK, C++ wrapper -- content-coding negotiation (RFC 9110 §12.5.3), the one rule
 * every module uses, so that a cache's Accept-Encoding variant key and a compressor's choice can
 * never disagree. Pure functions over std::string_view: no host calls, any thread.
 *
 * The rule (each step is RFC 9110 §12.5.3 unless it says otherwise):
 *  - A coding's weight is its own entry's q-value, else the q-value of "*", else 0 ("not
 *    acceptable"). "x-gzip" is "gzip" and "x-compress" is "compress" (§8.4.1.3). Names are
 *    case-insensitive. A coding listed twice gets its highest q-value. A malformed q-value is 0.
 *  - "identity" is acceptable unless refused by "identity;q=0", or by "*;q=0" with no identity
 *    entry. Its weight for ranking is its own entry's q, else the one of "*"; when neither is
 *    listed it is acceptable but ranks below every coding with q > 0.
 *  - Choice: the offered coding with the highest weight > 0 wins; equal weights go to the
 *    earlier coding in the server's `offered` order (server preference, not the client's list
 *    order). Identity wins instead when its weight is strictly higher than that, or when no
 *    offered coding has a weight > 0. So on a tie between a coding and identity, the coding wins.
 *  - No Accept-Encoding field at all: the user agent accepts anything (§12.5.3) and the server
 *    chooses: identity. An empty field value: identity only.
 * Include <gatehouse/sdk.hpp> rather than this file.
 */
#ifndef GATEHOUSE_SDK_HTTP_CODING_HPP
#define GATEHOUSE_SDK_HTTP_CODING_HPP

#include "gatehouse/sdk/http.hpp"

#include <algorithm>
#include <cstddef>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gh::http {

/* RFC 9110 §8.4.1.3/§8.4.1.1: "x-gzip" and "x-compress" name gzip and compress; true if `a` and
 * `b` name the same content coding (case-insensitive). */
inline bool same_coding(std::string_view a, std::string_view b) noexcept {
    auto canonical = [](std::string_view c) -> std::string_view {
        if (iequals(c, "x-gzip"))
            return "gzip";
        if (iequals(c, "x-compress"))
            return "compress";
        return c;
    };
    return iequals(canonical(a), canonical(b));
}

namespace detail {
/* RFC 9110 §12.5.3: the weight `list` gives `coding`: its own entries' highest q, else the
 * highest q of "*", else nullopt (not mentioned). */
inline std::optional<double> listed_q(const std::vector<Weighted> &list,
                                      std::string_view coding) noexcept {
    std::optional<double> own, star;
    for (const Weighted &w : list) {
        std::optional<double> *slot = same_coding(w.name, coding) ? &own
                                      : w.name == "*"             ? &star
                                                                  : nullptr;
        if (slot != nullptr && (!*slot || w.q > **slot))
            *slot = w.q;
    }
    return own ? own : star;
}
} // namespace detail

/* RFC 9110 §12.5.3: the weight an Accept-Encoding value gives `coding` (its own entry, else "*"),
 * or nullopt when neither is listed (0 for a coding; acceptable but unranked for identity). */
inline std::optional<double> accept_encoding_q(std::string_view accept_encoding,
                                               std::string_view coding) {
    return detail::listed_q(weighted_list(accept_encoding), coding);
}

/* RFC 9110 §12.5.3: may a response with content coding `coding` ("identity" for none) go to a
 * request with this Accept-Encoding (nullopt: the field is absent, so any coding may)? */
inline bool coding_acceptable(std::optional<std::string_view> accept_encoding,
                              std::string_view coding) {
    if (!accept_encoding)
        return true;
    const std::optional<double> q = accept_encoding_q(*accept_encoding, coding);
    return q ? *q > 0 : iequals(coding, "identity");
}

/* The outcome of negotiate_coding. */
struct CodingChoice {
    /* One of the `offered` names (a view of it), or "identity": send the content as it is. */
    std::string_view coding = "identity";
    /* False when the request refuses identity ("identity;q=0", or "*;q=0" without identity):
     * a server that cannot send an acceptable coding sends identity anyway (§12.5.3) or 406. */
    bool identity_acceptable = true;
};

/* RFC 9110 §12.5.3: the coding to send, from the `n` codings at `offered` in server preference
 * order (see the rule at the top of this file). The result views `offered`'s strings. */
inline CodingChoice negotiate_coding(std::optional<std::string_view> accept_encoding,
                                     const std::string_view *offered, std::size_t n) {
    CodingChoice out;
    if (!accept_encoding)
        return out;
    const std::vector<Weighted> list = weighted_list(*accept_encoding);
    const std::optional<double> identity = detail::listed_q(list, "identity");
    out.identity_acceptable = !identity || *identity > 0;
    double best = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const double q = detail::listed_q(list, offered[i]).value_or(0);
        if (q > best) { // strictly greater: the earlier (preferred) coding keeps a tie
            best = q;
            out.coding = offered[i];
        }
    }
    if (identity && *identity > best)
        out.coding = "identity";
    return out;
}

/* RFC 9110 §12.5.3: negotiate_coding over a list of codings in server preference order. */
inline CodingChoice negotiate_coding(std::optional<std::string_view> accept_encoding,
                                     std::initializer_list<std::string_view> offered) {
    return negotiate_coding(accept_encoding, offered.begin(), offered.size());
}
inline CodingChoice negotiate_coding(std::optional<std::string_view> accept_encoding,
                                     const std::vector<std::string_view> &offered) {
    return negotiate_coding(accept_encoding, offered.data(), offered.size());
}

/* RFC 9110 §12.5.3 for caches (RFC 9111 §4.1 variants): the client's ranking of `codings` and
 * identity as text, e.g. "br=gzip>identity" for "gzip, deflate, br": groups in falling weight,
 * ties joined with '=' in name order, refused codings left out, identity after every coding of
 * equal weight (a coding wins that tie) and last when unranked. Two Accept-Encoding values with
 * the same key get the same negotiate_coding() result for every `offered` drawn from `codings`,
 * in any order; that is what makes it a safe Vary key for a compressor's output. The names in
 * the key are lower-cased as given in `codings`. */
inline std::string coding_preference_key(std::string_view accept_encoding,
                                         const std::string_view *codings, std::size_t n) {
    const std::vector<Weighted> list = weighted_list(accept_encoding);
    struct Ranked {
        double q;
        bool identity;
        std::string name;
    };
    std::vector<Ranked> ranked;
    for (std::size_t i = 0; i < n; ++i) {
        const double q = detail::listed_q(list, codings[i]).value_or(0);
        if (q > 0 && !iequals(codings[i], "identity"))
            ranked.push_back({q, false, lower(codings[i])});
    }
    const std::optional<double> identity = detail::listed_q(list, "identity");
    if (!identity || *identity > 0) // -1: unranked, below every coding
        ranked.push_back({identity ? *identity : -1.0, true, "identity"});
    std::sort(ranked.begin(), ranked.end(), [](const Ranked &a, const Ranked &b) {
        if (a.q != b.q)
            return a.q > b.q;
        if (a.identity != b.identity)
            return b.identity;
        return a.name < b.name;
    });
    std::string key;
    for (std::size_t i = 0; i < ranked.size(); ++i) {
        if (i > 0)
            key += ranked[i].q == ranked[i - 1].q && !ranked[i].identity ? '=' : '>';
        key += ranked[i].name;
    }
    return key;
}

/* RFC 9110 §12.5.3: coding_preference_key over a list of codings. */
inline std::string coding_preference_key(std::string_view accept_encoding,
                                         std::initializer_list<std::string_view> codings) {
    return coding_preference_key(accept_encoding, codings.begin(), codings.size());
}

} // namespace gh::http

#endif // GATEHOUSE_SDK_HTTP_CODING_HPP

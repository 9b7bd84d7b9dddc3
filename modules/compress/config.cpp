// compress: configuration keys, types, ranges and the memory bound (see README.md).
#include "config.hpp"

#include <algorithm>

namespace compress_filter {

namespace {

std::string media_type_error(std::string_view t) {
    const size_t slash = t.find('/');
    if (slash == std::string_view::npos || slash == 0 || slash + 1 == t.size() ||
        t.find_first_of(" \t;,") != std::string_view::npos)
        return gh::cat("media types look like \"type/subtype\", \"type/*\" or \"*/*\", got \"", t,
                       "\"");
    return {};
}

void read_prefer(const gh::ConfigNode &prefer, Config &c) {
    auto v = prefer.strings();
    if (!v)
        return;
    std::vector<Coding> order;
    for (const std::string &name : *v) {
        auto coding = coding_from_name(name);
        if (!coding) {
            prefer.error("codings are \"br\" and \"gzip\", got \"" + name + "\"");
            return;
        }
        if (std::find(order.begin(), order.end(), *coding) != order.end()) {
            prefer.error("\"" + name + "\" is listed twice");
            return;
        }
        order.push_back(*coding);
    }
    // A coding left out ranks after the listed ones.
    for (Coding d : {Coding::br, Coding::gzip})
        if (std::find(order.begin(), order.end(), d) == order.end())
            order.push_back(d);
    c.prefer = std::move(order);
}

// zlib's memory is fixed by windowBits and memLevel: refuse combinations over the limit.
void check_gzip_memory(gh::ConfigNode table, const Config &c) {
    const size_t need = gzip_memory_bound(c.gzip_params.window, c.gzip_params.mem_level);
    if (need <= kGzipMemoryLimit)
        return;
    gh::ConfigNode at = table.get("gzip_mem_level");
    if (!at.present())
        at = table.get("gzip_window");
    const std::string msg = gh::cat("gzip_window = ", c.gzip_params.window, " with gzip_mem_level = ",
                                    c.gzip_params.mem_level, " needs ", need / 1024,
                                    " KiB per stream, over the ", kGzipMemoryLimit / 1024,
                                    " KiB limit; lower gzip_mem_level or gzip_window");
    if (at.present())
        at.error(msg);
    else
        table.error(msg);
}

gh::Keys<Config> declare() {
    using gh::Scope;
    constexpr Scope both = Scope::both;
    return std::move(
        gh::Keys<Config>("compress")
            .flag("enabled", &Config::enabled, both,
                  "`false` turns the filter off (no headers touched, nothing counted) — per route, "
                  "like nginx's `gzip off` in a location")
            .example("enabled = false")
            .flag("gzip", &Config::gzip, both, "offer gzip (`x-gzip` is accepted as a synonym)")
            .example("gzip = false")
            .flag("brotli", &Config::brotli, both, "offer brotli (`br`)")
            .example("brotli = false")
            .custom("prefer", "array of `\"br\"`/`\"gzip\"`", "`[\"br\", \"gzip\"]`", both,
                    "server preference, used only to break q-value ties; a coding left out ranks "
                    "last; each at most once",
                    read_prefer)
            .example("prefer = [\"gzip\", \"br\"]")
            .integer("gzip_level", [](Config &c) -> int & { return c.gzip_params.level; }, 1, 9,
                     both, "zlib compression level")
            .example("gzip_level = 4")
            .integer("gzip_window", [](Config &c) -> int & { return c.gzip_params.window; }, 9, 15,
                     both, "zlib windowBits (2^N-byte window)")
            .example("gzip_window = 14")
            .integer("gzip_mem_level", [](Config &c) -> int & { return c.gzip_params.mem_level; },
                     1, 9, both,
                     "zlib memLevel; with `gzip_window` it fixes the memory per stream: 2^(w+2) + "
                     "2^(m+9) + 6 KiB must stay ≤ 256 KiB (15/8 is 262 KiB and is refused; 14/8 "
                     "is 198 KiB)")
            .example("gzip_mem_level = 8")
            .integer("gzip_max_chain", [](Config &c) -> int & { return c.gzip_params.max_chain; },
                     0, 4096, both,
                     "how deep zlib searches for a longer match (`deflateTune`'s max_chain; `0` = "
                     "zlib's own for the level: 128 at level 6). 96 compresses the bench page "
                     "within 1 % of `gzip -6` (+0.8 %) for ~7 % less CPU than 128, which is what "
                     "memLevel 7 costs against nginx's memLevel 8: gzip throughput 1.01× nginx at "
                     "level 6 (`tests/bench/compress.sh`)")
            .shown_default("`96` at level 6, else `0`")
            .example("gzip_max_chain = 128")
            .integer("brotli_level", [](Config &c) -> int & { return c.brotli_params.quality; },
                     0, 11, both, "brotli quality")
            .example("brotli_level = 4")
            .integer("brotli_window", [](Config &c) -> int & { return c.brotli_params.window; },
                     10, 20, both,
                     "brotli lgwin (2^N-byte window), capped at 2^20; see *Memory* for what it "
                     "costs")
            .example("brotli_window = 18")
            .bytes("brotli_block", [](Config &c) -> size_t & { return c.brotli_params.block; },
                   1024, 16 * 1024 * 1024, both,
                   "the brotli encoder is flushed after this many input bytes at most; bounds its "
                   "memory (see *Memory per stream*): larger is ~1 % smaller output and up to "
                   "~1.9 MiB per stream")
            .example("brotli_block = \"64k\"")
            .bytes("min_length", &Config::min_length, 0, UINT64_MAX, both,
                   "a smaller response goes out uncompressed: from `Content-Length`, or from the "
                   "first bytes of a body without one (see *Bodies without a length*)")
            .example("min_length = \"1k\"")
            .strings("types", &Config::types, both,
                     "`Content-Type` allow-list: `type/subtype`, `type/*` or `*/*`; parameters "
                     "(`; charset=...`) ignored; case-insensitive. `text/event-stream` is covered "
                     "by `text/*` and always flushed per chunk",
                     media_type_error, "array of media types")
            .example("types = [\"text/html\", \"application/*\"]")
            .choice("flush", &Config::flush,
                    std::vector<std::pair<std::string, FlushPolicy>>{
                        {"auto", FlushPolicy::auto_}, {"always", FlushPolicy::always}},
                    both, "when the encoder is sync-flushed, see *Streaming*")
            .example("flush = \"always\"")
            .integer("max_cpu_percent", &Config::max_cpu_percent, 1, 100, both,
                     "CPU guard: when the worker thread was busier than this in the last window, "
                     "new responses go out uncompressed")
            .shown_default("`100` (off)")
            .example("max_cpu_percent = 80")
            .duration("cpu_window", &Config::cpu_window_ms, 10, 60000, both,
                      "the CPU guard's sampling window")
            .example("cpu_window = \"500ms\""));
}

} // namespace

const gh::Keys<Config> &keys() {
    static const gh::Keys<Config> declared = declare();
    return declared;
}

std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base) {
    auto c = std::make_unique<Config>(base);
    keys().read(table, *c);
    // zlib's own search depth goes with a level chosen without a max_chain.
    if (table.get("gzip_level").present() && !table.get("gzip_max_chain").present())
        c->gzip_params.max_chain = c->gzip_params.level == 6 ? 96 : 0;
    check_gzip_memory(table, *c);
    c->enabled_codings.clear();
    for (Coding coding : c->prefer)
        if ((coding == Coding::gzip && c->gzip) || (coding == Coding::br && c->brotli))
            c->enabled_codings.push_back(coding);
    return c;
}

} // namespace compress_filter

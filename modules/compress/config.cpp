// compress: configuration keys, types, ranges and the memory bound (see README.md).
#include "config.hpp"

#include <algorithm>

namespace compress_filter {

namespace {

void read_int(gh::ConfigNode table, std::string_view key, int64_t min, int64_t max, int &out) {
    if (auto v = table.get(key).integer(min, max))
        out = static_cast<int>(*v);
}

void read_types(gh::ConfigNode table, Config &c) {
    gh::ConfigNode types = table.get("types");
    auto v = types.strings();
    if (!v)
        return;
    for (const std::string &t : *v) {
        const size_t slash = t.find('/');
        if (slash == std::string::npos || slash == 0 || slash + 1 == t.size() ||
            t.find_first_of(" \t;,") != std::string::npos) {
            types.error("media types look like \"type/subtype\", \"type/*\" or \"*/*\", got \"" +
                        t + "\"");
            return;
        }
    }
    c.types = std::move(*v);
}

void read_prefer(gh::ConfigNode table, Config &c) {
    gh::ConfigNode prefer = table.get("prefer");
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

void read_flush(gh::ConfigNode table, Config &c) {
    if (auto v = table.get("flush").one_of({"auto", "always"}))
        c.flush = *v == "always" ? FlushPolicy::always : FlushPolicy::auto_;
}

void read_cpu_guard(gh::ConfigNode table, Config &c) {
    read_int(table, "max_cpu_percent", 1, 100, c.max_cpu_percent);
    gh::ConfigNode window = table.get("cpu_window");
    if (auto v = window.duration_ms()) {
        if (*v < 10 || *v > 60000)
            window.error("must be between 10ms and 60s");
        else
            c.cpu_window_ms = *v;
    }
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

} // namespace

std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base) {
    auto c = std::make_unique<Config>(base);
    if (auto v = table.get("enabled").boolean())
        c->enabled = *v;
    if (auto v = table.get("gzip").boolean())
        c->gzip = *v;
    if (auto v = table.get("brotli").boolean())
        c->brotli = *v;
    read_int(table, "gzip_level", 1, 9, c->gzip_params.level);
    read_int(table, "gzip_window", 9, 15, c->gzip_params.window);
    read_int(table, "gzip_mem_level", 1, 9, c->gzip_params.mem_level);
    if (table.get("gzip_level").present() && !table.get("gzip_max_chain").present())
        c->gzip_params.max_chain = c->gzip_params.level == 6 ? 96 : 0; // zlib's for other levels
    read_int(table, "gzip_max_chain", 0, 4096, c->gzip_params.max_chain);
    read_int(table, "brotli_level", 0, 11, c->brotli_params.quality);
    read_int(table, "brotli_window", 10, 20, c->brotli_params.window);
    gh::ConfigNode block = table.get("brotli_block");
    if (auto v = block.bytes()) {
        if (*v < 1024 || *v > 16 * 1024 * 1024)
            block.error("must be between 1k and 16m");
        else
            c->brotli_params.block = *v;
    }
    read_prefer(table, *c);
    if (auto v = table.get("min_length").bytes())
        c->min_length = *v;
    read_types(table, *c);
    read_flush(table, *c);
    read_cpu_guard(table, *c);
    check_gzip_memory(table, *c);
    c->enabled_codings.clear();
    for (Coding coding : c->prefer)
        if ((coding == Coding::gzip && c->gzip) || (coding == Coding::br && c->brotli))
            c->enabled_codings.push_back(coding);
    return c;
}

} // namespace compress_filter

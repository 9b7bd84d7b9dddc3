// gatehouse: the command line, start-up and the process lifecycle.
#include "config/config.hpp"
#include "log.hpp"
#include "modules/loader.hpp"
#include "modules/services.hpp"
#include "net/listener.hpp"
#include "net/worker.hpp"
#include "runtime.hpp"

#include <boost/asio/signal_set.hpp>
#include <boost/program_options.hpp>
#include <fmt/format.h>

#include <csignal>
#include <iostream>
#include <thread>

namespace po = boost::program_options;
using namespace gatehouse;

namespace {

constexpr const char* usage = R"(usage:
  gatehouse [-c FILE]              run
  gatehouse check -c FILE          validate the config and its modules, then exit
  gatehouse modules -c FILE        list the configured modules
  gatehouse --version | --help
options)";

struct Loaded {
    modules::ModuleSet modules;
    std::shared_ptr<Generation> generation;
};

// Loads config and modules and builds the generation. Prints every problem; false if any.
bool load_all(const std::string& file, Loaded& out) {
    config::Diagnostics diag(file);
    auto cfg = config::load_config(file, diag);
    auto print = [&diag] {
        for (const auto& e : diag.errors())
            std::cerr << e.to_string() << "\n";
    };
    if (!cfg || !diag.ok()) {
        print();
        return false;
    }
    std::vector<std::string> errors;
    if (!out.modules.load(cfg->modules.dir, cfg->modules.load, errors)) {
        for (const auto& e : errors)
            std::cerr << fmt::format("{}:{}: [modules.load] {}\n", file, cfg->modules.load_line, e);
        return false;
    }
    out.generation = Generation::build(std::move(cfg), out.modules, diag, errors);
    print();
    for (const auto& e : errors)
        std::cerr << e << "\n";
    return out.generation && diag.ok() && errors.empty();
}

int list_modules(const Loaded& loaded) {
    fmt::print("{:<20} {:<10} {:<6} {:<16} {}\n", "MODULE", "VERSION", "ABI", "KINDS", "PATH");
    for (const auto& m : loaded.modules.all())
        fmt::print("{:<20} {:<10} {:<6} {:<16} {}\n", m->name,
                   m->desc.version ? m->desc.version : "?",
                   fmt::format("{}.{}", m->desc.abi_major, m->desc.abi_minor), m->kinds(), m->path);
    return 0;
}

std::string endpoint_text(const boost::asio::ip::tcp::endpoint& e) {
    auto a = e.address();
    return a.is_v6() ? fmt::format("[{}]:{}", a.to_string(), e.port())
                     : fmt::format("{}:{}", a.to_string(), e.port());
}

int run(Loaded& loaded) {
    const config::Config& cfg = loaded.generation->config();
    std::string error;
    if (!log::set_file(cfg.server.log_file, error)) {
        std::cerr << fmt::format("{}: [server.log_file] cannot open '{}': {}\n", cfg.file,
                                 cfg.server.log_file, error);
        return 1;
    }
    std::vector<std::string> errors;
    if (!loaded.generation->activate(errors)) {
        for (const auto& e : errors)
            log::error("{}", e);
        return 1;
    }
    modules::set_current_generation(loaded.generation);
    unsigned count = cfg.server.workers ? cfg.server.workers
                                        : std::max(1u, std::thread::hardware_concurrency());
    std::vector<std::unique_ptr<net::Worker>> workers;
    for (unsigned i = 0; i < count; ++i)
        workers.push_back(std::make_unique<net::Worker>(i));

    std::shared_ptr<const Generation> generation = loaded.generation;
    auto source = [generation] { return generation; };
    std::vector<std::shared_ptr<net::Listener>> listeners;
    for (const auto& lc : cfg.listeners) {
        boost::asio::ip::tcp::endpoint endpoint(boost::asio::ip::make_address(lc.host), lc.port);
        for (auto& w : workers) {
            auto listener = std::make_shared<net::Listener>(*w, source);
            if (!listener->open(endpoint, error)) {
                log::error("{}:{}: [listener] cannot listen on {}: {}", cfg.file, lc.line,
                           endpoint_text(endpoint), error);
                return 1;
            }
            // Port 0: the first acceptor picked a port; the others share it.
            endpoint.port(listener->port());
            listeners.push_back(listener);
        }
        log::info("listening on {}", endpoint_text(endpoint));
    }
    for (const auto& m : loaded.modules.all())
        log::info("module {} {} (ABI {}.{}, {})", m->name, m->desc.version ? m->desc.version : "?",
                  m->desc.abi_major, m->desc.abi_minor, m->kinds());

    auto instances = loaded.generation->modules();
    auto on_start = [instances] {
        for (const auto& i : instances)
            if (i.module->desc.worker_init)
                i.module->desc.worker_init(i.module->state, i.config);
    };
    auto on_exit = [instances] {
        for (const auto& i : instances)
            if (i.module->desc.worker_exit)
                i.module->desc.worker_exit(i.module->state, i.config);
    };
    for (auto& l : listeners)
        l->start();
    for (auto& w : workers)
        w->start(on_start, on_exit);
    log::info("ready: {} worker{}", count, count == 1 ? "" : "s");

    boost::asio::io_context main_io;
    boost::asio::signal_set signals(main_io, SIGTERM, SIGINT);
    signals.async_wait([&](const boost::system::error_code&, int signal) {
        log::info("signal {}: stopping", signal);
        for (auto& w : workers)
            w->stop();
    });
    main_io.run();
    for (auto& w : workers)
        w->join();
    listeners.clear();
    workers.clear();
    modules::stop_offload_pool();
    modules::set_current_generation(nullptr);
    log::info("stopped");
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    po::options_description options(usage);
    options.add_options()("help,h", "show this help")("version", "print the version")(
        "config,c", po::value<std::string>()->default_value("/etc/gatehouse/gatehouse.toml"),
        "config file")("log-level", po::value<std::string>(), "error, warn, info or debug");
    po::options_description hidden;
    hidden.add_options()("command", po::value<std::string>()->default_value("run"), "");
    po::options_description all;
    all.add(options).add(hidden);
    po::positional_options_description positional;
    positional.add("command", 1);
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        std::cerr << "gatehouse: " << e.what() << "\n" << options << "\n";
        return 2;
    }
    if (vm.count("help")) {
        std::cout << options << "\n";
        return 0;
    }
    if (vm.count("version")) {
        std::cout << fmt::format("gatehouse {} (module ABI {}.{})\n", GATEHOUSE_VERSION,
                                 GH_ABI_MAJOR, GH_ABI_MINOR);
        return 0;
    }
    std::string command = vm["command"].as<std::string>();
    if (command != "run" && command != "check" && command != "modules") {
        std::cerr << "gatehouse: unknown command '" << command << "'\n" << options << "\n";
        return 2;
    }
    if (vm.count("log-level")) {
        log::Level level;
        if (!log::parse_level(vm["log-level"].as<std::string>(), level)) {
            std::cerr << "gatehouse: --log-level must be error, warn, info or debug\n";
            return 2;
        }
        log::set_level(level);
    }
    std::string file = vm["config"].as<std::string>();
    auto loaded = std::make_unique<Loaded>();
    if (!load_all(file, *loaded))
        return 1;
    if (!vm.count("log-level")) {
        log::Level level;
        if (log::parse_level(loaded->generation->config().server.log_level, level))
            log::set_level(level);
    }
    int rc = 0;
    if (command == "check")
        std::cout << "configuration ok: " << file << "\n";
    else if (command == "modules")
        rc = list_modules(*loaded);
    else
        rc = run(*loaded);
    // The generation (module configs, pools) goes before the modules that own its code.
    loaded->generation.reset();
    loaded.reset();
    return rc;
}

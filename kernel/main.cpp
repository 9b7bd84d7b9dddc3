// gatehouse: the command line, start-up and the process lifecycle.
#include "config/config.hpp"
#include "log.hpp"
#include "modules/loader.hpp"
#include "reload_status.hpp"
#include "runtime.hpp"
#include "server.hpp"

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

namespace po = boost::program_options;
using namespace gatehouse;

namespace {

constexpr const char* usage = R"(usage:
  gatehouse [-c FILE]              run
  gatehouse check -c FILE          validate the config and its modules, then exit
  gatehouse modules -c FILE        list the configured modules
  gatehouse reload -c FILE         validate FILE, make the running gatehouse reload it, report
  gatehouse --version | --help
options)";

struct Loaded {
    modules::ModuleSet modules;
    std::shared_ptr<Generation> generation;
};

// Loads config and modules and builds the generation. Prints every problem; false if any.
bool load_all(const std::string& file, Loaded& out) {
    std::vector<std::string> errors, warnings;
    out.generation = Generation::load(file, out.modules, errors, warnings);
    for (const auto& w : warnings)
        std::cerr << w << "\n";
    for (const auto& e : errors)
        std::cerr << e << "\n";
    return out.generation != nullptr;
}

int list_modules(const Loaded& loaded) {
    fmt::print("{:<20} {:<10} {:<6} {:<16} {}\n", "MODULE", "VERSION", "ABI", "KINDS", "PATH");
    for (const auto& m : loaded.modules.all())
        fmt::print("{:<20} {:<10} {:<6} {:<16} {}\n", m->name,
                   m->desc.version ? m->desc.version : "?",
                   fmt::format("{}.{}", m->desc.abi_major, m->desc.abi_minor), m->kinds(), m->path);
    return 0;
}

int run(Loaded& loaded, const std::string& file) {
    const config::Config& cfg = loaded.generation->config();
    std::string error;
    if (!log::set_file(cfg.server.log_file, error)) {
        std::cerr << fmt::format("{}: [server.log_file] cannot open '{}': {}\n", cfg.file,
                                 cfg.server.log_file, error);
        return 1;
    }
    Server server(file, loaded.modules, std::move(loaded.generation));
    return server.run();
}

// `gatehouse reload -c FILE`: FILE must be valid and be the file the running process
// (server.pid_file) reloads -- a signal cannot hand it another one; then it gets SIGHUP, and
// the outcome it reports beside its pid file is printed: exit 0 when the new generation is
// active, 1 when the old one keeps serving.
int signal_reload(const Loaded& loaded, const std::string& file) {
    const std::string& pid_file = loaded.generation->config().server.pid_file;
    if (pid_file.empty()) {
        std::cerr << "gatehouse reload: [server.pid_file] is not set, so the running process "
                     "cannot be found; send it SIGHUP yourself\n";
        return 1;
    }
    std::ifstream in(pid_file);
    long pid = 0;
    if (!(in >> pid) || pid <= 1) {
        std::cerr << "gatehouse reload: cannot read a PID from " << pid_file << "\n";
        return 1;
    }
    std::string status_file = reload_status::path_for(pid_file);
    auto before = reload_status::read(status_file);
    if (before && before->pid != pid)
        before.reset(); // left by an earlier process
    std::error_code ec;
    if (before && !std::filesystem::equivalent(before->config, file, ec)) {
        std::cerr << fmt::format(
            "gatehouse reload: PID {} reloads {}, the file it was started with, not {}; copy the "
            "new config there and run this again, or restart gatehouse with -c {}\n",
            pid, before->config, file, file);
        return 1;
    }
    if (::kill(static_cast<pid_t>(pid), SIGHUP) != 0) {
        std::cerr << "gatehouse reload: cannot signal PID " << pid << ": " << std::strerror(errno) << "\n";
        return 1;
    }
    if (!before) {
        std::cout << fmt::format("reload signalled to PID {}; it reports no outcome in {} (an "
                                 "older gatehouse?): see its log\n", pid, status_file);
        return 0;
    }
    // Loading modules and their configs takes a moment; a reload never takes this long.
    constexpr auto patience = std::chrono::seconds(30);
    auto deadline = std::chrono::steady_clock::now() + patience;
    while (std::chrono::steady_clock::now() < deadline) {
        auto after = reload_status::read(status_file);
        if (after && after->pid == pid && after->attempt > before->attempt) {
            if (after->ok) {
                std::cout << fmt::format("reloaded {}: {} (PID {})\n", file, after->message, pid);
                return 0;
            }
            std::cerr << fmt::format("gatehouse reload: PID {} refused {}; generation {} keeps "
                                     "serving:\n{}\n", pid, file, after->generation, after->message);
            return 1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::cerr << fmt::format("gatehouse reload: PID {} was signalled but reported no outcome "
                             "within {} s; see its log\n", pid, patience.count());
    return 1;
}

} // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    po::options_description options(usage);
    options.add_options()("help,h", "show this help")("version", "print the version")(
        "config,c", po::value<std::string>()->default_value("/etc/gatehouse/gatehouse.toml"),
        "config file")("log-level", po::value<std::string>(), "error, warn, info or debug")(
        "modules-dir", po::value<std::string>(),
        "load modules from DIR instead of the config's [modules] dir (e.g. build/modules)");
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
        std::cout << fmt::format("gatehouse {} (module ABI {}.{})\nmodules dir default: {}\n",
                                 GATEHOUSE_VERSION, GH_ABI_MAJOR, GH_ABI_MINOR,
                                 config::default_module_dir());
        return 0;
    }
    std::string command = vm["command"].as<std::string>();
    if (command != "run" && command != "check" && command != "modules" && command != "reload") {
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
    if (vm.count("modules-dir"))
        config::module_dir_override() = std::filesystem::absolute(
            vm["modules-dir"].as<std::string>()).lexically_normal().string();
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
    else if (command == "reload")
        rc = signal_reload(*loaded, file);
    else
        rc = run(*loaded, file);
    // The generation (module configs, pools) goes before the modules that own its code.
    loaded->generation.reset();
    loaded.reset();
    return rc;
}

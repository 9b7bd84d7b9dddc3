// cache_disk: the file format, the index and the manager thread (see store.hpp).
#include "store.hpp"

#include <openssl/evp.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <fcntl.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

namespace cache_disk {

namespace fs = std::filesystem;

int64_t wall_ms() {
    // The coarse clock (a few ms of resolution, no vDSO time read): ages are whole seconds.
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// ---- file format ---------------------------------------------------------------------------------

namespace {

constexpr std::string_view kMagic = "GHCACHE1";
constexpr size_t kPrefix = 8 + 4 + 8 + 4;

void put_u(std::string &out, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i)
        out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void put_s(std::string &out, std::string_view s) {
    put_u(out, s.size(), 4);
    out.append(s);
}

class Reader {
  public:
    explicit Reader(std::string_view b) : b_(b) {}
    bool u(uint64_t &v, int bytes) {
        if (b_.size() < static_cast<size_t>(bytes))
            return false;
        v = 0;
        for (int i = 0; i < bytes; ++i)
            v |= static_cast<uint64_t>(static_cast<unsigned char>(b_[i])) << (8 * i);
        b_.remove_prefix(bytes);
        return true;
    }
    bool s(std::string &out) {
        uint64_t n = 0;
        if (!u(n, 4) || b_.size() < n)
            return false;
        out.assign(b_.substr(0, n));
        b_.remove_prefix(n);
        return true;
    }
    bool empty() const { return b_.empty(); }

  private:
    std::string_view b_;
};

uint32_t crc(std::string_view a, std::string_view b) {
    uLong c = crc32_z(0, nullptr, 0);
    c = crc32_z(c, reinterpret_cast<const Bytef *>(a.data()), a.size());
    c = crc32_z(c, reinterpret_cast<const Bytef *>(b.data()), b.size());
    return static_cast<uint32_t>(c);
}

std::string encode_meta(const Object &o) {
    std::string m;
    put_s(m, o.key);
    put_u(m, o.vary_names.size(), 4);
    for (size_t i = 0; i < o.vary_names.size(); ++i) {
        put_s(m, o.vary_names[i]);
        put_s(m, i < o.vary_values.size() ? o.vary_values[i] : std::string_view());
    }
    put_u(m, o.status, 2);
    put_u(m, static_cast<uint64_t>(o.timing.request_ms), 8);
    put_u(m, static_cast<uint64_t>(o.timing.response_ms), 8);
    put_u(m, o.headers.size(), 4);
    for (const Field &f : o.headers) {
        put_s(m, f.name);
        put_s(m, f.value);
    }
    return m;
}

bool decode_meta(std::string_view meta, Object &o) {
    Reader r(meta);
    uint64_t n = 0, v = 0;
    if (!r.s(o.key) || !r.u(n, 4) || n > 64)
        return false;
    o.vary_names.resize(n);
    o.vary_values.resize(n);
    for (size_t i = 0; i < n; ++i)
        if (!r.s(o.vary_names[i]) || !r.s(o.vary_values[i]))
            return false;
    if (!r.u(v, 2))
        return false;
    o.status = static_cast<unsigned>(v);
    if (!r.u(v, 8))
        return false;
    o.timing.request_ms = static_cast<int64_t>(v);
    if (!r.u(v, 8))
        return false;
    o.timing.response_ms = static_cast<int64_t>(v);
    if (!r.u(n, 4) || n > 10000)
        return false;
    o.headers.resize(n);
    for (auto &f : o.headers)
        if (!r.s(f.name) || !r.s(f.value))
            return false;
    return r.empty();
}

struct Prefix {
    uint64_t meta_len = 0;
    uint64_t body_len = 0;
    uint64_t crc = 0;
};

std::optional<Prefix> decode_prefix(std::string_view bytes) {
    if (bytes.size() < kPrefix || bytes.substr(0, kMagic.size()) != kMagic)
        return std::nullopt;
    Reader r(bytes.substr(kMagic.size(), kPrefix - kMagic.size()));
    Prefix p;
    if (!r.u(p.meta_len, 4) || !r.u(p.body_len, 8) || !r.u(p.crc, 4))
        return std::nullopt;
    return p;
}

} // namespace

std::string object_file(const std::string &key, const std::vector<std::string> &vary_values) {
    std::string input = key;
    for (const std::string &v : vary_values) {
        input.push_back('\0');
        input.append(v);
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(input.data(), input.size(), digest, &len, EVP_sha256(), nullptr);
    static constexpr char hex[] = "0123456789abcdef";
    std::string name;
    name.reserve(3 + 2 * len);
    name.push_back(hex[digest[0] >> 4]);
    name.push_back(hex[digest[0] & 15]);
    name.push_back('/');
    for (unsigned i = 0; i < len; ++i) {
        name.push_back(hex[digest[i] >> 4]);
        name.push_back(hex[digest[i] & 15]);
    }
    return name;
}

std::string encode_object(const Object &o, std::string_view body) {
    const std::string meta = encode_meta(o);
    std::string out;
    out.reserve(kPrefix + meta.size() + body.size());
    out.append(kMagic);
    put_u(out, meta.size(), 4);
    put_u(out, body.size(), 8);
    put_u(out, crc(meta, body), 4);
    out.append(meta);
    out.append(body);
    return out;
}

std::optional<Object> decode_object(std::string_view bytes, std::string *body) {
    auto p = decode_prefix(bytes);
    if (!p || bytes.size() != kPrefix + p->meta_len + p->body_len)
        return std::nullopt;
    const std::string_view meta = bytes.substr(kPrefix, p->meta_len);
    const std::string_view b = bytes.substr(kPrefix + p->meta_len);
    if (crc(meta, b) != p->crc)
        return std::nullopt;
    Object o;
    if (!decode_meta(meta, o))
        return std::nullopt;
    o.body_size = b.size();
    o.file_size = bytes.size();
    if (body)
        body->assign(b);
    return o;
}

// ---- blocking file I/O ---------------------------------------------------------------------------

namespace {

std::optional<std::string> read_file(const std::string &path, size_t limit) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return std::nullopt;
    struct stat st {};
    std::optional<std::string> out;
    if (::fstat(fd, &st) == 0 && static_cast<uint64_t>(st.st_size) <= limit) {
        std::string buf(static_cast<size_t>(st.st_size), '\0');
        size_t got = 0;
        while (got < buf.size()) {
            const ssize_t n = ::read(fd, buf.data() + got, buf.size() - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += static_cast<size_t>(n);
        }
        if (got == buf.size())
            out = std::move(buf);
    }
    ::close(fd);
    return out;
}

bool write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

std::string temp_name() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    static constexpr char hex[] = "0123456789abcdef";
    std::string s = "tmp/";
    uint64_t v = rng();
    for (int i = 0; i < 16; ++i, v >>= 4)
        s.push_back(hex[v & 15]);
    return s + ".part";
}

} // namespace

std::optional<std::string> Store::write_object(Object &o, std::string_view body) const {
    const std::string bytes = encode_object(o, body);
    const std::string tmp = path_ + "/" + temp_name();
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return "cannot create " + tmp + ": " + std::strerror(errno);
    const bool ok = write_all(fd, bytes);
    const int err = errno;
    if (::close(fd) != 0 || !ok) {
        ::unlink(tmp.c_str());
        return "cannot write " + tmp + ": " + std::strerror(ok ? errno : err);
    }
    const std::string final_path = path_ + "/" + o.file;
    if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
        const int e = errno;
        ::unlink(tmp.c_str());
        return "cannot rename to " + final_path + ": " + std::strerror(e);
    }
    o.file_size = bytes.size();
    return std::nullopt;
}

std::optional<Object> Store::read_object(const Object &o, std::string *body) const {
    auto bytes = read_file(path_ + "/" + o.file, o.file_size + (64u << 20));
    if (!bytes)
        return std::nullopt;
    auto decoded = decode_object(*bytes, body);
    if (decoded)
        decoded->file = o.file;
    return decoded;
}

OpenObject::~OpenObject() {
    if (fd >= 0)
        ::close(fd);
}

namespace {

bool pread_all(int fd, char *out, size_t length, uint64_t offset) {
    size_t got = 0;
    while (got < length) {
        const ssize_t n = ::pread(fd, out + got, length - got, static_cast<off_t>(offset + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        got += static_cast<size_t>(n);
    }
    return true;
}

} // namespace

std::shared_ptr<OpenObject> Store::open_object(const Object &o) const {
    auto f = std::make_shared<OpenObject>();
    f->fd = ::open((path_ + "/" + o.file).c_str(), O_RDONLY | O_CLOEXEC);
    if (f->fd < 0)
        return nullptr;
    struct stat st {};
    char prefix[kPrefix];
    if (::fstat(f->fd, &st) != 0 || !pread_all(f->fd, prefix, kPrefix, 0))
        return nullptr;
    auto p = decode_prefix(std::string_view(prefix, kPrefix));
    if (!p || static_cast<uint64_t>(st.st_size) != kPrefix + p->meta_len + p->body_len ||
        p->meta_len > (64u << 20))
        return nullptr;
    std::string meta(p->meta_len, '\0');
    if (!pread_all(f->fd, meta.data(), meta.size(), kPrefix))
        return nullptr;
    uLong c = crc32_z(0, nullptr, 0);
    c = crc32_z(c, reinterpret_cast<const Bytef *>(meta.data()), meta.size());
    std::string piece(std::min<uint64_t>(p->body_len, 1u << 20), '\0');
    for (uint64_t at = 0; at < p->body_len;) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(piece.size(), p->body_len - at));
        if (!pread_all(f->fd, piece.data(), n, kPrefix + p->meta_len + at))
            return nullptr;
        c = crc32_z(c, reinterpret_cast<const Bytef *>(piece.data()), n);
        at += n;
    }
    if (static_cast<uint32_t>(c) != p->crc || !decode_meta(meta, f->meta))
        return nullptr;
    f->meta.file = o.file;
    f->meta.body_size = p->body_len;
    f->meta.file_size = static_cast<uint64_t>(st.st_size);
    f->meta.on_disk = true;
    f->body_offset = kPrefix + p->meta_len;
    return f;
}

std::optional<std::string> Store::read_body(const OpenObject &f, uint64_t offset,
                                            size_t length) const {
    std::string out(length, '\0');
    if (!pread_all(f.fd, out.data(), length, f.body_offset + offset))
        return std::nullopt;
    return out;
}

void Store::remove_file(const std::string &file) const {
    ::unlink((path_ + "/" + file).c_str());
}

// ---- the index -------------------------------------------------------------------------------------

Store::Store(std::string path, StoreLimits limits) : path_(std::move(path)), limits_(limits) {}

Store::~Store() {
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable())
        thread_.join();
}

void Store::set_limits(const StoreLimits &limits) {
    std::lock_guard lock(mu_);
    limits_ = limits;
}

StoreLimits Store::limits() const {
    std::lock_guard lock(mu_);
    return limits_;
}

std::optional<std::string> Store::open(StoreEvents events) {
    {
        std::lock_guard lock(mu_);
        events_ = std::move(events);
    }
    std::error_code ec;
    fs::create_directories(path_ + "/tmp", ec);
    if (ec)
        return "cannot create " + path_ + "/tmp: " + ec.message();
    for (int i = 0; i < 256; ++i) {
        static constexpr char hex[] = "0123456789abcdef";
        const std::string sub = path_ + "/" + hex[i >> 4] + hex[i & 15];
        fs::create_directory(sub, ec);
        if (ec)
            return "cannot create " + sub + ": " + ec.message();
    }
    if (::access(path_.c_str(), W_OK) != 0)
        return path_ + " is not writable: " + std::strerror(errno);
    thread_ = std::thread([this] { manager(); });
    return std::nullopt;
}

void Store::notify() {
    std::function<void(uint64_t, uint64_t, uint64_t)> usage;
    uint64_t b = 0, n = 0, m = 0;
    {
        std::lock_guard lock(mu_);
        usage = events_.usage;
        b = bytes_;
        n = by_file_.size();
        m = memory_bytes_;
    }
    if (usage)
        usage(b, n, m);
}

void Store::count_evictions(std::string_view reason, uint64_t n) {
    if (n == 0)
        return;
    (reason == "lru" ? stats_.evicted_lru : stats_.evicted_inactive).fetch_add(n);
    std::function<void(std::string_view, uint64_t)> evicted;
    {
        std::lock_guard lock(mu_);
        evicted = events_.evicted;
    }
    if (evicted)
        evicted(reason, n);
}

std::vector<ObjectPtr> Store::lookup(const std::string &key) {
    std::vector<ObjectPtr> out;
    std::lock_guard lock(mu_);
    auto it = by_key_.find(key);
    if (it == by_key_.end())
        return out;
    const int64_t now = wall_ms();
    for (const std::string &file : it->second) {
        auto e = by_file_.find(file);
        if (e == by_file_.end())
            continue;
        lru_.splice(lru_.begin(), lru_, e->second.lru);
        e->second.used_ms = now;
        out.push_back(e->second.object);
    }
    return out;
}

void Store::evict_locked(uint64_t need, std::vector<ObjectPtr> &evicted) {
    while (bytes_ + need > limits_.max_size && !lru_.empty()) {
        const std::string file = lru_.back();
        auto e = by_file_.find(file);
        if (e != by_file_.end())
            evicted.push_back(e->second.object);
        erase_locked(file);
    }
}

bool Store::reserve(uint64_t file_size, std::vector<ObjectPtr> &evicted) {
    {
        std::lock_guard lock(mu_);
        if (file_size > limits_.max_size)
            return false;
        evict_locked(file_size, evicted);
        bytes_ += file_size;
    }
    count_evictions("lru", evicted.size());
    if (!evicted.empty())
        notify();
    return true;
}

void Store::unreserve(uint64_t file_size) {
    std::lock_guard lock(mu_);
    bytes_ -= std::min(bytes_, file_size);
}

namespace {
uint64_t in_memory(const ObjectPtr &o) { return o->memory_body ? o->memory_body->size() : 0; }
} // namespace

void Store::trim_memory_locked() {
    // Least recently used first; a body whose file is not written yet is the only copy: kept.
    for (auto it = lru_.rbegin(); memory_bytes_ > limits_.memory_size && it != lru_.rend(); ++it) {
        Entry &e = by_file_.at(*it);
        if (!e.object->memory_body || !e.object->on_disk)
            continue;
        auto lighter = std::make_shared<Object>(*e.object);
        lighter->memory_body = nullptr;
        memory_bytes_ -= std::min(memory_bytes_, in_memory(e.object));
        e.object = std::move(lighter);
    }
}

void Store::promote(const ObjectPtr &o, std::shared_ptr<const std::string> body) {
    std::lock_guard lock(mu_);
    auto e = by_file_.find(o->file);
    if (e == by_file_.end() || e->second.object != o || o->memory_body || !body ||
        body->size() > limits_.memory_object_max || body->size() > limits_.memory_size)
        return;
    auto heavier = std::make_shared<Object>(*o);
    heavier->memory_body = std::move(body);
    memory_bytes_ += in_memory(heavier);
    e->second.object = std::move(heavier);
    trim_memory_locked();
}

uint64_t Store::memory_bytes() const {
    std::lock_guard lock(mu_);
    return memory_bytes_;
}

void Store::erase_locked(std::string file) {
    auto e = by_file_.find(file);
    if (e == by_file_.end())
        return;
    const ObjectPtr o = e->second.object;
    bytes_ -= std::min(bytes_, o->file_size);
    memory_bytes_ -= std::min(memory_bytes_, in_memory(o));
    lru_.erase(e->second.lru);
    by_file_.erase(e);
    auto k = by_key_.find(o->key);
    if (k != by_key_.end()) {
        std::erase(k->second, file);
        if (k->second.empty())
            by_key_.erase(k);
    }
}

void Store::insert(ObjectPtr o, uint64_t reserved) {
    {
        std::lock_guard lock(mu_);
        erase_locked(o->file); // the same variant stored again: same file, already replaced
        bytes_ += o->file_size;
        bytes_ -= std::min(bytes_, reserved);
        memory_bytes_ += in_memory(o);
        lru_.push_front(o->file);
        by_file_[o->file] = Entry{o, lru_.begin(), wall_ms()};
        by_key_[o->key].push_back(o->file);
        trim_memory_locked();
    }
    notify();
}

std::vector<ObjectPtr> Store::erase_files_locked(const std::vector<std::string> &files) {
    std::vector<ObjectPtr> out;
    for (const std::string &f : files) {
        auto e = by_file_.find(f);
        if (e != by_file_.end())
            out.push_back(e->second.object);
        erase_locked(f);
    }
    return out;
}

std::vector<ObjectPtr> Store::erase_key(const std::string &key) {
    std::vector<ObjectPtr> out;
    {
        std::lock_guard lock(mu_);
        auto k = by_key_.find(key);
        if (k == by_key_.end())
            return out;
        out = erase_files_locked(std::vector<std::string>(k->second)); // erase edits k->second
    }
    notify();
    return out;
}

void Store::settle(const ObjectPtr &pending, ObjectPtr final) {
    {
        std::lock_guard lock(mu_);
        auto e = by_file_.find(pending->file);
        if (e == by_file_.end() || e->second.object != pending)
            return;
        if (final && final->file_size == pending->file_size) {
            memory_bytes_ -= std::min(memory_bytes_, in_memory(pending));
            memory_bytes_ += in_memory(final);
            e->second.object = std::move(final);
            trim_memory_locked();
            return;
        }
        erase_locked(pending->file);
    }
    notify();
}

std::vector<ObjectPtr> Store::erase_prefix(const std::string &prefix) {
    std::vector<ObjectPtr> out;
    {
        std::lock_guard lock(mu_);
        std::vector<std::string> files;
        for (const auto &[key, list] : by_key_)
            if (key.compare(0, prefix.size(), prefix) == 0)
                files.insert(files.end(), list.begin(), list.end());
        out = erase_files_locked(files);
    }
    notify();
    return out;
}

void Store::discard(std::vector<ObjectPtr> objects) {
    {
        std::lock_guard lock(mu_);
        for (const auto &o : objects)
            doomed_.push_back(o->file);
    }
    cv_.notify_all();
}

void Store::erase_object(const ObjectPtr &o) {
    {
        std::lock_guard lock(mu_);
        auto e = by_file_.find(o->file);
        if (e == by_file_.end() || e->second.object != o)
            return;
        erase_locked(o->file);
    }
    notify();
}

bool Store::charge_collecting(uint64_t bytes) {
    const uint64_t limit = limits().collect_size;
    uint64_t now = collecting_.load(std::memory_order_relaxed);
    do {
        if (now + bytes > limit)
            return false;
    } while (!collecting_.compare_exchange_weak(now, now + bytes, std::memory_order_relaxed));
    return true;
}

void Store::release_collecting(uint64_t bytes) {
    collecting_.fetch_sub(bytes, std::memory_order_relaxed);
}

bool Store::begin_revalidation(const std::string &file) {
    std::lock_guard lock(mu_);
    if (std::find(revalidating_.begin(), revalidating_.end(), file) != revalidating_.end())
        return false;
    revalidating_.push_back(file);
    return true;
}

void Store::end_revalidation(const std::string &file) {
    std::lock_guard lock(mu_);
    std::erase(revalidating_, file);
}

bool Store::by_file_contains(const std::string &file) const {
    std::lock_guard lock(mu_);
    return by_file_.count(file) != 0;
}

uint64_t Store::bytes() const {
    std::lock_guard lock(mu_);
    return bytes_;
}

uint64_t Store::objects() const {
    std::lock_guard lock(mu_);
    return by_file_.size();
}

// ---- manager thread: load, then sweep ----------------------------------------------------------

void Store::load_all() {
    std::error_code ec;
    for (const auto &tmp : fs::directory_iterator(path_ + "/tmp", ec))
        fs::remove(tmp.path(), ec); // writes a crash interrupted
    for (const auto &sub : fs::directory_iterator(path_, ec)) {
        const std::string dir = sub.path().filename().string();
        if (dir.size() != 2 || !sub.is_directory())
            continue;
        std::error_code ec2;
        for (const auto &f : fs::directory_iterator(sub.path(), ec2)) {
            {
                std::lock_guard lock(mu_);
                if (stop_)
                    return;
            }
            const std::string rel = dir + "/" + f.path().filename().string();
            auto bytes = read_file(f.path().string(), limits().max_object_size + (1u << 20) +
                                                          (1u << 16));
            std::optional<Object> o = bytes ? decode_object(*bytes, nullptr) : std::nullopt;
            if (!o || object_file(o->key, o->vary_values) != rel) {
                fs::remove(f.path(), ec2); // torn, corrupted or not ours
                stats_.read_errors.fetch_add(1, std::memory_order_relaxed);
                continue;
            }
            o->file = rel;
            o->on_disk = true;
            auto ptr = std::make_shared<const Object>(std::move(*o));
            std::vector<ObjectPtr> evicted;
            {
                std::lock_guard lock(mu_);
                if (by_file_.count(rel))
                    continue; // stored again since start: the newer one stays
                evict_locked(ptr->file_size, evicted);
                bytes_ += ptr->file_size;
                lru_.push_back(rel); // older than anything served since start
                by_file_[rel] = Entry{ptr, std::prev(lru_.end()), wall_ms()};
                by_key_[ptr->key].push_back(rel);
            }
            count_evictions("lru", evicted.size());
            for (const auto &e : evicted)
                remove_file(e->file);
            stats_.loaded.fetch_add(1, std::memory_order_relaxed);
        }
    }
}

void Store::sweep_inactive() {
    std::vector<ObjectPtr> gone;
    {
        std::lock_guard lock(mu_);
        const int64_t cutoff = wall_ms() - limits_.inactive_ms;
        while (!lru_.empty()) {
            auto e = by_file_.find(lru_.back());
            if (e == by_file_.end() || e->second.used_ms > cutoff)
                break;
            gone.push_back(e->second.object);
            erase_locked(lru_.back());
        }
    }
    count_evictions("inactive", gone.size());
    for (const auto &o : gone)
        remove_file(o->file);
    if (!gone.empty())
        notify();
}

void Store::manager() {
    const auto started = std::chrono::steady_clock::now();
    load_all();
    stats_.loading.store(false);
    notify();
    std::function<void(uint64_t, uint64_t, uint64_t)> loaded;
    {
        std::lock_guard lock(mu_);
        loaded = events_.loaded;
    }
    if (loaded)
        loaded(stats_.loaded.load(), stats_.read_errors.load(),
               static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - started)
                                         .count()));
    std::unique_lock lock(mu_);
    while (!stop_) {
        const int64_t period = std::clamp<int64_t>(limits_.inactive_ms / 4, 100, 60000);
        cv_.wait_for(lock, std::chrono::milliseconds(period),
                     [this] { return stop_ || !doomed_.empty(); });
        if (stop_)
            break;
        std::vector<std::string> doomed;
        doomed.swap(doomed_);
        lock.unlock();
        for (const std::string &f : doomed) // purged: a file still being written is already
            if (!by_file_contains(f))       // replaced in the index; do not delete a new one
                remove_file(f);
        if (doomed.empty())
            sweep_inactive();
        lock.lock();
    }
}

} // namespace cache_disk

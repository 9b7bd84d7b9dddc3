// cache_disk: the file format (checksums, torn files), the index (LRU under the byte cap) and
// the manager thread (rebuild from disk, inactive sweep), on a real temporary directory.
#include "store.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

using namespace cache_disk;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        path = fs::temp_directory_path() /
               ("cache_disk_test_" + std::to_string(::getpid()) + "_" +
                std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
        fs::create_directories(path);
    }
    ~TempDir() { fs::remove_all(path); }
};

Object make(const std::string &key, std::vector<std::string> vary = {}) {
    Object o;
    o.key = key;
    o.vary_values = std::move(vary);
    for (size_t i = 0; i < o.vary_values.size(); ++i)
        o.vary_names.push_back("x-v" + std::to_string(i));
    o.status = 200;
    o.headers = {{"Content-Type", "text/plain"}, {"ETag", "\"1\""}};
    o.timing = Timing{1000, 2000};
    o.file = object_file(o.key, o.vary_values);
    return o;
}

bool wait_loaded(Store &s) {
    for (int i = 0; i < 500 && s.stats().loading.load(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return !s.stats().loading.load();
}

ObjectPtr put(Store &s, Object o, const std::string &body) {
    std::vector<ObjectPtr> evicted;
    const uint64_t size = encode_object(o, body).size();
    EXPECT_TRUE(s.reserve(size, evicted));
    for (auto &e : evicted)
        s.remove_file(e->file);
    EXPECT_FALSE(s.write_object(o, body));
    auto p = std::make_shared<const Object>(o);
    s.insert(p, size);
    return p;
}

} // namespace

TEST(Format, RoundTripAndChecksum) {
    Object o = make("http://a/b", {"br"});
    const std::string bytes = encode_object(o, "hello");
    std::string body;
    auto back = decode_object(bytes, &body);
    ASSERT_TRUE(back);
    EXPECT_EQ(body, "hello");
    EXPECT_EQ(back->key, o.key);
    EXPECT_EQ(back->vary_values, o.vary_values);
    EXPECT_EQ(back->headers.size(), 2u);
    EXPECT_EQ(back->timing.response_ms, 2000);
    for (size_t i = 0; i < bytes.size(); i += 7) {
        std::string bad = bytes;
        bad[i] = static_cast<char>(bad[i] ^ 0x5a);
        EXPECT_FALSE(decode_object(bad, nullptr)) << "flipped byte " << i;
    }
    EXPECT_FALSE(decode_object(std::string_view(bytes).substr(0, bytes.size() - 1), nullptr));
}

TEST(StoreTest, WriteReadAndRebuildAfterRestart) {
    TempDir dir;
    {
        Store s(dir.path.string(), {});
        ASSERT_FALSE(s.open());
        ASSERT_TRUE(wait_loaded(s));
        put(s, make("k1"), "body-1");
        put(s, make("k2", {"gzip"}), "body-2");
        put(s, make("k2", {"br"}), "body-3");
        EXPECT_EQ(s.objects(), 3u);
        EXPECT_EQ(s.lookup("k2").size(), 2u);
    }
    // A torn write left behind and a corrupted object: neither is indexed.
    std::ofstream(dir.path / "tmp" / "x.part") << "partial";
    const Object k1 = make("k1");
    {
        std::fstream f(dir.path / k1.file, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(-2, std::ios::end);
        f.put('X');
    }
    Store s(dir.path.string(), {});
    ASSERT_FALSE(s.open());
    ASSERT_TRUE(wait_loaded(s));
    EXPECT_EQ(s.objects(), 2u);
    EXPECT_TRUE(s.lookup("k1").empty());
    EXPECT_FALSE(fs::exists(dir.path / k1.file)) << "the corrupted file is deleted";
    EXPECT_FALSE(fs::exists(dir.path / "tmp" / "x.part"));
    auto v = s.lookup("k2");
    ASSERT_EQ(v.size(), 2u);
    std::string body;
    ASSERT_TRUE(s.read_object(*v[0], &body));
    EXPECT_TRUE(body == "body-2" || body == "body-3");
}

TEST(StoreTest, TheRebuildIsReportedEvenWhenItEndsAtOnce) {
    // The report used to be installed after open() had started the thread: a rebuild that ended
    // first (a small cache, a busy machine) was never logged.
    TempDir dir;
    {
        Store s(dir.path.string(), {});
        ASSERT_FALSE(s.open());
        ASSERT_TRUE(wait_loaded(s));
        for (int i = 0; i < 5; ++i)
            put(s, make("k" + std::to_string(i)), "body");
    }
    for (int attempt = 0; attempt < 20; ++attempt) {
        std::atomic<int> reports{0};
        std::atomic<uint64_t> indexed{0};
        StoreEvents events;
        events.loaded = [&](uint64_t objects, uint64_t, uint64_t) {
            indexed = objects;
            ++reports;
        };
        Store s(dir.path.string(), {});
        ASSERT_FALSE(s.open(std::move(events)));
        ASSERT_TRUE(wait_loaded(s));
        for (int i = 0; i < 200 && reports == 0; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        EXPECT_EQ(reports, 1) << "attempt " << attempt;
        EXPECT_EQ(indexed, 5u);
    }
}

TEST(StoreTest, LruEvictionKeepsUnderTheCap) {
    TempDir dir;
    StoreLimits limits;
    limits.max_size = 10'000;
    Store s(dir.path.string(), limits);
    ASSERT_FALSE(s.open());
    ASSERT_TRUE(wait_loaded(s));
    const std::string body(2000, 'x');
    for (int i = 0; i < 20; ++i) {
        put(s, make("k" + std::to_string(i)), body);
        s.lookup("k0"); // keep k0 recently used
        EXPECT_LE(s.bytes(), limits.max_size);
    }
    EXPECT_FALSE(s.lookup("k0").empty()) << "recently used objects survive";
    EXPECT_TRUE(s.lookup("k1").empty());
    EXPECT_GT(s.stats().evicted_lru.load(), 10u);
    uint64_t on_disk = 0;
    for (auto &e : fs::recursive_directory_iterator(dir.path))
        if (e.is_regular_file())
            on_disk += e.file_size();
    EXPECT_LE(on_disk, limits.max_size);
}

TEST(StoreTest, InactiveObjectsAreSwept) {
    TempDir dir;
    StoreLimits limits;
    limits.inactive_ms = 200;
    Store s(dir.path.string(), limits);
    ASSERT_FALSE(s.open());
    ASSERT_TRUE(wait_loaded(s));
    auto o = put(s, make("old"), "x");
    for (int i = 0; i < 100 && s.objects() > 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(s.objects(), 0u);
    EXPECT_FALSE(fs::exists(dir.path / o->file));
    EXPECT_EQ(s.stats().evicted_inactive.load(), 1u);
}

TEST(StoreTest, MemoryTierKeepsRecentSmallBodiesWithinItsSize) {
    TempDir dir;
    StoreLimits limits;
    limits.memory_size = 10'000;
    limits.memory_object_max = 4'000;
    Store s(dir.path.string(), limits);
    ASSERT_FALSE(s.open());
    ASSERT_TRUE(wait_loaded(s));
    const auto body = std::make_shared<const std::string>(3'000, 'm');
    std::vector<ObjectPtr> objs;
    for (int i = 0; i < 6; ++i) {
        Object o = make("m" + std::to_string(i));
        o.on_disk = true;
        o.memory_body = body;
        objs.push_back(put(s, o, *body));
        EXPECT_LE(s.memory_bytes(), limits.memory_size);
    }
    EXPECT_EQ(s.memory_bytes(), 9'000u) << "the three most recent stay in memory";
    EXPECT_TRUE(s.lookup("m5").front()->memory_body);
    EXPECT_FALSE(s.lookup("m0").front()->memory_body) << "the oldest were trimmed";
    // A body read from disk is promoted if it fits, and the tier stays within its size.
    s.promote(s.lookup("m0").front(), body);
    EXPECT_TRUE(s.lookup("m0").front()->memory_body);
    EXPECT_LE(s.memory_bytes(), limits.memory_size);
    const auto big = std::make_shared<const std::string>(5'000, 'b');
    s.promote(s.lookup("m1").front(), big);
    EXPECT_FALSE(s.lookup("m1").front()->memory_body) << "over memory_object_max";
}

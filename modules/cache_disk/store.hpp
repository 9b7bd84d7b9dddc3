// cache_disk: objects on disk and their in-memory index.
//
// One file per stored variant, named by the SHA-256 of its primary key and Vary values, under
// `<path>/<2 hex>/`. A file is written whole to `<path>/tmp/` and renamed into place, so a crash
// leaves either the old file, the new one, or a temporary that the loader deletes. Its layout:
//
//   "GHCACHE1" | u32 meta_len | u64 body_len | u32 crc32(meta + body) | meta | body
//   meta = key, Vary names and values, status, request/response times, header fields
//          (each string as u32 length + bytes, integers little-endian)
//
// The checksum is verified on every read: a torn or corrupted file is never served (it is
// deleted and the request goes to the origin).
//
// Threads: the index is shared by all workers behind one mutex (lookups copy a shared_ptr).
// The blocking file functions (write_object, read_object, remove_file, the loader) never run
// on an event loop: workers call them through the SDK's offload, the loader and the inactive
// sweep run on the store's own manager thread.
#pragma once

#include "collapse.hpp"
#include "policy.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace cache_disk {

// A stored response's metadata (everything but the body). Immutable once indexed.
struct Object {
    std::string key;                      // primary cache key
    std::vector<std::string> vary_names;  // lower-case, sorted
    std::vector<std::string> vary_values; // normalised request values, same order
    unsigned status = 200;
    Fields headers;
    Timing timing;
    uint64_t body_size = 0;
    uint64_t file_size = 0;
    std::string file; // "<2 hex>/<64 hex>", relative to the store's path
    // The body in memory: while the file is being written (the object is indexed and served
    // from the moment its body is complete, not from when the disk has it), and afterwards for
    // small objects while the memory tier has room (`memory_size`, `memory_object_max`).
    std::shared_ptr<const std::string> memory_body;
    bool on_disk = false; // the file is written (a memory body may then be dropped)
};
using ObjectPtr = std::shared_ptr<const Object>;

// A stored file opened to stream its body (large objects): verified whole when opened, then
// read piece by piece. Closes its descriptor when the last reference goes.
struct OpenObject {
    int fd = -1;
    Object meta;              // the file's own head (a newer file than the index knew is fine)
    uint64_t body_offset = 0; // where the body starts in the file
    OpenObject() = default;
    OpenObject(const OpenObject &) = delete;
    OpenObject &operator=(const OpenObject &) = delete;
    ~OpenObject();
};

// The file name of a variant: hex SHA-256 of key and Vary values.
std::string object_file(const std::string &key, const std::vector<std::string> &vary_values);

// Serialises an object and its body (the file's bytes).
std::string encode_object(const Object &o, std::string_view body);
// Parses a file's bytes; nullopt if the layout or checksum is wrong. `body` receives the body.
std::optional<Object> decode_object(std::string_view bytes, std::string *body);

struct StoreLimits {
    uint64_t max_size = 1ull << 30;       // bytes of files
    uint64_t max_object_size = 16u << 20; // body bytes
    int64_t inactive_ms = 10 * 60 * 1000; // unused this long: removed
    uint64_t memory_size = 64u << 20;     // bodies kept in memory besides their files
    uint64_t memory_object_max = 256u << 10; // larger bodies are always read from disk
    uint64_t collect_size = 256u << 20;    // bodies being collected for storing, all streams
};

struct StoreStats {
    std::atomic<uint64_t> evicted_lru{0};
    std::atomic<uint64_t> evicted_inactive{0};
    std::atomic<uint64_t> write_errors{0};
    std::atomic<uint64_t> read_errors{0}; // unreadable or checksum failures
    std::atomic<uint64_t> loaded{0};      // objects found on disk at start
    std::atomic<bool> loading{true};
};

// Callbacks for metrics; called on any thread (a worker or the manager thread), never with
// the index locked.
struct StoreEvents {
    // After the totals changed: bytes of files, objects, bytes of bodies held in memory.
    std::function<void(uint64_t bytes, uint64_t objects, uint64_t memory)> usage;
    std::function<void(std::string_view reason, uint64_t n)> evicted; // "lru" / "inactive"
    // The start-up rebuild is over: objects indexed, files deleted as bad, how long it took.
    std::function<void(uint64_t objects, uint64_t bad, uint64_t ms)> loaded;
};

class Store : public std::enable_shared_from_this<Store> {
  public:

    Store(std::string path, StoreLimits limits);
    ~Store(); // stops the manager thread

    const std::string &path() const { return path_; }
    void set_limits(const StoreLimits &limits);
    StoreLimits limits() const;
    StoreStats &stats() { return stats_; }

    // Creates the directory layout (blocking: call at activation) and starts the manager thread
    // (rebuilds the index from the files, then sweeps inactive objects). Returns an error text.
    // `events` are in place before the thread starts: the rebuild's end, which can come at once,
    // is always reported.
    std::optional<std::string> open(StoreEvents events = {});

    // The variants stored under `key`; marks them used.
    std::vector<ObjectPtr> lookup(const std::string &key);

    // Reserves room for an object of `file_size` bytes, evicting least recently used objects
    // (returned: delete their files). False if it can never fit.
    bool reserve(uint64_t file_size, std::vector<ObjectPtr> &evicted);
    // Gives back a reservation that was not used (a failed write).
    void unreserve(uint64_t file_size);
    // Indexes an object; `reserved` is the reservation it uses up (its file_size is counted
    // instead). An older object of the same file is replaced (same file: nothing to delete);
    // other variants of the key are kept.
    void insert(ObjectPtr o, uint64_t reserved);
    // After a pending object's file was written (`final`, same file, no pending body) or failed
    // (null): replaces or removes it, unless another object took its place meanwhile.
    void settle(const ObjectPtr &pending, ObjectPtr final);
    // Keeps `body` in memory with `o` (read from disk for a hit) if it is still the indexed
    // object and the memory tier takes it.
    void promote(const ObjectPtr &o, std::shared_ptr<const std::string> body);
    uint64_t memory_bytes() const;
    // Removes every key starting with `prefix` (returned: delete their files).
    std::vector<ObjectPtr> erase_prefix(const std::string &prefix);
    // Deletes these objects' files on the manager thread (for callers off the workers).
    void discard(std::vector<ObjectPtr> objects);
    // Removes every variant of `key` from the index (returned: delete their files).
    std::vector<ObjectPtr> erase_key(const std::string &key);
    // Removes one object if it is still the indexed one for its file (an unreadable file).
    void erase_object(const ObjectPtr &o);

    uint64_t bytes() const;
    uint64_t objects() const;

    // The budget for bodies held while they are collected (limits().collect_size): false, and
    // nothing charged, if `bytes` more would exceed it. Any thread.
    bool charge_collecting(uint64_t bytes);
    void release_collecting(uint64_t bytes);

    // Misses in progress, for request collapsing.
    Fills &fills() { return fills_; }
    // Background revalidations (stale-while-revalidate): true if the caller may start one for
    // `file` (none is running); end_revalidation when it is over.
    bool begin_revalidation(const std::string &file);
    void end_revalidation(const std::string &file);

    // ---- blocking file I/O: offload or the manager thread only ----
    // Writes the object's file (temporary + rename). Sets o.file_size. Error text on failure.
    std::optional<std::string> write_object(Object &o, std::string_view body) const;
    // Reads and verifies a file; nullopt if missing, torn or corrupted.
    std::optional<Object> read_object(const Object &o, std::string *body) const;
    void remove_file(const std::string &file) const;
    // Opens the file and verifies its checksum over the whole file (read in 1 MiB pieces, not
    // held); nullptr if missing, torn or corrupted.
    std::shared_ptr<OpenObject> open_object(const Object &o) const;
    // `length` body bytes from `offset` (relative to the body); nullopt on a short read.
    std::optional<std::string> read_body(const OpenObject &f, uint64_t offset,
                                         size_t length) const;

  private:
    struct Entry {
        ObjectPtr object;
        std::list<std::string>::iterator lru; // position in lru_ (front = most recent)
        int64_t used_ms = 0;
    };
    void manager();
    void load_all();
    void sweep_inactive();
    void evict_locked(uint64_t need, std::vector<ObjectPtr> &evicted);
    void trim_memory_locked();
    // By value: callers pass strings this erases (lru_.back(), an entry's key).
    void erase_locked(std::string file);
    std::vector<ObjectPtr> erase_files_locked(const std::vector<std::string> &files);
    void notify();
    bool by_file_contains(const std::string &file) const;
    void count_evictions(std::string_view reason, uint64_t n);

    const std::string path_;
    mutable std::mutex mu_;
    StoreLimits limits_;
    std::unordered_map<std::string, Entry> by_file_;                    // file -> entry
    std::unordered_map<std::string, std::vector<std::string>> by_key_; // key -> files
    std::list<std::string> lru_;
    uint64_t bytes_ = 0;        // indexed files + reservations
    uint64_t memory_bytes_ = 0; // memory bodies of indexed objects
    std::atomic<uint64_t> collecting_{0}; // bodies being collected (not indexed yet)
    StoreStats stats_;
    StoreEvents events_;
    Fills fills_;
    std::vector<std::string> revalidating_; // files with a background revalidation (mu_)
    std::vector<std::string> doomed_;       // files the manager thread deletes (mu_)

    std::thread thread_;
    std::condition_variable cv_;
    bool stop_ = false;
};

// Wall-clock milliseconds (stored times survive restarts, so they are not monotonic).
int64_t wall_ms();

} // namespace cache_disk

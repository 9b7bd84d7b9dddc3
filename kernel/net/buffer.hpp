// A fixed-capacity byte buffer reused for a connection's whole life: reads land at the end,
// the parser consumes from the front, compact() moves the remainder to the start.
//
// The memory comes from mmap, not malloc: a connection that goes idle gives its buffer back
// with release(), and that must lower the process's RSS (freed malloc chunks stay in the heap).
// A small per-thread cache of free buffers keeps short connections from paying for a
// mmap/munmap pair each.
#pragma once

#include <cstddef>
#include <cstring>
#include <utility>

namespace gatehouse::net {

namespace buffer_memory {
// Sizes are rounded up to whole pages. Thread: any (the cache is per thread).
char* allocate(size_t& size);
void free(char* data, size_t size);
} // namespace buffer_memory

class Buffer {
public:
    explicit Buffer(size_t capacity = 0) { reserve(capacity); }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    ~Buffer() { buffer_memory::free(data_, capacity_); }

    void reserve(size_t capacity) {
        if (capacity <= capacity_)
            return;
        char* next = buffer_memory::allocate(capacity);
        if (size())
            std::memcpy(next, data(), size());
        buffer_memory::free(data_, capacity_);
        end_ -= begin_;
        begin_ = 0;
        data_ = next;
        capacity_ = capacity;
    }
    // Gives the memory back (an idle connection); the next reserve() allocates again.
    void release() {
        if (size() == 0) {
            buffer_memory::free(data_, capacity_);
            data_ = nullptr;
            capacity_ = begin_ = end_ = 0;
        }
    }

    char* data() { return data_ + begin_; }
    const char* data() const { return data_ + begin_; }
    size_t size() const { return end_ - begin_; }
    bool empty() const { return begin_ == end_; }
    void consume(size_t n) {
        begin_ += n;
        if (begin_ == end_)
            begin_ = end_ = 0;
    }

    char* space() { return data_ + end_; }
    size_t space_size() const { return capacity_ - end_; }
    void commit(size_t n) { end_ += n; }
    size_t capacity() const { return capacity_; }
    bool full() const { return begin_ == 0 && end_ == capacity_; }

    void compact() {
        if (begin_ == 0)
            return;
        size_t n = size();
        if (n)
            std::memmove(data_, data(), n);
        begin_ = 0;
        end_ = n;
    }

private:
    char* data_ = nullptr;
    size_t capacity_ = 0;
    size_t begin_ = 0;
    size_t end_ = 0;
};

} // namespace gatehouse::net

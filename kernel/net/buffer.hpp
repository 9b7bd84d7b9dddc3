// A fixed-capacity byte buffer reused for a connection's whole life: reads land at the end,
// the parser consumes from the front, compact() moves the remainder to the start.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>

namespace gatehouse::net {

class Buffer {
public:
    explicit Buffer(size_t capacity = 0) { reserve(capacity); }

    void reserve(size_t capacity) {
        if (capacity <= capacity_)
            return;
        auto next = std::make_unique<char[]>(capacity);
        if (size())
            std::memcpy(next.get(), data(), size());
        end_ -= begin_;
        begin_ = 0;
        data_ = std::move(next);
        capacity_ = capacity;
    }
    // Gives the memory back (an idle connection); the next reserve() allocates again.
    void release() {
        if (size() == 0) {
            data_.reset();
            capacity_ = begin_ = end_ = 0;
        }
    }

    char* data() { return data_.get() + begin_; }
    const char* data() const { return data_.get() + begin_; }
    size_t size() const { return end_ - begin_; }
    bool empty() const { return begin_ == end_; }
    void consume(size_t n) {
        begin_ += n;
        if (begin_ == end_)
            begin_ = end_ = 0;
    }

    char* space() { return data_.get() + end_; }
    size_t space_size() const { return capacity_ - end_; }
    void commit(size_t n) { end_ += n; }
    size_t capacity() const { return capacity_; }
    bool full() const { return begin_ == 0 && end_ == capacity_; }

    void compact() {
        if (begin_ == 0)
            return;
        size_t n = size();
        if (n)
            std::memmove(data_.get(), data(), n);
        begin_ = 0;
        end_ = n;
    }

private:
    std::unique_ptr<char[]> data_;
    size_t capacity_ = 0;
    size_t begin_ = 0;
    size_t end_ = 0;
};

} // namespace gatehouse::net

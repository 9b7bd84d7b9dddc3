// Per-thread stacks of free fixed-size blocks: memory for objects that live a short while, many
// at once across a worker's connections, without a malloc and a free each time and without
// holding memory in every connection. The most recently freed block is reused first (still in
// the CPU cache); each thread keeps up to `Kept` free blocks of a size, the rest go back to the
// heap.
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace gatehouse::net::block_memory {

template <size_t Size, size_t Kept>
std::vector<void*>& free_blocks() {
    thread_local struct Blocks {
        std::vector<void*> list;
        ~Blocks() {
            for (void* p : list)
                ::operator delete(p);
        }
    } blocks;
    return blocks.list;
}

template <size_t Size, size_t Kept>
void* allocate() {
    auto& list = free_blocks<Size, Kept>();
    if (list.empty())
        return ::operator new(Size);
    void* p = list.back();
    list.pop_back();
    return p;
}

template <size_t Size, size_t Kept>
void deallocate(void* p) {
    auto& list = free_blocks<Size, Kept>();
    if (list.size() >= Kept)
        return ::operator delete(p);
    list.push_back(p);
}

} // namespace gatehouse::net::block_memory

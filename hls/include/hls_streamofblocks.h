// C-simulation stand-in for Vitis HLS <hls_streamofblocks.h> (written for this project; UG1399,
// "Using the hls::stream_of_blocks Type"). Only used by the g++ builds; Vitis HLS uses its own header.
// A producer acquires an empty block with hls::write_lock and releases it full when the lock goes out
// of scope; a consumer acquires the oldest full block with hls::read_lock. The C simulation runs the
// dataflow processes one after another, so the queue is unbounded here (the hardware has `depth`
// blocks, two by default: a ping-pong buffer); acquiring a block from an empty queue throws, like a
// read from an empty hls::stream.
#ifndef SASP_HLS_STREAMOFBLOCKS_STANDIN_H
#define SASP_HLS_STREAMOFBLOCKS_STANDIN_H

#ifdef __SYNTHESIS__
#error "hls/include/hls_streamofblocks.h is a C-simulation stand-in"
#endif

#include <deque>
#include <memory>

#include "hls_stream.h"

namespace hls {

template <typename T>
struct sob_holder {
    T data;
};

template <typename T, unsigned depth = 2>
class stream_of_blocks {
  public:
    stream_of_blocks() = default;
    stream_of_blocks(const stream_of_blocks&) = delete;
    stream_of_blocks& operator=(const stream_of_blocks&) = delete;
    bool empty() const { return full_.empty(); }
    std::deque<std::unique_ptr<sob_holder<T>>> full_;
    std::size_t reads_ = 0;
};

template <typename T>
class write_lock {
  public:
    template <unsigned D>
    explicit write_lock(stream_of_blocks<T, D>& s) : dst_(&s.full_), blk_(new sob_holder<T>()) {}
    ~write_lock() { dst_->push_back(std::move(blk_)); }
    write_lock(const write_lock&) = delete;
    write_lock& operator=(const write_lock&) = delete;
    operator T&() { return blk_->data; }

  private:
    std::deque<std::unique_ptr<sob_holder<T>>>* dst_;
    std::unique_ptr<sob_holder<T>> blk_;
};

template <typename T>
class read_lock {
  public:
    template <unsigned D>
    explicit read_lock(stream_of_blocks<T, D>& s) {
        if (s.full_.empty()) throw stream_underrun("stream_of_blocks", s.reads_);
        blk_ = std::move(s.full_.front());
        s.full_.pop_front();
        ++s.reads_;
    }
    read_lock(const read_lock&) = delete;
    read_lock& operator=(const read_lock&) = delete;
    operator T&() { return blk_->data; }

  private:
    std::unique_ptr<sob_holder<T>> blk_;
};

}  // namespace hls

#endif

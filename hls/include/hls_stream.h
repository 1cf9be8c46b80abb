// C-simulation stand-in for Vitis HLS <hls_stream.h> (written for this project).
// Only used by the g++ builds (make csim, host/emulator.py); Vitis HLS uses its own header.
// Difference from a plain FIFO: reading an empty stream throws hls::stream_underrun, the
// software equivalent of the hardware kernel blocking forever on an empty AXI4-Stream.
#ifndef SASP_HLS_STREAM_STANDIN_H
#define SASP_HLS_STREAM_STANDIN_H

#define SASP_HLS_STREAM_STANDIN 1

#ifdef __SYNTHESIS__
#error "hls/include/hls_stream.h is a C-simulation stand-in; do not put hls/include on the synthesis include path"
#endif

#include <cstddef>
#include <vector>
#include <stdexcept>
#include <string>

namespace hls {

struct stream_underrun : public std::runtime_error {
    std::size_t reads_done;  // successful reads before the one that stalled
    stream_underrun(const std::string& name, std::size_t n)
        : std::runtime_error("read from empty hls::stream '" + name + "'"), reads_done(n) {}
};

template <typename T>
class stream {
  public:
    stream() : name_("stream"), reads_(0) {}
    explicit stream(const char* name) : name_(name), reads_(0) {}
    stream(const stream&) = delete;
    stream& operator=(const stream&) = delete;

    T read() {
        if (head_ == q_.size()) throw stream_underrun(name_, reads_);
        T v = q_[head_++];
        if (head_ == q_.size()) {  // drained: reuse the storage
            q_.clear();
            head_ = 0;
        }
        ++reads_;
        return v;
    }
    void read(T& v) { v = read(); }
    bool read_nb(T& v) {
        if (empty()) return false;
        v = read();
        return true;
    }
    void write(const T& v) { q_.push_back(v); }
    bool write_nb(const T& v) {
        write(v);
        return true;
    }
    void operator>>(T& v) { v = read(); }
    void operator<<(const T& v) { write(v); }
    bool empty() const { return head_ == q_.size(); }
    bool full() const { return false; }
    std::size_t size() const { return q_.size() - head_; }
    std::size_t reads() const { return reads_; }

  private:
    std::string name_;
    std::vector<T> q_;  // unread elements are q_[head_:]; a vector, not a deque: C-simulation speed
    std::size_t head_ = 0;
    std::size_t reads_;
};

}  // namespace hls

#endif

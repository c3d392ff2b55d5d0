// Internal: a pass over two devices (SplitNet, SplitTrainer): one command buffer per device per
// stretch between exchanges, and the host's copies between the devices' staging buffers.
#pragma once

#include <array>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "vk/exchange.hpp"
#include "vkalex/split.hpp"

namespace vkalex::detail {

// The two devices of a split net, and the timeline semaphores of their exchanges: `out[d]`
// device d signals when its data for the other is staged, `in[d]` the host signals when the
// other's data is in d's staging. Both count up across passes from `value`.
struct SplitDevices {
  std::array<Context, 2> ctx;
  std::array<std::unique_ptr<Timeline>, 2> out, in;
  uint64_t value = 0;
  SplitDevices(Context& first, Context& second);
};

// A tensor like `shape` with `channels` channels (dimension 1) on `ctx`: device-local, or
// host-visible staging.
Tensor with_channels(Context& ctx, const Shape& shape, uint32_t channels, bool staging);
// `shape` with dimension i set to `value`.
Shape with_dim(const Shape& shape, size_t i, uint32_t value);

class SplitProgram {
 public:
  explicit SplitProgram(SplitDevices& devices);
  Recorder& rec(int d) { return *segments_[d].back(); }
  Context& context(int d) { return devices_.ctx[d]; }
  // Records, on device `from`, the copy of channels src_first to src_first + count - 1 of
  // `src` into a staging buffer, and returns the staging buffer on the other device that will
  // hold them after the next cut().
  Tensor transfer(int from, const Tensor& src, uint32_t src_first, uint32_t count);
  // Ends the devices' command buffers where transfers are pending: what is recorded from now
  // on runs after the exchange (reads the staging buffers transfer() returned). `before` names
  // what needs the data.
  void cut(const std::string& before);
  void finish();
  std::vector<SplitExchange> exchanges() const;
  // Submits everything and runs the exchanges; returns when both devices have finished.
  void run();

 private:
  struct Transfer {
    int from = 0;
    Tensor send, recv;
  };
  struct Exchange {
    SplitExchange info;
    std::vector<Transfer> transfers;
  };
  void open(int d, bool after_exchange);
  SplitDevices& devices_;
  std::array<std::vector<std::unique_ptr<Recorder>>, 2> segments_;
  std::vector<Transfer> pending_;
  std::vector<Exchange> exchanges_;
};

// Channels of `need` not in `have` (at most one range each side).
std::vector<ChannelRange> missing(const ChannelRange& need, const ChannelRange& have);
ChannelRange intersect(const ChannelRange& a, const ChannelRange& b);

// Tensors on both devices holding channels `holds[d]` of a tensor shaped like `shape`, of
// which `need[d]` are filled (the rest zero): from what each device holds now (`have[d]`,
// holding channels `held[d]`, of which `valid[d]` are right) and the rest received from the
// other device through one exchange. Where a device holds what it needs as it needs it, its
// tensor is returned as it is. A device whose need is empty gets an empty tensor.
std::array<Tensor, 2> gather(SplitProgram& program, const std::string& before, const Shape& shape,
                             const std::array<ChannelRange, 2>& holds, const std::array<ChannelRange, 2>& need,
                             const std::array<ChannelRange, 2>& valid, const std::array<ChannelRange, 2>& held,
                             const std::array<Tensor, 2>& have, std::vector<Tensor>& keep);

// Throws Error unless `images` are [batch, C, H, W] of the model and `labels` `batch` labels
// each below the class count (trainer.cpp).
void check_step_batch(const ModelDesc& m, const HostTensor& images, const std::vector<uint32_t>& labels, uint32_t batch);

// Rows r of a parameter [rows, ...].
HostTensor rows_of(const HostTensor& t, const ChannelRange& r);
// Every parameter of `model`, whole, from both devices' rows of it.
std::map<std::string, HostTensor> whole(SplitDevices& devices, const std::array<std::map<std::string, Tensor>, 2>& rows,
                                         const ModelDesc& model);

}  // namespace vkalex::detail

namespace vkalex {

struct SplitNet::State {
  detail::SplitDevices devices;
  SplitPlan plan;
  std::array<std::map<std::string, Tensor>, 2> params;  // each device's rows
  std::map<std::string, std::array<ChannelRange, 2>> rows;  // of each parameter, per device
  std::array<Tensor, 2> input;
  Tensor logits, probabilities;  // on device 0
  std::vector<Tensor> keep;
  std::unique_ptr<detail::SplitProgram> program;
  std::vector<SplitExchange> exchanges;
  State(Context& a, Context& b) : devices(a, b) {}
};

}  // namespace vkalex

// The XDP data plane behind the generic Dataplane service: installs Tables
// into the BPF maps (only what changed; Maglev tables swapped whole through
// map-in-map; all or nothing), reads the per-CPU counters and the per-CPU
// connection tables, and owns the program's attachment to the interfaces.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "control/api/driver.h"
#include "xdp/loader.h"

namespace stratus::xdp {

struct XdpOptions {
  std::string instance = "default";
  // Interfaces to attach the program to (in the current network namespace).
  std::vector<std::string> interfaces;
  // Maps are pinned in bpffs_root/instance; empty bpffs_root: no pinning
  // (private maps that die with the driver, as tests want).
  std::string bpffs_root = "/sys/fs/bpf/stratus";
  bool force_generic = false;
  // On destruction, detach the program and remove the pins (--detach).
  // Otherwise the program stays attached and keeps forwarding with the
  // pinned maps, which the next start reuses.
  bool detach_on_exit = false;
};

class XdpDriver final : public api::DataplaneDriver {
 public:
  explicit XdpDriver(XdpOptions options);
  ~XdpDriver() override;

  void install(const Tables &prev, const Tables &next) override;
  // Writes the touched keys' routes and services as a delta without
  // comparing the tables first (when the ports are as before).
  void install_delta(const Tables &prev, const Tables &next, const TouchedKeys &touched) override;
  std::vector<api::pb::PortState> ports() override;
  void counters(api::pb::CountersReply *out) override;
  std::optional<api::FlowEntry> lookup_flow(const stratus_flow_key &key) override;
  void dump_flows(const api::pb::FlowsRequest &req,
                  const std::function<bool(const api::pb::Flow &)> &sink) override;
  std::uint64_t flow_count() override;

  void set_detach_on_exit(bool detach) { options_.detach_on_exit = detach; }
  // The program, for BPF_PROG_TEST_RUN (tests, benchmarks).
  int program_fd() const { return loader_->prog_fd(); }
  bool reused_pins() const { return loader_->reused(); }
  // Whether the last successful install wrote a delta (only what changed)
  // rather than every table.
  bool last_install_was_delta() const { return last_delta_; }
  const XdpLoader &loader() const { return *loader_; }

  // One map's entries as raw key and value bytes (the C++ mirror of what is
  // live); public for the install implementation's helpers.
  using Entries = std::map<std::string, std::string>;

 private:
  void install_tables(const Tables &next, const TouchedKeys *touched);
  // Calls fn(cpu, entry, flow key) for every connection until it returns
  // false.
  template <typename Fn>
  void walk_flows(Fn &&fn);

  struct Attached {
    std::string name;
    int ifindex = 0;
    AttachMode mode = AttachMode::kNone;
  };
  struct Mirror;

  void read_live_state();

  XdpOptions options_;
  std::unique_ptr<XdpLoader> loader_;
  std::vector<Attached> attached_;

  std::mutex mu_;  // guards the fields below (install vs readers)
  std::unique_ptr<Mirror> mirror_;
  Tables live_;
  std::atomic<bool> last_delta_{false};
  bool live_valid_ = false;  // live_ is what install() wrote (not yet after a start)
  std::string live_ports_;   // the ports as install() resolved them (names, ifindex, MAC)
};

}  // namespace stratus::xdp

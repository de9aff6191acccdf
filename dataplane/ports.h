// DPDK ports of a stratus-dpdk process: every ethdev the EAL probed (PCI
// NICs or --vdev devices), configured with one RX queue per worker (RSS
// spreads flows where the PMD supports it; fewer queues where it does not)
// and one TX queue per worker where possible (shared, under a lock,
// otherwise). Ports are known by their DPDK device name, which the node
// table's port names refer to.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <memory>

#include "config/tables.h"
#include "dataplane/dpdk.h"
#include "dataplane/snapshot.h"

namespace stratus::dpdk {

struct PortConfig {
  std::uint16_t workers = 1;
  std::uint16_t rx_desc = 1024;
  std::uint16_t tx_desc = 1024;
  bool promiscuous = true;  // frames are addressed to the node table's MACs, not the device's
};

struct PortInfo {
  std::uint16_t dev = kNoDev;
  std::string name;    // rte_eth_dev_get_name_by_port
  std::string alias;   // --port ALIAS=DEVICE: the name the node table uses
  std::string driver;  // PMD name, e.g. net_af_packet
  MacAddress mac;
  std::uint16_t rx_queues = 0;
  std::uint16_t tx_queues = 0;
  bool rss = false;
};

// An RX queue a worker polls.
struct RxQueue {
  std::uint16_t dev;
  std::uint16_t queue;
};

// The TX queue a worker uses on one port; `lock` is set when the PMD has
// fewer TX queues than there are workers and the queue is shared.
struct TxSlot {
  std::uint16_t queue = 0;
  rte_spinlock_t *lock = nullptr;
};

class Ports {
 public:
  // Configures and starts every probed port; throws std::runtime_error
  // naming the port on failure.
  Ports(const PortConfig &cfg, rte_mempool *pool);
  ~Ports();
  Ports(const Ports &) = delete;
  Ports &operator=(const Ports &) = delete;

  const std::vector<PortInfo> &all() const { return ports_; }
  // By device name or by alias.
  const PortInfo *by_name(const std::string &name) const;
  // Lets the node table call device `device` by `alias` (an interface-like
  // name such as "eth0" instead of "net_af_packet0" or a PCI address).
  // False when there is no such device or the alias is taken.
  bool set_alias(const std::string &device, const std::string &alias);
  const PortInfo *by_dev(std::uint16_t dev) const;
  std::optional<DeviceInfo> resolve(const std::string &name) const;
  bool link_up(std::uint16_t dev) const;

  // Worker `w`'s share: RX queue w of every port that has one, and a TX
  // queue on every port (indexed by dev id, kMaxPorts entries).
  std::vector<RxQueue> rx_queues_for(std::uint16_t w) const;
  std::vector<TxSlot> tx_slots_for(std::uint16_t w);

  // Stops and closes every port (idempotent; the destructor calls it).
  void close();

  // An mbuf pool sized for `ports` ports, `workers` workers.
  static rte_mempool *create_pool(std::uint16_t ports, std::uint16_t workers,
                                  const PortConfig &cfg);

 private:
  std::vector<PortInfo> ports_;
  std::uint16_t workers_ = 1;
  std::unique_ptr<rte_spinlock_t[]> tx_locks_;  // [dev * workers_ + queue]
  bool closed_ = false;
};

}  // namespace stratus::dpdk

#include "dataplane/ports.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "dataplane/dpdk.h"

namespace stratus::dpdk {

namespace {

[[noreturn]] void fail(const PortInfo &p, const std::string &what, int rc) {
  throw std::runtime_error("port " + p.name + ": " + what + ": " + rte_strerror(rc < 0 ? -rc : rc));
}

}  // namespace

Ports::Ports(const PortConfig &cfg, rte_mempool *pool)
    : workers_(std::max<std::uint16_t>(1, cfg.workers)),
      tx_locks_(new rte_spinlock_t[std::size_t{kMaxPorts} * workers_]) {
  for (std::size_t i = 0; i < std::size_t{kMaxPorts} * workers_; ++i) {
    rte_spinlock_init(&tx_locks_[i]);
  }
  std::uint16_t dev;
  RTE_ETH_FOREACH_DEV(dev) {
    PortInfo p;
    p.dev = dev;
    char name[RTE_ETH_NAME_MAX_LEN];
    if (rte_eth_dev_get_name_by_port(dev, name) != 0)
      continue;
    p.name = name;
    if (dev >= kMaxPorts) {
      throw std::runtime_error("port " + p.name + ": device id beyond the supported " +
                               std::to_string(kMaxPorts) + " ports");
    }
    rte_eth_dev_info info{};
    if (int rc = rte_eth_dev_info_get(dev, &info); rc != 0)
      fail(p, "device info", rc);
    p.driver = info.driver_name != nullptr ? info.driver_name : "";
    p.rx_queues =
        std::max<std::uint16_t>(1, std::min<std::uint16_t>(cfg.workers, info.max_rx_queues));
    p.tx_queues =
        std::max<std::uint16_t>(1, std::min<std::uint16_t>(cfg.workers, info.max_tx_queues));

    rte_eth_conf conf{};
    std::uint64_t rss_hf =
        (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP) & info.flow_type_rss_offloads;
    if (p.rx_queues > 1 && rss_hf != 0) {
      conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
      conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
      p.rss = true;
    } else {
      p.rx_queues = 1;  // without RSS a second queue would see nothing
    }
    if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE) {
      conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
    }
    if (int rc = rte_eth_dev_configure(dev, p.rx_queues, p.tx_queues, &conf); rc != 0) {
      fail(p, "configure", rc);
    }
    std::uint16_t rxd = cfg.rx_desc;
    std::uint16_t txd = cfg.tx_desc;
    if (int rc = rte_eth_dev_adjust_nb_rx_tx_desc(dev, &rxd, &txd); rc != 0) {
      fail(p, "descriptor counts", rc);
    }
    int socket = rte_eth_dev_socket_id(dev);
    if (socket < 0)
      socket = SOCKET_ID_ANY;
    for (std::uint16_t q = 0; q < p.rx_queues; ++q) {
      if (int rc = rte_eth_rx_queue_setup(dev, q, rxd, socket, nullptr, pool); rc != 0) {
        fail(p, "RX queue " + std::to_string(q), rc);
      }
    }
    rte_eth_txconf txconf = info.default_txconf;
    txconf.offloads = conf.txmode.offloads;
    for (std::uint16_t q = 0; q < p.tx_queues; ++q) {
      if (int rc = rte_eth_tx_queue_setup(dev, q, txd, socket, &txconf); rc != 0) {
        fail(p, "TX queue " + std::to_string(q), rc);
      }
    }
    if (int rc = rte_eth_dev_start(dev); rc != 0)
      fail(p, "start", rc);
    if (cfg.promiscuous)
      rte_eth_promiscuous_enable(dev);  // not every PMD can; not fatal
    rte_ether_addr mac{};
    if (rte_eth_macaddr_get(dev, &mac) == 0)
      std::memcpy(p.mac.bytes.data(), mac.addr_bytes, 6);
    ports_.push_back(std::move(p));
  }
}

Ports::~Ports() {
  close();
}

void Ports::close() {
  if (closed_)
    return;
  closed_ = true;
  for (const PortInfo &p : ports_) {
    rte_eth_dev_stop(p.dev);
    rte_eth_dev_close(p.dev);
  }
}

const PortInfo *Ports::by_name(const std::string &name) const {
  for (const PortInfo &p : ports_) {
    if (p.name == name || (!p.alias.empty() && p.alias == name))
      return &p;
  }
  return nullptr;
}

bool Ports::set_alias(const std::string &device, const std::string &alias) {
  if (alias.empty() || by_name(alias) != nullptr)
    return false;
  for (PortInfo &p : ports_) {
    if (p.name == device) {
      p.alias = alias;
      return true;
    }
  }
  return false;
}

const PortInfo *Ports::by_dev(std::uint16_t dev) const {
  for (const PortInfo &p : ports_) {
    if (p.dev == dev)
      return &p;
  }
  return nullptr;
}

std::optional<DeviceInfo> Ports::resolve(const std::string &name) const {
  const PortInfo *p = by_name(name);
  if (p == nullptr)
    return std::nullopt;
  return DeviceInfo{p->dev, p->mac};
}

std::vector<RxQueue> Ports::rx_queues_for(std::uint16_t w) const {
  std::vector<RxQueue> rx;
  for (const PortInfo &p : ports_) {
    if (w < p.rx_queues)
      rx.push_back({p.dev, w});
  }
  return rx;
}

std::vector<TxSlot> Ports::tx_slots_for(std::uint16_t w) {
  std::vector<TxSlot> tx(kMaxPorts);
  for (const PortInfo &p : ports_) {
    TxSlot &slot = tx[p.dev];
    slot.queue = static_cast<std::uint16_t>(w % p.tx_queues);
    if (p.tx_queues < workers_)
      slot.lock = &tx_locks_[std::size_t{p.dev} * workers_ + slot.queue];
  }
  return tx;
}

bool Ports::link_up(std::uint16_t dev) const {
  rte_eth_link link{};
  return rte_eth_link_get_nowait(dev, &link) == 0 && link.link_status == RTE_ETH_LINK_UP;
}

rte_mempool *Ports::create_pool(std::uint16_t ports, std::uint16_t workers, const PortConfig &cfg) {
  // Every RX and TX ring full, plus per-worker bursts, TX buffers and caches.
  std::uint32_t per_port = static_cast<std::uint32_t>(workers) * (cfg.rx_desc + cfg.tx_desc);
  std::uint32_t n = std::max<std::uint32_t>(8192, ports * per_port + workers * 2048u);
  rte_mempool *pool = rte_pktmbuf_pool_create("stratus_mbufs", n, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                              rte_socket_id());
  if (pool == nullptr) {
    throw std::runtime_error("cannot create a pool of " + std::to_string(n) +
                             " mbufs: " + rte_strerror(rte_errno));
  }
  return pool;
}

}  // namespace stratus::dpdk

#include "xdp/xdp_driver.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <set>

#include "lb/drop_reason.h"
#include "xdp/bpf/stratus_maps.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "xdp/stratus.skel.h"
#pragma GCC diagnostic pop

namespace stratus::xdp {

static_assert(STRATUS_MAX_PORTS == kMaxPorts);
static_assert(STRATUS_MAX_VRFS == kMaxVrfs);
static_assert(STRATUS_MAX_SERVICES == kMaxServices);
static_assert(STRATUS_MAX_BACKENDS == kMaxBackends);
static_assert(STRATUS_MAX_DROP_REASONS >= STRATUS_DROP__COUNT);

using Entries = XdpDriver::Entries;

// What the driver believes each map holds (raw key -> raw value), so that an
// install writes only what changed. Filled from the live maps when they
// were taken over from pins.
struct XdpDriver::Mirror {
  Entries node_cfg, port_slots, ports, tx_ports, vnis, gateways, routes, services, vips, backends;
  // service id -> slot -> global backend id; nullopt: unknown content (maps
  // taken over from pins), rebuilt on the next install.
  std::map<std::uint32_t, std::optional<std::vector<std::uint32_t>>> maglev;
  std::map<std::string, std::uint32_t> port_index;  // port name -> index
};

namespace {

template <typename T>
T zeroed() {
  T v;
  std::memset(&v, 0, sizeof v);
  return v;
}

template <typename T>
std::string raw(const T &v) {
  return std::string(reinterpret_cast<const char *>(&v), sizeof v);
}

template <typename T>
T cooked(const std::string &s) {
  T v = zeroed<T>();
  std::memcpy(&v, s.data(), std::min(s.size(), sizeof v));
  return v;
}

void copy_addr(__be32 (&dst)[4], const IpAddress &a) {
  std::memcpy(dst, a.bytes.data(), 16);
}

void copy_mac(__u8 (&dst)[6], const MacAddress &m) {
  std::memcpy(dst, m.bytes.data(), 6);
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0)
      ::close(fd_);
  }
  Fd(Fd &&o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd &operator=(Fd &&o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

MacAddress device_mac(const std::string &name) {
  MacAddress mac;
  Fd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (sock.get() < 0)
    return mac;
  ifreq req{};
  std::strncpy(req.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (::ioctl(sock.get(), SIOCGIFHWADDR, &req) == 0) {
    std::memcpy(mac.bytes.data(), req.ifr_hwaddr.sa_data, 6);
  }
  return mac;
}

bool device_up(const std::string &name) {
  Fd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (sock.get() < 0)
    return false;
  ifreq req{};
  std::strncpy(req.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (::ioctl(sock.get(), SIOCGIFFLAGS, &req) != 0)
    return false;
  return (req.ifr_flags & IFF_UP) && (req.ifr_flags & IFF_RUNNING);
}

std::uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

// Every entry of a map, raw; for arrays only the entries that are not all
// zero (an unused slot).
Entries read_map(int fd, std::size_t key_size, std::size_t value_size, bool array) {
  Entries out;
  std::string key(key_size, '\0'), next(key_size, '\0'), value(value_size, '\0');
  const void *prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, next.data()) == 0) {
    if (bpf_map_lookup_elem(fd, next.data(), value.data()) == 0) {
      bool zero = std::all_of(value.begin(), value.end(), [](char c) { return c == 0; });
      if (!(array && zero))
        out.emplace(next, value);
    }
    key = next;
    prev = key.data();
  }
  return out;
}

// Per-CPU values of one key, summed by the caller.
template <typename T>
std::vector<T> read_percpu(int fd, std::uint32_t key, int ncpus) {
  static_assert(sizeof(T) % 8 == 0, "per-CPU values are 8-byte rounded");
  std::vector<T> values(static_cast<std::size_t>(ncpus), zeroed<T>());
  if (bpf_map_lookup_elem(fd, &key, values.data()) != 0)
    values.assign(values.size(), zeroed<T>());
  return values;
}

void set_counter(api::pb::CounterSet *c, std::uint64_t packets, std::uint64_t bytes) {
  c->set_packets(packets);
  c->set_bytes(bytes);
}

std::string addr_bytes(const __u32 (&w)[4]) {
  if (w[1] == 0 && w[2] == 0 && w[3] == 0) {
    return std::string(reinterpret_cast<const char *>(w), 4);
  }
  return std::string(reinterpret_cast<const char *>(w), 16);
}

// The IPv4 connection-table key of a (reduced) flow key; false when the
// flow is not IPv4 (words 1..3 of an address set) or its VRF does not fit.
bool conn_key4(const stratus_flow_key &k, stratus_conn_key4 *out) {
  if ((k.src[1] | k.src[2] | k.src[3] | k.dst[1] | k.dst[2] | k.dst[3]) != 0 ||
      k.vrf >= (1u << 24)) {
    return false;
  }
  out->vrf_proto = k.vrf << 8 | k.proto;
  out->src = k.src[0];
  out->dst = k.dst[0];
  out->sport = k.sport;
  out->dport = k.dport;
  return true;
}

stratus_flow_key flow_key(const stratus_conn_key4 &c) {
  stratus_flow_key k{};
  k.vrf = c.vrf_proto >> 8;
  k.proto = static_cast<std::uint8_t>(c.vrf_proto & 0xff);
  k.src[0] = c.src;
  k.dst[0] = c.dst;
  k.sport = c.sport;
  k.dport = c.dport;
  return k;
}

// One live map write, remembered so that a failed install can be undone.
struct UndoEntry {
  int fd;
  std::string key;
  std::optional<std::string> old;  // nullopt: the key was absent
  bool array;                      // arrays cannot delete: restore zeros
  std::size_t value_size;
};

// Whether a batch operation failed because the map type has none: the
// kernel says ENOTSUPP (524, kernel-internal, no libc name) or EINVAL.
bool unsupported(int err) {
  constexpr int kKernelEnotsupp = 524;
  return err == -kKernelEnotsupp || err == -EOPNOTSUPP || err == -EINVAL;
}

class Transaction {
 public:
  ~Transaction() {
    if (!committed_)
      rollback();
  }

  void put(int fd, const std::string &key, const std::string &value,
           const std::optional<std::string> &old, bool array, const char *map) {
    if (int err = bpf_map_update_elem(fd, key.data(), value.data(), BPF_ANY)) {
      throw_errno(std::string("updating map ") + map, err);
    }
    undo_.push_back({fd, key, old, array, value.size()});
  }

  // One write of many entries (same key and value sizes), as a single
  // BPF_MAP_UPDATE_BATCH where the kernel has it for the map. For a
  // map-in-map this is what matters: the kernel waits for an RCU grace
  // period after every write to such a map (4-16 ms here), and after a
  // batch only once.
  struct Write {
    std::string key;
    std::string value;
    std::optional<std::string> old;
  };
  void put_batch(int fd, const std::vector<Write> &writes, bool array, const char *map) {
    if (writes.empty())
      return;
    std::string keys, values;
    for (const Write &w : writes) {
      keys += w.key;
      values += w.value;
    }
    auto count = static_cast<__u32>(writes.size());
    int err = bpf_map_update_batch(fd, keys.data(), values.data(), &count, nullptr);
    if (unsupported(err)) {
      // No batch operations for this map type: one write at a time.
      for (const Write &w : writes)
        put(fd, w.key, w.value, w.old, array, map);
      return;
    }
    // `count` entries were written, also when the batch failed part way.
    for (std::size_t i = 0; i < count && i < writes.size(); ++i)
      undo_.push_back({fd, writes[i].key, writes[i].old, array, writes[i].value.size()});
    if (err)
      throw_errno(std::string("updating map ") + map, err);
  }

  void erase(int fd, const std::string &key, const std::string &old, bool array, const char *map) {
    int err;
    if (array) {
      std::string zeros(old.size(), '\0');
      err = bpf_map_update_elem(fd, key.data(), zeros.data(), BPF_ANY);
    } else {
      err = bpf_map_delete_elem(fd, key.data());
      if (err == -ENOENT)
        err = 0;
    }
    if (err)
      throw_errno(std::string("deleting from map ") + map, err);
    undo_.push_back({fd, key, old, array, old.size()});
  }

  // Deletes many keys of a hash-like map (same key size) as one
  // BPF_MAP_DELETE_BATCH where the kernel has it; see put_batch().
  struct Removal {
    std::string key;
    std::string old;
  };
  void erase_batch(int fd, const std::vector<Removal> &removals, const char *map) {
    if (removals.empty())
      return;
    std::string keys;
    for (const Removal &r : removals)
      keys += r.key;
    auto count = static_cast<__u32>(removals.size());
    int err = bpf_map_delete_batch(fd, keys.data(), &count, nullptr);
    if (unsupported(err))
      count = 0;  // refused before it began (the kernel leaves `count` as it was)
    if (unsupported(err) || err == -ENOENT) {
      // No batch deletes for this map type (arrays of maps), or a key
      // already gone (the batch stops at it): one at a time for what is
      // left.
      for (std::size_t i = count; i < removals.size(); ++i)
        erase(fd, removals[i].key, removals[i].old, false, map);
      err = 0;
    }
    for (std::size_t i = 0; i < count && i < removals.size(); ++i)
      undo_.push_back({fd, removals[i].key, removals[i].old, false, removals[i].old.size()});
    if (err)
      throw_errno(std::string("deleting from map ") + map, err);
  }

  // Keeps an inner map alive until the transaction ends (undo may need to
  // put it back).
  void hold(Fd fd) { held_.push_back(std::move(fd)); }
  void commit() { committed_ = true; }

 private:
  void rollback() {
    // Newest first. Runs of like entries go back as one batch: for a
    // map-in-map that is one wait for RCU rather than one per entry.
    for (auto it = undo_.rbegin(); it != undo_.rend();) {
      if (restore_batch(it))
        continue;
      int err;
      if (it->old) {
        err = bpf_map_update_elem(it->fd, it->key.data(), it->old->data(), BPF_ANY);
      } else if (it->array) {
        // An unused array slot is all zeros.
        std::string zeros(it->value_size, '\0');
        err = bpf_map_update_elem(it->fd, it->key.data(), zeros.data(), BPF_ANY);
      } else {
        err = bpf_map_delete_elem(it->fd, it->key.data());
      }
      if (err) {
        std::clog << "stratus-xdp: error: rollback of a map write failed: " << std::strerror(-err)
                  << "\n";
      }
      ++it;
    }
  }

  // Undoes the run of entries starting at `it` that are alike (same map and
  // key size, all with an old value of one size, or all absent before from
  // a map that can delete) in one batch, in the same order, and moves `it`
  // past it; false (and `it` unmoved) for a run of one or when the kernel
  // refuses the batch (the caller then goes one by one: writing an entry
  // back twice is harmless).
  bool restore_batch(std::vector<UndoEntry>::reverse_iterator &it) {
    const bool restore = it->old.has_value();
    if (!restore && it->array)
      return false;
    auto alike = [&](const UndoEntry &e) {
      if (e.fd != it->fd || e.key.size() != it->key.size() || e.old.has_value() != restore)
        return false;
      return restore ? e.old->size() == it->old->size() : !e.array;
    };
    auto end = it;
    std::string keys, values;
    for (; end != undo_.rend() && alike(*end); ++end) {
      keys += end->key;
      if (restore)
        values += *end->old;
    }
    auto n = static_cast<__u32>(end - it);
    if (n < 2)
      return false;
    __u32 count = n;
    int err = restore ? bpf_map_update_batch(it->fd, keys.data(), values.data(), &count, nullptr)
                      : bpf_map_delete_batch(it->fd, keys.data(), &count, nullptr);
    if (err != 0 || count != n)
      return false;
    it = end;
    return true;
  }

  std::vector<UndoEntry> undo_;
  std::vector<Fd> held_;
  bool committed_ = false;
};

// A map as the install sees it: its fd, what it should hold, and the mirror
// of what it holds.
struct MapPlan {
  const char *name;
  int fd;
  bool array;
  Entries desired;
  Entries *mirror;
  // A delta install names the keys it removes; a full one removes whatever
  // the mirror has and `desired` does not.
  bool delta = false;
  std::set<std::string> removals;
};

void apply_upserts(Transaction &txn, MapPlan &m) {
  for (const auto &[key, value] : m.desired) {
    auto it = m.mirror->find(key);
    if (it != m.mirror->end() && it->second == value)
      continue;
    std::optional<std::string> old;
    if (it != m.mirror->end())
      old = it->second;
    txn.put(m.fd, key, value, old, m.array, m.name);
  }
}

void apply_deletes(Transaction &txn, MapPlan &m) {
  if (m.delta) {
    for (const std::string &key : m.removals) {
      auto it = m.mirror->find(key);
      if (it != m.mirror->end() && !m.desired.count(key))
        txn.erase(m.fd, key, it->second, m.array, m.name);
    }
    return;
  }
  for (const auto &[key, value] : *m.mirror) {
    if (m.desired.count(key))
      continue;
    txn.erase(m.fd, key, value, m.array, m.name);
  }
}

// After the maps took the plan: the mirror follows.
void settle_mirror(MapPlan &m) {
  if (!m.delta) {
    *m.mirror = std::move(m.desired);
    return;
  }
  for (const std::string &key : m.removals) {
    if (!m.desired.count(key))
      m.mirror->erase(key);
  }
  for (auto &[key, value] : m.desired)
    (*m.mirror)[key] = std::move(value);
}

// What a delta install has to write: the routes and services of `next`
// that are new or differ from `prev`, and the versions in `prev` of those
// removed or changed.
struct Delta {
  std::vector<std::size_t> routes;  // indexes into next.routes
  std::vector<const Route *> old_routes;
  std::vector<std::size_t> services;  // indexes into next.services
  std::vector<const Service *> old_services;
};

// Whether `prev` and `next` agree on what every route and backend value
// depends on (node, next hops, VRFs): the condition of a delta install.
bool same_shared_tables(const Tables &prev, const Tables &next) {
  return prev.node == next.node && prev.nexthops == next.nexthops && prev.vrfs == next.vrfs;
}

// Whether `next` can be installed as a delta over `prev` (the tables live
// now): the same node, next hops and VRFs (which every route and backend
// value depends on), and both canonical, so that one merge walk finds what
// changed. Fills `d`.
bool find_delta(const Tables &prev, const Tables &next, Delta *d) {
  if (!same_shared_tables(prev, next))
    return false;
  auto index = [](const auto &table, const auto &entry) {
    return static_cast<std::size_t>(&entry - table.data());
  };
  return merge_walk(
             prev.routes, next.routes, route_less,
             [&](const Route &a) { d->old_routes.push_back(&a); },
             [&](const Route &b) { d->routes.push_back(index(next.routes, b)); },
             [&](const Route &, const Route &b) { d->routes.push_back(index(next.routes, b)); }) &&
         merge_walk(
             prev.services, next.services, service_less,
             [&](const Service &a) { d->old_services.push_back(&a); },
             [&](const Service &b) { d->services.push_back(index(next.services, b)); },
             [&](const Service &a, const Service &b) {
               d->old_services.push_back(&a);
               d->services.push_back(index(next.services, b));
             });
}

// find_delta() from the keys a transaction touched (the data-plane
// service's word that nothing else changed) rather than a walk of both
// tables: a binary search per key, in tables that are canonical (the
// service canonicalizes what it installs, and live_ is a copy of that).
bool delta_from_keys(const Tables &prev, const Tables &next,
                     const api::DataplaneDriver::TouchedKeys &touched, Delta *d) {
  if (!same_shared_tables(prev, next))
    return false;
  auto sorted_unique = [](auto keys) {
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    return keys;
  };
  for (const auto &k : sorted_unique(touched.routes)) {
    if (const Route *now = find_canonical(next.routes, k, route_key_of))
      d->routes.push_back(static_cast<std::size_t>(now - next.routes.data()));
    else if (const Route *before = find_canonical(prev.routes, k, route_key_of))
      d->old_routes.push_back(before);
  }
  for (std::uint32_t id : sorted_unique(touched.services)) {
    if (const Service *before = find_canonical(prev.services, id, service_key_of))
      d->old_services.push_back(before);
    if (const Service *now = find_canonical(next.services, id, service_key_of))
      d->services.push_back(static_cast<std::size_t>(now - next.services.data()));
  }
  return true;
}

// Brings `live` (the tables `d` was found against) to `next` by copying
// only what changed where the tables kept their shape (same keys in the
// same places), else the one table that did not: copying everything costs
// ~10 ms at 100k routes and 1000 Maglev tables of 10007 slots.
void follow_delta(Tables &live, const Tables &next, const Delta &d) {
  if (d.old_routes.empty() && live.routes.size() == next.routes.size()) {
    for (std::size_t i : d.routes)
      live.routes[i] = next.routes[i];
  } else {
    live.routes = next.routes;
  }
  bool same_ids = live.services.size() == next.services.size();
  for (std::size_t i : d.services) {
    if (!same_ids)
      break;
    same_ids = live.services[i].id == next.services[i].id;
  }
  if (same_ids) {
    for (std::size_t i : d.services)
      live.services[i] = next.services[i];
  } else {
    live.services = next.services;
  }
}

// A new inner Maglev map holding `table`. The map is mmapable (as the
// outer map's inner template says, xdp/bpf/maps.h): the slots are written
// through a mapping rather than with a write per slot, which at M = 10007
// took ~1 ms per service, ~1 s of a 1000-service full sync. An array map
// keeps each value in an 8-byte-aligned element.
Fd build_maglev_map(const std::vector<std::uint32_t> &table, std::uint32_t service) {
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_INNER_MAP | BPF_F_MMAPABLE);
  Fd map(bpf_map_create(BPF_MAP_TYPE_ARRAY, "stratus_maglev", sizeof(__u32), sizeof(__u32),
                        static_cast<__u32>(table.size()), &opts));
  if (map.get() < 0)
    throw_errno("creating the Maglev map of service " + std::to_string(service), map.get());
  constexpr std::size_t kStride = 8;
  const std::size_t bytes = table.size() * kStride;
  void *mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, map.get(), 0);
  if (mem == MAP_FAILED)
    throw_errno("mapping the Maglev map of service " + std::to_string(service), -errno);
  auto *slots = static_cast<std::uint8_t *>(mem);
  for (std::size_t i = 0; i < table.size(); ++i)
    std::memcpy(slots + i * kStride, &table[i], sizeof(__u32));
  munmap(mem, bytes);
  return map;
}

}  // namespace

XdpDriver::XdpDriver(XdpOptions options) : options_(std::move(options)) {
  // Interfaces first: a typo must not leave fresh pins behind.
  std::vector<int> ifindexes;
  for (const auto &name : options_.interfaces) {
    int ifindex = static_cast<int>(if_nametoindex(name.c_str()));
    if (ifindex == 0)
      throw XdpError("interface \"" + name + "\" not found");
    ifindexes.push_back(ifindex);
  }
  LoaderOptions lo;
  if (!options_.bpffs_root.empty())
    lo.pin_dir = options_.bpffs_root + "/" + options_.instance;
  loader_ = std::make_unique<XdpLoader>(lo);
  mirror_ = std::make_unique<Mirror>();
  if (loader_->reused()) {
    std::clog << "stratus-xdp: reusing pinned maps in " << lo.pin_dir
              << " (tables and connections survive)\n";
    read_live_state();
  } else if (!lo.pin_dir.empty()) {
    std::clog << "stratus-xdp: created maps pinned in " << lo.pin_dir << "\n";
  }
  for (std::size_t i = 0; i < ifindexes.size(); ++i) {
    AttachMode mode = loader_->attach(ifindexes[i], options_.force_generic);
    std::clog << "stratus-xdp: attached to " << options_.interfaces[i] << " (" << to_string(mode)
              << ")\n";
    attached_.push_back({options_.interfaces[i], ifindexes[i], mode});
  }
}

XdpDriver::~XdpDriver() {
  if (!options_.detach_on_exit)
    return;
  for (const auto &a : attached_) {
    try {
      XdpLoader::detach(a.ifindex);
      std::clog << "stratus-xdp: detached from " << a.name << "\n";
    } catch (const std::exception &e) {
      std::clog << "stratus-xdp: warning: " << e.what() << "\n";
    }
  }
  loader_->unpin();
}

void XdpDriver::read_live_state() {
  auto &m = loader_->skel()->maps;
  Mirror &mi = *mirror_;
  mi.node_cfg = read_map(XdpLoader::fd(m.node_cfg), 4, sizeof(stratus_node_cfg), true);
  mi.port_slots = read_map(XdpLoader::fd(m.port_slots), 4, sizeof(stratus_port), true);
  mi.ports = read_map(XdpLoader::fd(m.ports), 4, sizeof(stratus_port), false);
  mi.tx_ports = read_map(XdpLoader::fd(m.tx_ports), 4, 4, false);
  mi.vnis = read_map(XdpLoader::fd(m.vnis), 4, 4, false);
  mi.gateways = read_map(XdpLoader::fd(m.gateways), sizeof(stratus_gw_key), 4, false);
  mi.routes =
      read_map(XdpLoader::fd(m.routes), sizeof(stratus_route_key), sizeof(stratus_route), false);
  mi.services = read_map(XdpLoader::fd(m.services), sizeof(stratus_service_key),
                         sizeof(stratus_service), false);
  mi.vips = read_map(XdpLoader::fd(m.vips), sizeof(stratus_vip_key), sizeof(stratus_vip), false);
  mi.backends = read_map(XdpLoader::fd(m.backends), 4, sizeof(stratus_backend), true);
  Entries maglev = read_map(XdpLoader::fd(m.maglev), 4, 4, false);
  for (const auto &[key, value] : maglev)
    mi.maglev[cooked<__u32>(key)] = std::nullopt;
  // Port names of the live port indexes, so that counters stay per port.
  Entries all_ports = mi.ports;
  all_ports.insert(mi.port_slots.begin(), mi.port_slots.end());
  for (const auto &[key, value] : all_ports) {
    char name[IF_NAMESIZE] = {};
    if (if_indextoname(cooked<__u32>(key), name)) {
      mi.port_index[name] = cooked<stratus_port>(value).index;
    }
  }
}

void XdpDriver::install(const Tables & /*prev: live_ is what this driver installed*/,
                        const Tables &next) {
  install_tables(next, nullptr);
}

void XdpDriver::install_delta(const Tables & /*prev: live_*/, const Tables &next,
                              const TouchedKeys &touched) {
  install_tables(next, &touched);
}

void XdpDriver::install_tables(const Tables &next, const TouchedKeys *touched) {
  std::lock_guard lock(mu_);
  auto &maps = loader_->skel()->maps;
  Mirror &mi = *mirror_;

  // ---- 1. Validate and encode everything; nothing live is touched.
  struct PortInfo {
    std::uint32_t index;
    int ifindex;
    MacAddress mac;
  };
  std::map<std::string, PortInfo> ports;
  std::set<std::uint32_t> used;
  for (const Port &p : next.node.ports) {
    auto it = mi.port_index.find(p.name);
    if (it != mi.port_index.end())
      used.insert(it->second);
  }
  for (const Port &p : next.node.ports) {
    int ifindex = static_cast<int>(if_nametoindex(p.name.c_str()));
    if (ifindex == 0)
      throw XdpError("node.ports: interface \"" + p.name + "\" not found");
    std::uint32_t index;
    auto it = mi.port_index.find(p.name);
    if (it != mi.port_index.end()) {
      index = it->second;
    } else {
      index = 0;
      while (used.count(index))
        ++index;
      used.insert(index);
    }
    if (index >= STRATUS_MAX_PORTS)
      throw XdpError("node.ports: too many ports");
    MacAddress mac = p.mac.is_zero() ? device_mac(p.name) : p.mac;
    ports[p.name] = {index, ifindex, mac};
  }
  auto port_of = [&](const std::string &name, const std::string &where) -> const PortInfo & {
    auto it = ports.find(name);
    if (it == ports.end())
      throw XdpError(where + ": unknown port \"" + name + "\"");
    return it->second;
  };
  // The ports as resolved now (interface index and MAC, which route and
  // backend values carry): a delta install relies on them being as before.
  std::string port_state;
  for (const auto &[name, info] : ports) {
    port_state += name + '\0' + std::to_string(info.index) + '\0' + std::to_string(info.ifindex) +
                  '\0' + info.mac.str() + '\0';
  }

  // Over tables this driver installed, a change that leaves the node, next
  // hops, VRFs and the ports' interfaces alone is encoded and written as a
  // delta: only the routes and services that differ (a full encode of 100k
  // routes and 100k backends costs ~150 ms). Anything else, and the first
  // install after a start (the mirror then comes from pinned maps), is
  // encoded whole. The keys a transaction touched spare the walk that
  // finds them.
  Delta delta;
  const bool partial =
      live_valid_ && port_state == live_ports_ &&
      (touched ? delta_from_keys(live_, next, *touched, &delta) : find_delta(live_, next, &delta));

  MapPlan node_cfg{"node_cfg", XdpLoader::fd(maps.node_cfg), true, {}, &mi.node_cfg};
  {
    auto cfg = zeroed<stratus_node_cfg>();
    std::vector<IpAddress> vteps = next.node.vteps;
    std::stable_partition(vteps.begin(), vteps.end(), [](const IpAddress &a) { return a.is_v4(); });
    if (vteps.size() > STRATUS_MAX_VTEPS) {
      throw XdpError("node.vteps: more than " + std::to_string(STRATUS_MAX_VTEPS) + " VTEPs");
    }
    if (vteps.empty() || !vteps[0].is_v4())
      throw XdpError("node.vteps: no IPv4 VTEP");
    for (std::size_t i = 0; i < vteps.size(); ++i)
      copy_addr(cfg.vteps[i], vteps[i]);
    cfg.n_vteps = static_cast<__u32>(vteps.size());
    cfg.mtu = next.node.underlay_mtu;
    cfg.hash_seed = next.node.hash_seed;
    cfg.vxlan_port = htons(next.node.vxlan_port);
    copy_mac(cfg.gateway_mac, next.node.gateway_mac);
    cfg.configured = 1;
    cfg.tcp_timeout_ns = next.node.flows.tcp_timeout_s * 1000000000ull;
    cfg.udp_timeout_ns = next.node.flows.udp_timeout_s * 1000000000ull;
    node_cfg.desired.emplace(raw(__u32{0}), raw(cfg));
  }

  MapPlan port_slots{"port_slots", XdpLoader::fd(maps.port_slots), true, {}, &mi.port_slots};
  MapPlan port_map{"ports", XdpLoader::fd(maps.ports), false, {}, &mi.ports};
  MapPlan tx_ports{"tx_ports", XdpLoader::fd(maps.tx_ports), false, {}, &mi.tx_ports};
  for (const Port &p : next.node.ports) {
    const PortInfo &info = ports.at(p.name);
    auto v = zeroed<stratus_port>();
    v.index = info.index;
    v.vrf = p.role == PortRole::kTenant ? p.vrf : 0;
    v.role = p.role == PortRole::kTenant ? STRATUS_PORT_TENANT : STRATUS_PORT_UNDERLAY;
    copy_mac(v.mac, info.mac);
    v.in_use = 1;
    auto ifindex = static_cast<__u32>(info.ifindex);
    (ifindex < STRATUS_PORT_SLOTS ? port_slots : port_map).desired.emplace(raw(ifindex), raw(v));
    tx_ports.desired.emplace(raw(info.index), raw(static_cast<__u32>(info.ifindex)));
  }

  MapPlan vnis{"vnis", XdpLoader::fd(maps.vnis), false, {}, &mi.vnis};
  MapPlan gateways{"gateways", XdpLoader::fd(maps.gateways), false, {}, &mi.gateways};
  for (const Vrf &v : next.vrfs) {
    vnis.desired.emplace(raw(v.vni), raw(v.id));
    for (const IpAddress &gw : v.gateways) {
      if (!gw.is_v4())
        continue;  // ARP is IPv4; the program forwards IPv4 only
      auto key = zeroed<stratus_gw_key>();
      key.vrf = v.id;
      copy_addr(key.addr, gw);
      gateways.desired.emplace(raw(key), raw(__u32{1}));
    }
  }

  // Underlay next hops by remote address (16 bytes; all zero: the
  // default), resolved here into the remote routes and the backends that
  // use them (stratus_maps.h), so that the program looks none up.
  std::map<std::array<std::uint8_t, 16>, stratus_nexthop> next_hops;
  for (std::size_t i = 0; i < next.nexthops.size(); ++i) {
    const NextHop &h = next.nexthops[i];
    const PortInfo &info = port_of(h.port, "nexthops[" + std::to_string(i) + "]");
    auto v = zeroed<stratus_nexthop>();
    v.port = info.index;
    copy_mac(v.dst_mac, h.dst_mac);
    copy_mac(v.src_mac, h.src_mac.is_zero() ? info.mac : h.src_mac);
    next_hops[h.remote.bytes] = v;
  }
  // The next hop toward `remote`: its own, else the default; false: none.
  auto resolve = [&](const IpAddress &remote, stratus_nexthop *out) {
    auto it = next_hops.find(remote.bytes);
    if (it == next_hops.end())
      it = next_hops.find(std::array<std::uint8_t, 16>{});
    if (it == next_hops.end())
      return false;
    *out = it->second;
    return true;
  };

  MapPlan routes{"routes", XdpLoader::fd(maps.routes), false, {}, &mi.routes};
  routes.delta = partial;
  auto route_key = [](const Route &r) {
    auto key = zeroed<stratus_route_key>();
    key.prefixlen = 32u + r.prefix.len;
    key.vrf = htonl(r.vrf);
    copy_addr(key.addr, r.prefix.addr);
    return key;
  };
  auto encode_route = [&](std::size_t i) {
    const Route &r = next.routes[i];
    if (!r.prefix.addr.is_v4())
      return;  // IPv4 only in this data plane
    auto key = route_key(r);
    auto v = zeroed<stratus_route>();
    switch (r.kind) {
      case RouteKind::kRemote:
        if (!r.vtep.is_v4()) {
          throw XdpError("routes[" + std::to_string(i) + "]: VTEP " + r.vtep.str() +
                         " is not IPv4");
        }
        v.kind = STRATUS_ROUTE_REMOTE;
        v.vni = r.vni_out;
        copy_addr(v.vtep, r.vtep);
        v.has_nexthop = resolve(r.vtep, &v.nexthop) ? 1 : 0;
        break;
      case RouteKind::kLocal:
        v.kind = STRATUS_ROUTE_LOCAL;
        v.port = port_of(r.port, "routes[" + std::to_string(i) + "]").index;
        break;
      case RouteKind::kBlackhole:
        v.kind = STRATUS_ROUTE_BLACKHOLE;
        break;
    }
    copy_mac(v.dst_mac, r.dst_mac);
    routes.desired.emplace(raw(key), raw(v));
  };
  if (partial) {
    for (std::size_t i : delta.routes)
      encode_route(i);
    for (const Route *r : delta.old_routes) {
      if (r->prefix.addr.is_v4())
        routes.removals.insert(raw(route_key(*r)));
    }
  } else {
    for (std::size_t i = 0; i < next.routes.size(); ++i)
      encode_route(i);
  }

  MapPlan services{"services", XdpLoader::fd(maps.services), false, {}, &mi.services};
  MapPlan vips{"vips", XdpLoader::fd(maps.vips), false, {}, &mi.vips};
  MapPlan backends{"backends", XdpLoader::fd(maps.backends), true, {}, &mi.backends};
  services.delta = vips.delta = backends.delta = partial;
  auto service_key = [](const Service &s) {
    auto key = zeroed<stratus_service_key>();
    key.vrf = s.vrf;
    copy_addr(key.vip, s.vip);
    key.port = htons(s.port);
    key.proto = s.proto;
    return key;
  };
  auto service_value = [](const Service &s) {
    auto v = zeroed<stratus_service>();
    v.id = s.id;
    v.maglev_size = s.maglev.empty() ? 0 : s.maglev_size;
    v.hash_flags = s.hash_flags;
    return v;
  };
  auto vip_key = [](const Service &s) {
    auto vkey = zeroed<stratus_vip_key>();
    vkey.vrf = s.vrf;
    copy_addr(vkey.vip, s.vip);
    vkey.proto = s.proto;
    return raw(vkey);
  };
  std::map<std::uint32_t, std::vector<std::uint32_t>> maglev;  // service id -> global ids
  auto encode_service = [&](const Service &s) {
    if (!s.vip.is_v4())
      return;  // IPv4 only in this data plane
    services.desired.emplace(raw(service_key(s)), raw(service_value(s)));
    for (const Backend &b : s.backends) {
      auto bv = zeroed<stratus_backend>();
      switch (b.state) {
        case BackendState::kActive:
          bv.state = STRATUS_BACKEND_ACTIVE;
          break;
        case BackendState::kDraining:
          bv.state = STRATUS_BACKEND_DRAINING;
          break;
        case BackendState::kDown:
          bv.state = STRATUS_BACKEND_DOWN;
          break;
      }
      bv.encap = b.encap == Encap::kIpip ? STRATUS_ENCAP_IPIP : STRATUS_ENCAP_VXLAN;
      bv.vni = b.vni;
      if (!b.tunnel_dst.is_v4()) {
        throw XdpError("services (" + s.name + ") backend " + b.name +
                       ": tunnel destination is not IPv4");
      }
      copy_addr(bv.tunnel_dst, b.tunnel_dst);
      copy_mac(bv.mac, b.inner_dst_mac);
      bv.has_nexthop = resolve(b.tunnel_dst, &bv.nexthop) ? 1 : 0;
      backends.desired.emplace(raw(b.id), raw(bv));
    }
    if (!s.maglev.empty()) {
      std::vector<std::uint32_t> table(s.maglev.size());
      for (std::size_t slot = 0; slot < table.size(); ++slot) {
        table[slot] = s.backends.at(s.maglev[slot]).id;
      }
      maglev.emplace(s.id, std::move(table));
    }
  };
  // Service ids whose Maglev table may have to go (see step 3).
  std::set<std::uint32_t> maglev_gone;
  if (partial) {
    for (std::size_t i : delta.services) {
      encode_service(next.services[i]);
      maglev_gone.insert(next.services[i].id);
      if (next.services[i].vip.is_v4())
        vips.removals.insert(vip_key(next.services[i]));
    }
    for (const Service *s : delta.old_services) {
      maglev_gone.insert(s->id);
      if (!s->vip.is_v4())
        continue;
      services.removals.insert(raw(service_key(*s)));
      vips.removals.insert(vip_key(*s));
      for (const Backend &b : s->backends)
        backends.removals.insert(raw(b.id));
    }
  } else {
    for (const Service &s : next.services)
      encode_service(s);
    for (const auto &[id, table] : mi.maglev)
      maglev_gone.insert(id);
  }

  // A VIP's entry sums up all its services; a delta recomputes the VIPs it
  // touched (their keys are in vips.removals, which then keeps only the
  // VIPs left without a service).
  std::map<std::string, stratus_vip> vip_entries;  // raw stratus_vip_key -> value
  for (const Service &s : next.services) {
    if (!s.vip.is_v4())
      continue;
    std::string vkey = vip_key(s);
    if (partial && !vips.removals.count(vkey))
      continue;
    auto v = service_value(s);
    stratus_vip &vip = vip_entries.try_emplace(vkey, zeroed<stratus_vip>()).first->second;
    vip.services += 1;
    if (s.port == 0) {
      vip.has_any_port = 1;
      vip.any_port = v;
    } else if (++vip.port_services == 1) {
      vip.port = htons(s.port);
      vip.port_service = v;
    } else {
      // Several port services: the program looks them up in `services`.
      vip.port = 0;
      vip.port_service = zeroed<stratus_service>();
    }
  }
  for (const auto &[key, value] : vip_entries)
    vips.desired.emplace(key, raw(value));

  // ---- 2. Prepare aside: new Maglev tables for the services that changed.
  Transaction txn;
  std::map<std::uint32_t, Fd> new_maglev;
  for (const auto &[id, table] : maglev) {
    auto it = mi.maglev.find(id);
    if (it != mi.maglev.end() && it->second && *it->second == table)
      continue;
    new_maglev.emplace(id, build_maglev_map(table, id));
  }
  loader_->resize_conn_tables(next.node.flows.max_entries);

  // ---- 3. Make it live, recording how to undo each write; referenced
  // entries (backends, Maglev tables, ports) before what refers to them.
  int outer = XdpLoader::fd(maps.maglev);
  auto current_inner = [&](std::uint32_t id) -> std::optional<std::string> {
    __u32 inner_id = 0;
    if (bpf_map_lookup_elem(outer, &id, &inner_id) != 0)
      return std::nullopt;
    Fd old(bpf_map_get_fd_by_id(inner_id));
    if (old.get() < 0)
      return std::nullopt;
    std::string fd = raw(static_cast<__u32>(old.get()));
    txn.hold(std::move(old));
    return fd;
  };

  apply_upserts(txn, backends);
  {
    std::vector<Transaction::Write> writes;
    writes.reserve(new_maglev.size());
    for (auto &[id, fd] : new_maglev)
      writes.push_back({raw(id), raw(static_cast<__u32>(fd.get())), current_inner(id)});
    txn.put_batch(outer, writes, false, "maglev");
  }
  for (MapPlan *m : {&tx_ports, &port_slots, &port_map, &vnis, &gateways, &routes, &services, &vips,
                     &node_cfg}) {
    apply_upserts(txn, *m);
  }
  for (MapPlan *m :
       {&vips, &services, &routes, &gateways, &vnis, &port_map, &port_slots, &tx_ports}) {
    apply_deletes(txn, *m);
  }
  {
    std::vector<Transaction::Removal> removals;
    for (std::uint32_t id : maglev_gone) {
      if (maglev.count(id) || !mi.maglev.count(id))
        continue;
      // The old inner map stays open (held) so that undo can put it back.
      if (auto old = current_inner(id))
        removals.push_back({raw(id), *old});
    }
    txn.erase_batch(outer, removals, "maglev");
  }
  apply_deletes(txn, backends);
  txn.commit();

  // ---- 4. The mirror now matches the maps.
  for (MapPlan *m : {&node_cfg, &port_slots, &port_map, &tx_ports, &vnis, &gateways, &routes,
                     &services, &vips, &backends}) {
    settle_mirror(*m);
  }
  for (std::uint32_t id : maglev_gone) {
    if (!maglev.count(id))
      mi.maglev.erase(id);
  }
  for (auto &[id, table] : maglev)
    mi.maglev[id] = std::move(table);
  mi.port_index.clear();
  for (const auto &[name, info] : ports)
    mi.port_index[name] = info.index;
  if (partial)
    follow_delta(live_, next, delta);
  else
    live_ = next;
  live_valid_ = true;
  last_delta_ = partial;
  live_ports_ = std::move(port_state);
}

std::vector<api::pb::PortState> XdpDriver::ports() {
  std::lock_guard lock(mu_);
  std::vector<api::pb::PortState> out;
  std::set<std::string> seen;
  auto add = [&](const std::string &name) {
    if (!seen.insert(name).second)
      return;
    api::pb::PortState s;
    s.set_name(name);
    MacAddress mac = device_mac(name);
    s.set_mac(std::string(reinterpret_cast<const char *>(mac.bytes.data()), 6));
    s.set_up(device_up(name));
    int ifindex = static_cast<int>(if_nametoindex(name.c_str()));
    s.set_mode(
        std::string(to_string(ifindex ? XdpLoader::attached_mode(ifindex) : AttachMode::kNone)));
    out.push_back(std::move(s));
  };
  for (const auto &a : attached_)
    add(a.name);
  for (const Port &p : live_.node.ports)
    add(p.name);
  return out;
}

void XdpDriver::counters(api::pb::CountersReply *out) {
  std::lock_guard lock(mu_);
  auto &maps = loader_->skel()->maps;
  int ncpus = loader_->possible_cpus();

  for (const Port &p : live_.node.ports) {
    auto it = mirror_->port_index.find(p.name);
    if (it == mirror_->port_index.end())
      continue;
    std::uint64_t rp = 0, rb = 0, tp = 0, tb = 0;
    for (const auto &s :
         read_percpu<stratus_port_stats>(XdpLoader::fd(maps.port_stats), it->second, ncpus)) {
      rp += s.rx_packets;
      rb += s.rx_bytes;
      tp += s.tx_packets;
      tb += s.tx_bytes;
    }
    auto *pc = out->add_ports();
    pc->set_port(p.name);
    set_counter(pc->mutable_rx(), rp, rb);
    set_counter(pc->mutable_tx(), tp, tb);
  }

  for (const Vrf &v : live_.vrfs) {
    std::uint64_t rp = 0, rb = 0, tp = 0, tb = 0;
    for (const auto &s :
         read_percpu<stratus_vrf_stats>(XdpLoader::fd(maps.vrf_stats), v.id, ncpus)) {
      rp += s.rx_packets;
      rb += s.rx_bytes;
      tp += s.tx_packets;
      tb += s.tx_bytes;
    }
    auto *vc = out->add_vrfs();
    vc->set_vrf(v.id);
    vc->set_vni(v.vni);
    vc->set_tenant(v.tenant);
    set_counter(vc->mutable_rx(), rp, rb);
    set_counter(vc->mutable_tx(), tp, tb);
  }

  auto lb_sum = [&](int fd, std::uint32_t id) {
    stratus_lb_stats sum = zeroed<stratus_lb_stats>();
    for (const auto &s : read_percpu<stratus_lb_stats>(fd, id, ncpus)) {
      sum.packets += s.packets;
      sum.bytes += s.bytes;
      sum.new_flows += s.new_flows;
    }
    return sum;
  };
  for (const Service &s : live_.services) {
    auto sum = lb_sum(XdpLoader::fd(maps.service_stats), s.id);
    auto *sc = out->add_services();
    sc->set_id(s.id);
    sc->set_name(s.name);
    set_counter(sc->mutable_fwd(), sum.packets, sum.bytes);
    sc->set_new_flows(sum.new_flows);
    for (const Backend &b : s.backends) {
      auto bsum = lb_sum(XdpLoader::fd(maps.backend_stats), b.id);
      auto *bc = sc->add_backends();
      bc->set_id(b.id);
      bc->set_name(b.name);
      set_counter(bc->mutable_fwd(), bsum.packets, bsum.bytes);
      bc->set_new_flows(bsum.new_flows);
      bc->set_state(static_cast<api::pb::BackendState>(static_cast<int>(b.state)));
    }
  }

  auto misc = [&](std::uint32_t which) {
    std::uint64_t sum = 0;
    for (__u64 v : read_percpu<__u64>(XdpLoader::fd(maps.misc_stats), which, ncpus))
      sum += v;
    return sum;
  };
  for (std::size_t r = 0; r < kDropReasonCount; ++r) {
    std::uint64_t sum = 0;
    for (__u64 v :
         read_percpu<__u64>(XdpLoader::fd(maps.drop_stats), static_cast<std::uint32_t>(r), ncpus)) {
      sum += v;
    }
    auto *d = out->add_drops();
    d->set_reason(std::string(kDropReasonLabels[r]));
    d->set_packets(sum);
  }
  out->set_flow_hits(misc(STRATUS_MISC_CONN_HIT));
  out->set_flow_misses(misc(STRATUS_MISC_CONN_MISS));
  out->set_passed_to_host(misc(STRATUS_MISC_PASS));
  out->set_arp_replies(misc(STRATUS_MISC_ARP_REPLY));
  out->set_flow_entries(flow_count());
}

std::optional<api::FlowEntry> XdpDriver::lookup_flow(const stratus_flow_key &key) {
  std::optional<api::FlowEntry> best;
  stratus_conn_key4 ck{};
  if (!conn_key4(key, &ck))
    return best;  // not an IPv4 flow: no table holds it
  std::uint64_t now = monotonic_ns();
  for (int cpu = 0; cpu < loader_->possible_cpus(); ++cpu) {
    Fd table(loader_->conn_table_fd(static_cast<std::uint32_t>(cpu)));
    if (table.get() < 0)
      continue;
    std::uint32_t sets = XdpLoader::conn_table_sets(table.get());
    if (sets == 0)
      continue;
    __u32 index = stratus_conn_set_index(&ck, sets - 1);
    stratus_conn_set set{};
    if (bpf_map_lookup_elem(table.get(), &index, &set) != 0)
      continue;
    for (const stratus_conn_way &w : set.ways) {
      if (std::memcmp(&w.key, &ck, sizeof ck) != 0)
        continue;
      api::FlowEntry e;
      e.service_id = w.conn.service;
      e.backend_id = w.conn.backend;
      e.cpu = static_cast<std::uint32_t>(cpu);
      e.age_ms = now > w.conn.last_seen_ns ? (now - w.conn.last_seen_ns) / 1000000 : 0;
      if (!best || e.age_ms < best->age_ms)
        best = e;
    }
  }
  return best;
}

// Calls fn(cpu, entry, flow key) for every used way of every CPU's
// connection table until fn returns false. (Expired entries too, as long
// as no new flow took their way, like an LRU table's.)
template <typename Fn>
void XdpDriver::walk_flows(Fn &&fn) {
  for (int cpu = 0; cpu < loader_->possible_cpus(); ++cpu) {
    Fd table(loader_->conn_table_fd(static_cast<std::uint32_t>(cpu)));
    if (table.get() < 0)
      continue;
    // Sets in batches (one system call per 256 sets, not per set).
    constexpr __u32 kBatch = 256;
    std::vector<__u32> keys(kBatch);
    std::vector<stratus_conn_set> sets(kBatch);
    __u32 in = 0, out = 0;
    bool first = true, done = false;
    while (!done) {
      __u32 count = kBatch;
      int err = bpf_map_lookup_batch(table.get(), first ? nullptr : &in, &out, keys.data(),
                                     sets.data(), &count, nullptr);
      if (err != 0 && errno != ENOENT)
        break;  // the table went away (swapped): its flows are gone
      done = err != 0;
      first = false;
      in = out;
      for (__u32 i = 0; i < count; ++i) {
        for (const stratus_conn_way &w : sets[i].ways) {
          if (w.key.vrf_proto == 0)
            continue;  // empty
          if (!fn(static_cast<std::uint32_t>(cpu), w.conn, flow_key(w.key)))
            return;
        }
      }
    }
  }
}

void XdpDriver::dump_flows(const api::pb::FlowsRequest &req,
                           const std::function<bool(const api::pb::Flow &)> &sink) {
  std::uint64_t now = monotonic_ns();
  std::uint32_t sent = 0;
  walk_flows([&](std::uint32_t cpu, const stratus_conn &conn, const stratus_flow_key &key) {
    if (req.filter_service() && conn.service != req.service_id())
      return true;
    api::pb::Flow f;
    f.set_vrf(key.vrf);
    f.mutable_src()->set_addr(addr_bytes(key.src));
    f.mutable_dst()->set_addr(addr_bytes(key.dst));
    f.set_proto(key.proto);
    f.set_sport(ntohs(key.sport));
    f.set_dport(ntohs(key.dport));
    f.set_service_id(conn.service);
    f.set_backend_id(conn.backend);
    f.set_cpu(cpu);
    f.set_age_ms(now > conn.last_seen_ns ? (now - conn.last_seen_ns) / 1000000 : 0);
    if (!sink(f))
      return false;
    return !(req.limit() && ++sent >= req.limit());
  });
}

std::uint64_t XdpDriver::flow_count() {
  std::uint64_t n = 0;
  walk_flows([&n](std::uint32_t, const stratus_conn &, const stratus_flow_key &) {
    ++n;
    return true;
  });
  return n;
}

}  // namespace stratus::xdp

#include "dataplane/driver.h"

#include <algorithm>

#include "dataplane/dpdk.h"

namespace stratus::dpdk {

namespace {

// A flow entry copied out on a worker, so that nothing else reads its table.
struct FlowRecord {
  stratus_flow_key key;
  std::uint32_t service_id;
  std::uint32_t backend_id;
  std::uint64_t idle_ticks;
};

void set_ip(const std::uint32_t words[4], api::pb::IpAddress *out) {
  bool v6 = words[1] != 0 || words[2] != 0 || words[3] != 0;
  out->set_addr(reinterpret_cast<const char *>(words), v6 ? 16 : 4);
}

void set_counter(const PacketsBytes &c, api::pb::CounterSet *out) {
  out->set_packets(out->packets() + c.packets.get());
  out->set_bytes(out->bytes() + c.bytes.get());
}

}  // namespace

DpdkDriver::DpdkDriver(const Ports *ports, SnapshotPublisher &publisher,
                       std::vector<Worker *> workers, std::uint64_t ticks_per_s)
    : ports_(ports),
      publisher_(publisher),
      workers_(std::move(workers)),
      ticks_per_s_(ticks_per_s) {}

void DpdkDriver::install(const Tables &, const Tables &next) {
  PortResolver resolve = [this](const std::string &name) -> std::optional<DeviceInfo> {
    return ports_ != nullptr ? ports_->resolve(name) : std::nullopt;
  };
  // Built aside: a throw here leaves the live snapshot untouched. The live
  // snapshot lends its unchanged LPMs and Maglev tables; only this thread
  // publishes, so it stays alive while we read it.
  auto snap = build_snapshot(next, resolve, publisher_.current(), ticks_per_s_);
  std::lock_guard<std::mutex> lock(snapshot_mu_);
  publisher_.publish(std::move(snap));
}

std::vector<api::pb::PortState> DpdkDriver::ports() {
  std::vector<api::pb::PortState> out;
  if (ports_ == nullptr)
    return out;
  for (const PortInfo &p : ports_->all()) {
    api::pb::PortState s;
    s.set_name(p.alias.empty() ? p.name : p.alias);
    s.set_mac(std::string(p.mac.bytes.begin(), p.mac.bytes.end()));
    s.set_up(ports_->link_up(p.dev));
    s.set_mode("dpdk:" + p.driver + (p.alias.empty() ? "" : " device=" + p.name) +
               " rxq=" + std::to_string(p.rx_queues) + " txq=" + std::to_string(p.tx_queues) +
               (p.rss ? " rss" : ""));
    out.push_back(std::move(s));
  }
  return out;
}

void DpdkDriver::counters(api::pb::CountersReply *out) {
  std::lock_guard<std::mutex> lock(snapshot_mu_);
  const FibSnapshot *snap = publisher_.current();
  if (ports_ != nullptr) {
    for (const PortInfo &p : ports_->all()) {
      auto *pc = out->add_ports();
      pc->set_port(p.alias.empty() ? p.name : p.alias);
      for (const Worker *w : workers_) {
        set_counter(w->counters().port_rx[p.dev], pc->mutable_rx());
        set_counter(w->counters().port_tx[p.dev], pc->mutable_tx());
      }
    }
  }
  if (snap != nullptr) {
    for (std::uint32_t id = 0; id < snap->vrfs.size(); ++id) {
      if (!snap->vrfs[id].present)
        continue;
      auto *vc = out->add_vrfs();
      vc->set_vrf(id);
      vc->set_vni(snap->vrfs[id].vni);
      for (const Worker *w : workers_) {
        set_counter(w->counters().vrf_rx[id], vc->mutable_rx());
        set_counter(w->counters().vrf_tx[id], vc->mutable_tx());
      }
    }
    for (const ServiceEntry &svc : snap->service_list) {
      auto *sc = out->add_services();
      sc->set_id(svc.id);
      for (const Worker *w : workers_) {
        set_counter(w->counters().services[svc.id].fwd, sc->mutable_fwd());
        sc->set_new_flows(sc->new_flows() + w->counters().services[svc.id].new_flows.get());
      }
      for (std::uint32_t b = 0; b < snap->backends.size(); ++b) {
        const BackendEntry &be = snap->backends[b];
        if (!be.present || be.service_id != svc.id)
          continue;
        auto *bc = sc->add_backends();
        bc->set_id(b);
        for (const Worker *w : workers_) {
          set_counter(w->counters().backends[b].fwd, bc->mutable_fwd());
          bc->set_new_flows(bc->new_flows() + w->counters().backends[b].new_flows.get());
        }
      }
    }
  }
  for (std::size_t r = 0; r < kDropReasonCount; ++r) {
    std::uint64_t n = 0;
    for (const Worker *w : workers_)
      n += w->counters().drops[r].get();
    auto *d = out->add_drops();
    d->set_reason(std::string(kDropReasonLabels[r]));
    d->set_packets(n);
  }
  std::uint64_t entries = 0, hits = 0, misses = 0, passed = 0, arp = 0;
  for (const Worker *w : workers_) {
    const WorkerCounters &c = w->counters();
    entries += c.flow_entries.get();
    hits += c.flow_hits.get();
    misses += c.flow_misses.get();
    passed += c.passed_to_host.get();
    arp += c.arp_replies.get();
  }
  out->set_flow_entries(entries);
  out->set_flow_hits(hits);
  out->set_flow_misses(misses);
  out->set_passed_to_host(passed);
  out->set_arp_replies(arp);
}

std::optional<api::FlowEntry> DpdkDriver::lookup_flow(const stratus_flow_key &key) {
  std::uint32_t hash;
  {
    std::lock_guard<std::mutex> lock(snapshot_mu_);
    const FibSnapshot *snap = publisher_.current();
    if (snap == nullptr)
      return std::nullopt;
    hash = stratus_flow_hash(&key, snap->hash_seed);
  }
  for (Worker *w : workers_) {
    std::optional<api::FlowEntry> found;
    w->call([&](const FlowTable &t) {
      if (const FlowEntry *e = t.find(key, hash)) {
        std::uint64_t now = rte_rdtsc();
        found = api::FlowEntry{e->service_id, e->backend_id, w->id(),
                               now > e->last_seen ? (now - e->last_seen) * 1000 / ticks_per_s_ : 0};
      }
    });
    if (found)
      return found;
  }
  return std::nullopt;
}

void DpdkDriver::dump_flows(const api::pb::FlowsRequest &req,
                            const std::function<bool(const api::pb::Flow &)> &sink) {
  std::uint64_t sent = 0;
  for (Worker *w : workers_) {
    std::vector<FlowRecord> records;
    std::size_t cap = 0;
    w->call([&](const FlowTable &t) { cap = t.size(); });
    if (req.limit() != 0)
      cap = std::min<std::size_t>(cap, req.limit() - sent);
    // Reserved here so that the copy on the worker never allocates.
    records.reserve(cap);
    w->call([&](const FlowTable &t) {
      std::uint64_t now = rte_rdtsc();
      t.for_each([&](const FlowEntry &e) {
        if (records.size() == records.capacity())
          return false;
        if (req.filter_service() && e.service_id != req.service_id())
          return true;
        records.push_back(
            {e.key(), e.service_id, e.backend_id, now > e.last_seen ? now - e.last_seen : 0});
        return true;
      });
    });
    for (const FlowRecord &r : records) {
      api::pb::Flow f;
      f.set_vrf(r.key.vrf);
      set_ip(r.key.src, f.mutable_src());
      set_ip(r.key.dst, f.mutable_dst());
      f.set_proto(r.key.proto);
      f.set_sport(rte_be_to_cpu_16(r.key.sport));
      f.set_dport(rte_be_to_cpu_16(r.key.dport));
      f.set_service_id(r.service_id);
      f.set_backend_id(r.backend_id);
      f.set_cpu(w->id());
      f.set_age_ms(r.idle_ticks * 1000 / ticks_per_s_);
      if (!sink(f))
        return;
      if (req.limit() != 0 && ++sent >= req.limit())
        return;
    }
  }
}

std::uint64_t DpdkDriver::flow_count() {
  std::uint64_t n = 0;
  for (const Worker *w : workers_)
    n += w->counters().flow_entries.get();
  return n;
}

}  // namespace stratus::dpdk

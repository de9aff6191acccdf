// The data-plane /metrics families (SPEC.md §6), identical for stratus-xdp
// and stratus-dpdk because both are collected here from the driver's
// counters at scrape time. Label sets are bounded by the tables (ports,
// tenants, services, backends, drop reasons), never by flows.
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "control/api/server.h"
#include "lb/drop_reason.h"

namespace stratus::api {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

class Family {
 public:
  Family(std::string name, std::string help, MetricType type) {
    f_.name = std::move(name);
    f_.help = std::move(help);
    f_.type = type;
  }
  void add(std::vector<ClientMetric::Label> labels, double value) {
    ClientMetric m;
    m.label = std::move(labels);
    if (f_.type == MetricType::Counter) {
      m.counter.value = value;
    } else {
      m.gauge.value = value;
    }
    f_.metric.push_back(std::move(m));
  }
  MetricFamily take() { return std::move(f_); }

 private:
  MetricFamily f_;
};

std::string_view state_label(pb::BackendState s) {
  return s == pb::BACKEND_ACTIVE ? "active" : s == pb::BACKEND_DRAINING ? "draining" : "down";
}

class DataplaneCollector : public prometheus::Collectable {
 public:
  explicit DataplaneCollector(DataplaneService &service) : service_(service) {}

  std::vector<MetricFamily> Collect() const override {
    pb::CountersReply c;
    service_.counters(&c);
    std::shared_ptr<const Tables> t = service_.tables();
    std::vector<MetricFamily> out;

    Family info("stratus_dataplane_info", "Identity of this data plane (value 1).",
                MetricType::Gauge);
    // Before the first push the tables are empty: the agent's own options
    // name it.
    const ServiceOptions &opts = service_.options();
    info.add({{"node", t->node.name.empty() ? opts.node_name : t->node.name},
              {"kind", std::string(to_string(t->node.name.empty() ? opts.kind : t->node.kind))},
              {"instance_id", service_.instance_id()}},
             1);
    out.push_back(info.take());

    Family gen("stratus_table_generation", "Generation of the installed tables.",
               MetricType::Gauge);
    gen.add({}, static_cast<double>(service_.generation()));
    out.push_back(gen.take());

    auto stats = service_.apply_stats();
    Family txns("stratus_table_transactions_total",
                "Table transactions received, by result (applied, failed).", MetricType::Counter);
    txns.add({{"result", "applied"}}, static_cast<double>(stats.applied));
    txns.add({{"result", "failed"}}, static_cast<double>(stats.failed));
    out.push_back(txns.take());

    MetricFamily lat;
    lat.name = "stratus_table_apply_duration_seconds";
    lat.help = "Time from the end of an Apply stream to its tables being live.";
    lat.type = MetricType::Histogram;
    ClientMetric h;
    h.histogram.sample_count = stats.latency_count;
    h.histogram.sample_sum = stats.latency_sum_s;
    for (std::size_t i = 0; i < DataplaneService::kLatencyBounds.size(); ++i) {
      h.histogram.bucket.push_back({stats.latency_buckets[i], DataplaneService::kLatencyBounds[i]});
    }
    h.histogram.bucket.push_back({stats.latency_count, std::numeric_limits<double>::infinity()});
    lat.metric.push_back(std::move(h));
    out.push_back(std::move(lat));

    Family rxp("stratus_port_rx_packets_total", "Packets received per port.", MetricType::Counter);
    Family rxb("stratus_port_rx_bytes_total", "Bytes received per port.", MetricType::Counter);
    Family txp("stratus_port_tx_packets_total", "Packets sent per port.", MetricType::Counter);
    Family txb("stratus_port_tx_bytes_total", "Bytes sent per port.", MetricType::Counter);
    for (const auto &p : c.ports()) {
      rxp.add({{"port", p.port()}}, static_cast<double>(p.rx().packets()));
      rxb.add({{"port", p.port()}}, static_cast<double>(p.rx().bytes()));
      txp.add({{"port", p.port()}}, static_cast<double>(p.tx().packets()));
      txb.add({{"port", p.port()}}, static_cast<double>(p.tx().bytes()));
    }
    for (auto *f : {&rxp, &rxb, &txp, &txb})
      out.push_back(f->take());

    Family trp("stratus_tenant_rx_packets_total",
               "Tenant packets received (decapsulated or from tenant ports), per tenant.",
               MetricType::Counter);
    Family trb("stratus_tenant_rx_bytes_total", "Tenant bytes received, per tenant.",
               MetricType::Counter);
    Family ttp("stratus_tenant_tx_packets_total",
               "Tenant packets sent (encapsulated or delivered), per tenant.", MetricType::Counter);
    Family ttb("stratus_tenant_tx_bytes_total", "Tenant bytes sent, per tenant.",
               MetricType::Counter);
    for (const auto &v : c.vrfs()) {
      std::vector<ClientMetric::Label> l = {{"tenant", v.tenant()},
                                            {"vni", std::to_string(v.vni())}};
      trp.add(l, static_cast<double>(v.rx().packets()));
      trb.add(l, static_cast<double>(v.rx().bytes()));
      ttp.add(l, static_cast<double>(v.tx().packets()));
      ttb.add(l, static_cast<double>(v.tx().bytes()));
    }
    for (auto *f : {&trp, &trb, &ttp, &ttb})
      out.push_back(f->take());

    Family sp("stratus_service_packets_total", "Packets forwarded to a service's backends.",
              MetricType::Counter);
    Family sb("stratus_service_bytes_total", "Bytes forwarded to a service's backends.",
              MetricType::Counter);
    Family sn("stratus_service_new_flows_total", "New flows scheduled by Maglev, per service.",
              MetricType::Counter);
    Family bp("stratus_backend_packets_total", "Packets forwarded to a backend.",
              MetricType::Counter);
    Family bb("stratus_backend_bytes_total", "Bytes forwarded to a backend.", MetricType::Counter);
    Family bn("stratus_backend_new_flows_total", "New flows assigned to a backend.",
              MetricType::Counter);
    Family bs("stratus_backend_state",
              "Backend state in the installed tables: 1 for the current state.", MetricType::Gauge);
    for (const auto &s : c.services()) {
      sp.add({{"service", s.name()}}, static_cast<double>(s.fwd().packets()));
      sb.add({{"service", s.name()}}, static_cast<double>(s.fwd().bytes()));
      sn.add({{"service", s.name()}}, static_cast<double>(s.new_flows()));
      for (const auto &b : s.backends()) {
        std::vector<ClientMetric::Label> l = {{"service", s.name()}, {"backend", b.name()}};
        bp.add(l, static_cast<double>(b.fwd().packets()));
        bb.add(l, static_cast<double>(b.fwd().bytes()));
        bn.add(l, static_cast<double>(b.new_flows()));
        for (auto st : {pb::BACKEND_ACTIVE, pb::BACKEND_DRAINING, pb::BACKEND_DOWN}) {
          auto sl = l;
          sl.push_back({"state", std::string(state_label(st))});
          bs.add(std::move(sl), b.state() == st ? 1 : 0);
        }
      }
    }
    for (auto *f : {&sp, &sb, &sn, &bp, &bb, &bn, &bs})
      out.push_back(f->take());

    // Every reason is exported, zero or not, so that rate() works from the
    // first drop on.
    Family drops("stratus_drops_total", "Packets dropped, by reason (lb/drop_reasons.def).",
                 MetricType::Counter);
    std::vector<std::uint64_t> by_reason(kDropReasonCount, 0);
    for (const auto &d : c.drops()) {
      for (std::size_t i = 0; i < kDropReasonCount; ++i) {
        if (kDropReasonLabels[i] == d.reason())
          by_reason[i] += d.packets();
      }
    }
    for (std::size_t i = 0; i < kDropReasonCount; ++i) {
      drops.add({{"reason", std::string(kDropReasonLabels[i])}}, static_cast<double>(by_reason[i]));
    }
    out.push_back(drops.take());

    Family fe("stratus_flow_table_entries", "Connection-table entries, all CPUs/workers.",
              MetricType::Gauge);
    fe.add({}, static_cast<double>(c.flow_entries()));
    Family fh("stratus_flow_table_hits_total", "Connection-table lookups that found a flow.",
              MetricType::Counter);
    fh.add({}, static_cast<double>(c.flow_hits()));
    Family fm("stratus_flow_table_misses_total",
              "Connection-table lookups that found no flow (Maglev decided).", MetricType::Counter);
    fm.add({}, static_cast<double>(c.flow_misses()));
    Family pass("stratus_host_packets_total", "Packets handed to the host stack.",
                MetricType::Counter);
    pass.add({}, static_cast<double>(c.passed_to_host()));
    Family arp("stratus_arp_replies_total", "ARP replies sent for gateway and VTEP addresses.",
               MetricType::Counter);
    arp.add({}, static_cast<double>(c.arp_replies()));
    for (auto *f : {&fe, &fh, &fm, &pass, &arp})
      out.push_back(f->take());
    return out;
  }

 private:
  DataplaneService &service_;
};

}  // namespace

std::shared_ptr<prometheus::Collectable> dataplane_metrics(DataplaneService &service) {
  return std::make_shared<DataplaneCollector>(service);
}

}  // namespace stratus::api

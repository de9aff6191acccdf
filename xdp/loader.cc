#include "xdp/loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "config/tables.h"
#include "lb/flow_hash.h"
#include "xdp/bpf/stratus_maps.h"

// The generated skeleton is C written to also compile as C++; it is not
// ours to keep free of these warnings.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "xdp/stratus.skel.h"
#pragma GCC diagnostic pop

namespace stratus::xdp {

namespace {

constexpr long kBpfFsMagic = 0xcafe4a11;

std::string pin_path(const std::string &dir, const bpf_map *map) {
  return dir + "/" + bpf_map__name(map);
}

// The maps that a restart must find again: every map of the object except
// the internal ones (.rodata, .bss) that libbpf makes for globals.
bool pinnable(const bpf_map *map) {
  return !bpf_map__is_internal(map);
}

}  // namespace

void throw_errno(const std::string &what, int err) {
  if (err < 0)
    err = -err;
  if (err == 1 && errno != 0)
    err = errno;  // a -1 return with errno set
  throw XdpError(what + ": " + std::strerror(err));
}

std::string_view to_string(AttachMode m) {
  switch (m) {
    case AttachMode::kNone:
      return "none";
    case AttachMode::kNative:
      return "xdp-native";
    case AttachMode::kGeneric:
      return "xdp-generic";
  }
  return "?";
}

void prepare_bpffs(const std::string &dir) {
  struct statfs fs {};
  if (statfs("/sys/fs/bpf", &fs) != 0 || fs.f_type != kBpfFsMagic) {
    std::filesystem::create_directories("/sys/fs/bpf");
    if (mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700") != 0) {
      throw_errno("mounting bpffs on /sys/fs/bpf", errno);
    }
    std::clog << "stratus-xdp: mounted bpffs on /sys/fs/bpf\n";
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    throw XdpError("creating " + dir + ": " + ec.message());
}

XdpLoader::XdpLoader(const LoaderOptions &options) : options_(options) {
  int n = libbpf_num_possible_cpus();
  if (n <= 0)
    throw_errno("counting possible CPUs", n);
  if (n > STRATUS_MAX_CPUS) {
    throw XdpError(std::to_string(n) + " possible CPUs, more than STRATUS_MAX_CPUS");
  }
  ncpus_ = n;

  skel_ = stratus_bpf::open();
  if (!skel_)
    throw_errno("opening the BPF object", errno);
  try {
    if (int err =
            bpf_map__set_max_entries(skel_->maps.conns4, static_cast<std::uint32_t>(ncpus_))) {
      throw_errno("sizing the connection-table map", err);
    }
    if (!options_.pin_dir.empty()) {
      prepare_bpffs(options_.pin_dir);
      reused_ = ::access(pin_path(options_.pin_dir, skel_->maps.node_cfg).c_str(), F_OK) == 0;
      reuse_pins();
    }
    if (int err = stratus_bpf::load(skel_)) {
      throw_errno("loading the BPF program" + (options_.pin_dir.empty()
                                                   ? std::string()
                                                   : " (pinned maps in " + options_.pin_dir + ")"),
                  err);
    }
    if (!options_.pin_dir.empty())
      pin_new_maps();
    ensure_conn_tables(options_.conn_entries);
  } catch (...) {
    stratus_bpf::destroy(skel_);
    throw;
  }
}

// Whether the pinned outer connection-table map `outer` holds tables of
// this program's layout (set-associative ARRAY, not an older LRU_HASH):
// the verifier takes the inner layout from the pinned map.
static bool conn_tables_current(int outer) {
  __u32 cpu = 0, id = 0;
  if (bpf_map_lookup_elem(outer, &cpu, &id) != 0)
    return true;  // no table yet: put_conn_table creates current ones
  int inner = bpf_map_get_fd_by_id(id);
  if (inner < 0)
    return false;
  bpf_map_info info{};
  __u32 len = sizeof info;
  bool ok = bpf_obj_get_info_by_fd(inner, &info, &len) == 0 && info.type == BPF_MAP_TYPE_ARRAY &&
            info.key_size == sizeof(__u32) && info.value_size == sizeof(stratus_conn_set);
  ::close(inner);
  return ok;
}

// Reuses the pinned maps by hand rather than through libbpf's pin_path:
// libbpf compares map_flags too, and the kernel adds BPF_F_RDONLY_PROG to
// every devmap, so it refuses a pinned devmap that it created itself
// ("couldn't reuse pinned map ... parameter mismatch"). Type, key, value
// and size must match, otherwise the pin belongs to another map layout and
// the load fails with the reason.
void XdpLoader::reuse_pins() {
  bpf_map *map;
  bpf_object__for_each_map(map, skel_->obj) {
    if (!pinnable(map))
      continue;
    std::string path = pin_path(options_.pin_dir, map);
    int pinned = bpf_obj_get(path.c_str());
    if (pinned < 0) {
      if (errno == ENOENT)
        continue;
      throw_errno("opening pinned map " + path, errno);
    }
    bpf_map_info info{};
    __u32 len = sizeof info;
    int err = bpf_obj_get_info_by_fd(pinned, &info, &len);
    if (err == 0 &&
        (info.type != static_cast<__u32>(bpf_map__type(map)) ||
         info.key_size != bpf_map__key_size(map) || info.value_size != bpf_map__value_size(map) ||
         info.max_entries != bpf_map__max_entries(map) ||
         (map == skel_->maps.conns4 && !conn_tables_current(pinned)))) {
      ::close(pinned);
      throw XdpError("pinned map " + path +
                     " has another layout than this program's; remove the pins of this "
                     "instance (stratus-xdp --detach, or rm -r " +
                     options_.pin_dir + ")");
    }
    if (err == 0)
      err = bpf_map__reuse_fd(map, pinned);
    ::close(pinned);
    if (err)
      throw_errno("reusing pinned map " + path, err);
  }
}

void XdpLoader::pin_new_maps() {
  bpf_map *map;
  bpf_object__for_each_map(map, skel_->obj) {
    if (!pinnable(map))
      continue;
    std::string path = pin_path(options_.pin_dir, map);
    if (::access(path.c_str(), F_OK) == 0)
      continue;
    if (int err = bpf_map__pin(map, path.c_str()))
      throw_errno("pinning map at " + path, err);
  }
}

XdpLoader::~XdpLoader() {
  stratus_bpf::destroy(skel_);
}

int XdpLoader::prog_fd() const {
  return bpf_program__fd(skel_->progs.stratus_xdp);
}

int XdpLoader::fd(const bpf_map *map) {
  return bpf_map__fd(map);
}

AttachMode XdpLoader::attach(int ifindex, bool generic_only) {
  if (!generic_only) {
    int err = bpf_xdp_attach(ifindex, prog_fd(), XDP_FLAGS_DRV_MODE, nullptr);
    if (err == 0)
      return AttachMode::kNative;
    char name[IF_NAMESIZE] = {};
    if_indextoname(static_cast<unsigned>(ifindex), name);
    std::clog << "stratus-xdp: warning: native XDP on " << name << " failed ("
              << std::strerror(-err) << "), using generic (SKB) mode\n";
  }
  int err = bpf_xdp_attach(ifindex, prog_fd(), XDP_FLAGS_SKB_MODE, nullptr);
  if (err)
    throw_errno("attaching XDP to ifindex " + std::to_string(ifindex), err);
  return AttachMode::kGeneric;
}

void XdpLoader::detach(int ifindex) {
  AttachMode mode = attached_mode(ifindex);
  if (mode == AttachMode::kNone)
    return;
  __u32 flags = mode == AttachMode::kNative ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
  if (int err = bpf_xdp_detach(ifindex, flags, nullptr)) {
    throw_errno("detaching XDP from ifindex " + std::to_string(ifindex), err);
  }
}

AttachMode XdpLoader::attached_mode(int ifindex) {
  bpf_xdp_query_opts q{};
  q.sz = sizeof q;
  if (bpf_xdp_query(ifindex, 0, &q) != 0)
    return AttachMode::kNone;
  switch (q.attach_mode) {
    case XDP_ATTACHED_DRV:
      return AttachMode::kNative;
    case XDP_ATTACHED_SKB:
      return AttachMode::kGeneric;
    default:
      return AttachMode::kNone;
  }
}

void XdpLoader::unpin() {
  if (options_.pin_dir.empty())
    return;
  bpf_map *map;
  bpf_object__for_each_map(map, skel_->obj) {
    if (!pinnable(map))
      continue;
    std::string path = pin_path(options_.pin_dir, map);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      std::clog << "stratus-xdp: warning: removing pin " << path << ": " << std::strerror(errno)
                << "\n";
    }
  }
  std::error_code ec;
  std::filesystem::remove(options_.pin_dir, ec);
}

int XdpLoader::conn_table_fd(std::uint32_t cpu) const {
  __u32 id = 0;
  if (bpf_map_lookup_elem(fd(skel_->maps.conns4), &cpu, &id) != 0)
    return -1;
  return bpf_map_get_fd_by_id(id);
}

std::uint32_t XdpLoader::conn_table_sets(int table) {
  bpf_map_info info{};
  __u32 len = sizeof info;
  if (bpf_obj_get_info_by_fd(table, &info, &len) != 0)
    return 0;
  return info.max_entries;
}

// The sets of a table for `entries` flows: a power of two, twice the ways
// needed, because a set-associative table starts evicting before it is
// full (a set of STRATUS_CONN_WAYS overflows while others have room: at
// one flow per way, about a fifth of the flows would be evicted early; at
// half, a few percent of a set's worth).
static std::uint32_t conn_sets_for(std::uint32_t entries) {
  std::uint64_t ways = 2ull * entries;
  std::uint64_t want = ways / STRATUS_CONN_WAYS + (ways % STRATUS_CONN_WAYS != 0);
  std::uint32_t sets = 1;
  while (sets < want)
    sets <<= 1;
  return sets;
}

std::uint32_t XdpLoader::conn_table_entries() const {
  int inner = conn_table_fd(0);
  if (inner < 0)
    return 0;
  std::uint32_t entries = conn_table_sets(inner) * STRATUS_CONN_WAYS;
  ::close(inner);
  return entries;
}

void XdpLoader::put_conn_table(int cpu, std::uint32_t entries, const char *what) {
  std::uint32_t sets = conn_sets_for(entries);
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_INNER_MAP);
  int map = bpf_map_create(BPF_MAP_TYPE_ARRAY, "stratus_conn4", sizeof(__u32),
                           sizeof(stratus_conn_set), sets, &opts);
  if (map < 0)
    throw_errno("creating a connection table", map);
  __u32 key = static_cast<__u32>(cpu);
  __u32 mask = sets - 1, old_mask = 0;
  int masks = fd(skel_->maps.conn_masks);
  int err = bpf_map_lookup_elem(masks, &key, &old_mask);
  // The mask never exceeds the table the program finds (xdp/bpf/maps.h):
  // a smaller mask before the swap, a larger one after it.
  if (err == 0 && mask < old_mask)
    err = bpf_map_update_elem(masks, &key, &mask, BPF_ANY);
  if (err == 0)
    err = bpf_map_update_elem(fd(skel_->maps.conns4), &key, &map, BPF_ANY);
  ::close(map);
  if (err == 0 && mask >= old_mask)
    err = bpf_map_update_elem(masks, &key, &mask, BPF_ANY);
  if (err)
    throw_errno(std::string(what) + " the connection table of CPU " + std::to_string(cpu), err);
}

void XdpLoader::ensure_conn_tables(std::uint32_t entries) {
  for (int cpu = 0; cpu < ncpus_; ++cpu) {
    int inner = conn_table_fd(static_cast<std::uint32_t>(cpu));
    if (inner >= 0) {
      ::close(inner);
      continue;
    }
    put_conn_table(cpu, entries, "installing");
  }
}

void XdpLoader::resize_conn_tables(std::uint32_t entries) {
  if (conn_table_entries() == conn_sets_for(entries) * STRATUS_CONN_WAYS)
    return;
  if (std::uint64_t available = mem_available(); available > 0) {
    std::string why =
        conn_memory_problem(std::uint64_t{conn_sets_for(entries)} * sizeof(stratus_conn_set),
                            ncpus_, "CPU", available, "lower flows.max_entries");
    if (!why.empty())
      throw XdpError("flows.max_entries " + std::to_string(entries) + ": " + why);
  }
  // New tables first, then one swap per CPU; a CPU's packets see either
  // its old table or its new (empty) one.
  for (int cpu = 0; cpu < ncpus_; ++cpu)
    put_conn_table(cpu, entries, "swapping");
}

}  // namespace stratus::xdp

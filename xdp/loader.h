// The BPF object of the XDP data plane, owned: an RAII wrapper of the
// bpftool skeleton (xdp/stratus.skel.h) that opens and loads the program,
// reuses or creates its pinned maps, creates the per-CPU connection tables,
// and attaches the program to interfaces. Maps are reached through the
// skeleton's fields, never by name.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

struct stratus_bpf;  // the skeleton (xdp/stratus.skel.h)
struct bpf_map;

namespace stratus::xdp {

// A libbpf or syscall failure, with what was being done.
class XdpError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "what: strerror(err)" for a negative errno or -1/errno return.
[[noreturn]] void throw_errno(const std::string &what, int err);

enum class AttachMode { kNone, kNative, kGeneric };
std::string_view to_string(AttachMode m);

struct LoaderOptions {
  // Directory whose map pins are reused (or created) before load, e.g.
  // /sys/fs/bpf/stratus/<instance>. Empty: private, unpinned maps.
  std::string pin_dir;
  // Entries of each CPU's connection table when it has to be created.
  std::uint32_t conn_entries = 65536;
};

class XdpLoader {
 public:
  explicit XdpLoader(const LoaderOptions &options);
  ~XdpLoader();
  XdpLoader(const XdpLoader &) = delete;
  XdpLoader &operator=(const XdpLoader &) = delete;

  ::stratus_bpf *skel() const { return skel_; }
  int prog_fd() const;
  static int fd(const bpf_map *map);

  // True when the maps were taken over from pins (an agent restart).
  bool reused() const { return reused_; }
  int possible_cpus() const { return ncpus_; }
  const std::string &pin_dir() const { return options_.pin_dir; }

  // Attaches the program (replacing whatever XDP program is there) in
  // native mode, falling back to generic mode unless `generic_only`.
  AttachMode attach(int ifindex, bool generic_only);
  static void detach(int ifindex);
  static AttachMode attached_mode(int ifindex);

  // Removes every pin and the pin directory (used on --detach).
  void unpin();

  // The connection table of `cpu` (an fd the caller must close), or -1.
  int conn_table_fd(std::uint32_t cpu) const;
  // Replaces every CPU's connection table by an empty one of at least
  // `entries` entries (flows are lost) if the current tables are of
  // another size. Throws XdpError, changing nothing, when the new tables
  // would take more than half of the memory available now
  // (conn_memory_problem()).
  void resize_conn_tables(std::uint32_t entries);
  // A table's capacity: sets (a power of two) x STRATUS_CONN_WAYS, the
  // smallest such at least the configured flows.max_entries.
  std::uint32_t conn_table_entries() const;
  // The sets of connection table `table` (a power of two), 0 if unknown.
  static std::uint32_t conn_table_sets(int table);

 private:
  void ensure_conn_tables(std::uint32_t entries);
  // Creates a set-associative table (xdp/bpf/maps.h conns4) of at least
  // `entries` ways, puts it in CPU `cpu`'s slot and sets its mask;
  // `what` names the step in the error ("installing", "swapping").
  void put_conn_table(int cpu, std::uint32_t entries, const char *what);
  void reuse_pins();
  void pin_new_maps();

  LoaderOptions options_;
  ::stratus_bpf *skel_ = nullptr;
  bool reused_ = false;
  int ncpus_ = 0;
};

// Mounts bpffs on /sys/fs/bpf if nothing is mounted there and creates
// `dir` (with parents). Throws XdpError when it cannot.
void prepare_bpffs(const std::string &dir);

}  // namespace stratus::xdp

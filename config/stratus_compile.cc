// stratus-compile: validates a Stratus configuration file and prints the
// tables it compiles to, per node.
//
//   stratus-compile [--check] [--node NAME] FILE
//
// Exit status: 0 valid (tables printed unless --check), 1 invalid (every
// error printed to stderr as FILE:LINE:COL: FIELD.PATH: message), 2 usage.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "config/compile.h"
#include "config/format.h"
#include "config/validate.h"

namespace {

int usage(const char *argv0, int status) {
  (status ? std::cerr : std::cout)
      << "usage: " << argv0 << " [--check] [--node NAME] FILE\n"
      << "  Validates FILE and prints the tables of every node (or of NAME).\n"
      << "  --check      validate only\n"
      << "  --node NAME  print the tables of node NAME only\n";
  return status;
}

}  // namespace

int main(int argc, char **argv) {
  bool check_only = false;
  std::string node;
  std::string file;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--check") {
      check_only = true;
    } else if (arg == "--node" && i + 1 < argc) {
      node = argv[++i];
    } else if (arg.rfind("--node=", 0) == 0) {
      node = arg.substr(7);
    } else if (arg == "-h" || arg == "--help") {
      return usage(argv[0], 0);
    } else if (!arg.empty() && arg[0] == '-') {
      std::cerr << argv[0] << ": unknown option " << arg << "\n";
      return usage(argv[0], 2);
    } else if (file.empty()) {
      file = arg;
    } else {
      std::cerr << argv[0] << ": more than one file\n";
      return usage(argv[0], 2);
    }
  }
  if (file.empty())
    return usage(argv[0], 2);

  using namespace stratus::config;
  LoadResult result = load_config(file);
  for (const auto &w : result.warnings) {
    std::cerr << w.pos.str() << ": " << w.path << ": warning: " << w.message << "\n";
  }
  if (!result.ok()) {
    std::cerr << format_diagnostics(result.errors);
    std::cerr << file << ": " << result.errors.size() << " error"
              << (result.errors.size() == 1 ? "" : "s") << "\n";
    return 1;
  }
  const Config &config = *result.config;
  if (!node.empty() && !config.find_node(node)) {
    std::cerr << file << ": no node named \"" << node << "\"\n";
    return 1;
  }
  if (check_only) {
    std::cout << file << ": valid (" << config.nodes.size() << " nodes, " << config.tenants.size()
              << " tenants, " << config.services.size() << " services)\n";
    return 0;
  }
  bool first = true;
  int status = 0;
  for (const auto &n : config.nodes) {
    if (!node.empty() && *n.name != node)
      continue;
    stratus::Tables tables = compile(config, *n.name, nullptr);
    if (!first)
      std::cout << "\n";
    first = false;
    std::cout << "=== " << *n.name << " (region " << *n.region << ", api " << n.api->str()
              << ") ===\n"
              << format_tables(tables);
    // The compiler must produce consistent tables; say so loudly if not.
    for (const auto &e : stratus::check(tables)) {
      std::cerr << file << ": internal error: node " << *n.name << ": " << e << "\n";
      status = 1;
    }
  }
  return status;
}

// Loading and validating the desired state: YAML text -> config::Config, or
// the complete list of what is wrong with it. Every problem is reported (not
// only the first), each as
//
//   FILE:LINE:COL: FIELD.PATH: message
//   demo.yaml:42:7: services[1].backends[0].tenant: unknown tenant "bleu"
//
// The keys and rules are documented in docs/config.md.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.h"

namespace stratus::config {

struct Diagnostic {
  SourcePos pos;
  std::string path;  // e.g. "services[1].backends[0].tenant"
  std::string message;

  // "FILE:LINE:COL: PATH: message" (FILE: PATH: message without a position).
  std::string str() const;
};

struct LoadResult {
  std::optional<Config> config;      // set if and only if errors is empty
  std::vector<Diagnostic> errors;    // sorted by position
  std::vector<Diagnostic> warnings;  // advice; the config is still valid

  bool ok() const { return errors.empty(); }
};

// Reads and validates a file; `path` is the FILE of every diagnostic.
LoadResult load_config(const std::string &path);

// Parses and validates YAML text; `filename` is the FILE of every diagnostic.
LoadResult load_config_string(std::string_view text, const std::string &filename);

// The semantic checks alone (references, duplicates, ranges across fields)
// on a Config built or edited in code, e.g. by the control daemon after an
// operator changed a weight. load_config* already run them.
struct Validation {
  std::vector<Diagnostic> errors;
  std::vector<Diagnostic> warnings;
};
Validation validate(const Config &config);

// Each diagnostic's str(), one per line.
std::string format_diagnostics(const std::vector<Diagnostic> &list);

}  // namespace stratus::config

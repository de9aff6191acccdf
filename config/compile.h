// The compiler from the desired state (config/model.h) to the tables one
// data-plane node installs (config/tables.h): VRF, service and backend ids,
// each route's resolved target, each backend's encapsulation and every
// service's Maglev table. Pure: the same inputs give the same tables.
//
// Ids are stable across edits: given the node's previous tables, a tenant,
// service or backend that keeps its name keeps its id, and new ones take the
// lowest free id, so a config change does not renumber what did not change
// (counters, connection-table entries and Maglev tables keyed by id survive).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "config/model.h"
#include "config/tables.h"

namespace stratus::config {

// The tables of node `node_name`. `config` must have passed validation
// (load_config* or validate()); `previous` is the node's last tables, or
// nullptr. Throws std::invalid_argument when the config has no such node.
// The result is canonical (canonicalize()) and passes stratus::check().
Tables compile(const Config &config, const std::string &node_name, const Tables *previous);

// Tables per node name, shared: a node's tables are immutable once compiled,
// and the runtime state (control/runtime.h) hands them on without a copy
// when it changes nothing.
using NodeTables = std::map<std::string, std::shared_ptr<const Tables>>;

// compile() for every node; previous_by_node maps node names to their last
// tables (missing entries: no previous tables).
NodeTables compile_all(const Config &config, const NodeTables &previous_by_node);

}  // namespace stratus::config

// A human-readable dump of one node's tables (config/tables.h): the node,
// its next hops, VRFs, routes and services with their backends. Maglev
// tables are summarised (slots per backend), never listed slot by slot.
// Used by stratus-compile and by stratusctl.
#pragma once

#include <string>

#include "config/tables.h"

namespace stratus::config {

// Multi-line text ending in a newline; aligned columns, no colours.
std::string format_tables(const Tables &t);

}  // namespace stratus::config

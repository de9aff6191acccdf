// SPDX-License-Identifier: GPL-2.0
/* The Stratus XDP data plane: one program attached to every port of the
 * node. The steps live in the headers (pipeline.h gives their order); this
 * entry only finds the node and port and dispatches on the port's role.
 */
#include "xdp/bpf/pipeline.h"

/* The port of an ingress ifindex, copied to `out` (one pointer type for
 * the verifier whichever map holds it); 0 when it is none of ours. */
static __always_inline int stratus_port_of(__u32 ifindex, struct stratus_port *out) {
  const struct stratus_port *port;
  if (ifindex < STRATUS_PORT_SLOTS) {
    port = bpf_map_lookup_elem(&port_slots, &ifindex);
    if (!port || !port->in_use)
      return 0;
  } else {
    port = bpf_map_lookup_elem(&ports, &ifindex);
    if (!port)
      return 0;
  }
  *out = *port;
  return 1;
}

SEC("xdp")
int stratus_xdp(struct xdp_md *ctx) {
  __u32 zero = 0;
  struct stratus_node_cfg *cfg = bpf_map_lookup_elem(&node_cfg, &zero);
  if (!cfg || !cfg->configured)
    return XDP_PASS;
  struct stratus_port port;
  if (!stratus_port_of(ctx->ingress_ifindex, &port))
    return stratus_pass();
  stratus_count_port_rx(port.index, stratus_frame_len(ctx));

  int rc = port.role == STRATUS_PORT_TENANT ? stratus_from_tenant(ctx, cfg, &port)
                                            : stratus_from_underlay(ctx, cfg, &port);
  return rc == STRATUS_CONTINUE ? stratus_pass() : rc;
}

char LICENSE[] SEC("license") = "GPL";

// SPDX-License-Identifier: GPL-2.0
/* XDP_PASS for the veth peers of the gateway's ports in the netns test:
 * native XDP_TX and redirects on a veth deliver to the peer only when the
 * peer runs an XDP program of its own (with none, the frames were counted
 * and lost here, GRO on or off). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx) {
  (void)ctx;
  return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";

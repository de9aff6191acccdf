// SPDX-License-Identifier: GPL-2.0
/* Benchmark harness programs for BPF_PROG_TEST_RUN with `repeat`.
 *
 * test_run does not restore the frame between repetitions, so a program
 * that rewrites or encapsulates would see its own output from the second
 * repetition on. bench_front runs first on every repetition: it puts the
 * head back where it was (every path of the data plane changes the frame's
 * size at the head only) and rewrites the original bytes, then tail-calls
 * the program under test in target[0]. The baselines (bench_tx: MAC swap +
 * XDP_TX; bench_drop: XDP_DROP) go through the same front, so the front's
 * cost cancels out of "cost above baseline".
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define BENCH_MAX_FRAME 2048

struct bench_frame {
  __u32 len;
  __u8 bytes[BENCH_MAX_FRAME];
};

/* [0] -> the frame every repetition starts from. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct bench_frame);
} frame SEC(".maps");

/* [0] -> the program under test. */
struct {
  __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);
} target SEC(".maps");

/* [0] -> repetitions that reached the tail call (per CPU). */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} runs SEC(".maps");

SEC("xdp")
int bench_front(struct xdp_md *ctx) {
  __u32 zero = 0;
  struct bench_frame *f = bpf_map_lookup_elem(&frame, &zero);
  if (!f)
    return XDP_ABORTED;
  __u32 len = f->len;
  if (len == 0 || len > BENCH_MAX_FRAME)
    return XDP_ABORTED;
  int cur = (int)(ctx->data_end - ctx->data);
  if (cur != (int)len && bpf_xdp_adjust_head(ctx, cur - (int)len))
    return XDP_ABORTED;
  if (bpf_xdp_store_bytes(ctx, 0, f->bytes, len))
    return XDP_ABORTED;
  __u64 *n = bpf_map_lookup_elem(&runs, &zero);
  if (n)
    *n += 1;
  bpf_tail_call(ctx, &target, 0);
  return XDP_ABORTED;
}

SEC("xdp")
int bench_tx(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  __u8 *mac = data;
  if ((void *)(mac + 12) > data_end)
    return XDP_ABORTED;
  __u8 tmp[6];
  __builtin_memcpy(tmp, mac, 6);
  __builtin_memcpy(mac, mac + 6, 6);
  __builtin_memcpy(mac + 6, tmp, 6);
  return XDP_TX;
}

SEC("xdp")
int bench_drop(struct xdp_md *ctx) {
  (void)ctx;
  return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";

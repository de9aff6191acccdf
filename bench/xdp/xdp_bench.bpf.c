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
 *
 * To measure many flows, the front can also rewrite the frame's flow per
 * repetition from a per-CPU sequence number: `vary_count` N > 0 cycles the
 * TCP/UDP source port over N values (N distinct flows); VARY_UNIQUE makes
 * every repetition a flow never seen before (source port from the low 16
 * bits of the sequence, the last two bytes of the source address XORed with
 * the rest). The data plane checks neither the IPv4 nor the L4 checksum,
 * so they are left as they are.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define BENCH_MAX_FRAME 2048

#define BENCH_VARY_UNIQUE 0xffffffffu

/* Mirrored in xdp_paths_bench.cc. */
struct bench_frame {
  __u32 len;
  __u32 vary_count; /* 0: the frame as is; N: N source ports; VARY_UNIQUE */
  __u32 sport_off;  /* offsets in the frame (of the source port, address) */
  __u32 saddr_off;
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

/* [0] -> the sequence number of the next varied repetition (per CPU). */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} seq SEC(".maps");

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
  if (f->vary_count) {
    __u64 *seqno = bpf_map_lookup_elem(&seq, &zero);
    if (!seqno)
      return XDP_ABORTED;
    __u64 i = (*seqno)++;
    /* Masked so that the verifier sees the stores inside bytes[]. */
    __u32 sport = f->sport_off & (BENCH_MAX_FRAME / 2 - 1);
    __u32 saddr = f->saddr_off & (BENCH_MAX_FRAME / 2 - 1);
    __u32 v;
    if (f->vary_count == BENCH_VARY_UNIQUE) {
      v = (__u32)i;
      /* Stored in the map's copy of the frame: XOR with the bits that
       * changed since the last repetition keeps the original address. */
      __u32 prev = i ? (__u32)(i - 1) >> 16 : 0;
      f->bytes[saddr + 2] ^= (__u8)(((v >> 16) ^ prev) >> 8);
      f->bytes[saddr + 3] ^= (__u8)((v >> 16) ^ prev);
    } else {
      v = (__u32)(i % f->vary_count);
    }
    /* Ports from 1024 up rather than from 0. */
    __u16 port = (__u16)(v + 1024);
    f->bytes[sport] = (__u8)(port >> 8);
    f->bytes[sport + 1] = (__u8)port;
  }
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

/* Helpers the meshtune loaders share (common.c). */
#ifndef MESHTUNE_COMMON_H
#define MESHTUNE_COMMON_H
#include <stdarg.h>
#include <bpf/libbpf.h>

extern const char *fail_prefix; /* "meshtune-bpf: ..." one-line errors */
int fail(const char *fmt, ...);
int libbpf_silent(enum libbpf_print_level l, const char *f, va_list a);
/* cgroup v2 level of a directory: its distance from the hierarchy root; < 1 when unknown. */
int cgroup_level(const char *path);
/* A bpffs at /sys/fs/bpf, mounted when missing (as Cilium does); 0 or 1 after a one-line error. */
int ensure_bpffs(void);

#include <stddef.h>
/* The pinned object `name` under MT_PIN_DIR. */
void pin_path(char *buf, size_t n, const char *name);
/* CIDR as the datapath's LPM keys hold it (v4 mapped into v6), prefix length in *plen. */
int parse_cidr(const char *s, unsigned int ip[4], unsigned int *plen);
/* Per-reason datapath counters as one JSON object on stdout. */
void print_datapath_counters(void);
/* The splice gate (meshtune.h mt_gate) as one JSON object on stdout; with set >= 0, first set its
 * reason (MT_GATE_OPEN reopens). 0, or -1 with errno when the gate is not pinned. */
int splice_gate_json(int set);
/* Close the gate with `reason` unless it is closed already (the first reason stays). */
int splice_gate_close(unsigned int reason);
struct mt_meta;
/* What the loader recorded next to the programs (meshtune.h mt_meta); 0, or -1 when not loaded. */
int read_meta(struct mt_meta *m);

#endif

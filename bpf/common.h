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

#endif

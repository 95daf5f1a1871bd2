/* Helpers the meshtune loaders share (datapath loader.c, kernel probes tcpstats.c). */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include "common.h"

const char *fail_prefix = "meshtune-bpf";

int fail(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", fail_prefix);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int libbpf_silent(enum libbpf_print_level l, const char *f, va_list a)
{
	(void)l;
	(void)f;
	(void)a;
	return 0;
}

/* cgroup v2 level of a directory: its distance from the hierarchy root (which has no cgroup.events). */
int cgroup_level(const char *path)
{
	char p[PATH_MAX], f[PATH_MAX + 16];
	int level = 0;
	snprintf(p, sizeof(p), "%s", path);
	for (;;) {
		snprintf(f, sizeof(f), "%s/cgroup.events", p);
		if (access(f, F_OK) != 0)
			return level;
		char *slash = strrchr(p, '/');
		if (!slash || slash == p)
			return -1;
		*slash = 0;
		level++;
	}
}

/* Pins need a bpffs at /sys/fs/bpf; mount one when the node has none (as Cilium does). */
int ensure_bpffs(void)
{
	struct statfs fs;
	if (statfs("/sys/fs/bpf", &fs) == 0 && fs.f_type == BPF_FS_MAGIC)
		return 0;
	if (mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700"))
		return fail("/sys/fs/bpf is not a bpffs and mounting one failed: %s",
			    strerror(errno));
	return 0;
}

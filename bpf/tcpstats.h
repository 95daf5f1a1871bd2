/* Shared between tcpstats.bpf.c (kernel TCP signals per pod and remote) and its loader tcpstats.c. */
#ifndef MESHTUNE_TCPSTATS_H
#define MESHTUNE_TCPSTATS_H

#define TS_PIN_DIR "/sys/fs/bpf/meshtune-tcpstats"
#define TS_SLOTS \
	24 /* log2 microsecond buckets: slot 0 < 1 us, slot i in [2^(i-1), 2^i) us, last open */

/* One (pod, remote) pair. Outbound (dir 0): the remote's ip:port. Inbound (dir 1, accepted
 * sockets): the remote's ip and our own listening port, so clients' ephemeral ports do not
 * make a key each. Pod = the datapath's pod id (pods map), IPv4 as ::ffff:a.b.c.d. */
struct ts_key {
	__u32 pod;
	__u16 dir;
	__u16 port;
	__u32 ip[4];
};

struct ts_val {
	__u64 rtt_samples;
	__u64 rtt_sum_us; /* sum of smoothed RTT at each sample */
	__u64 rtt_min_us; /* smallest smoothed RTT seen; 0 = none yet */
	__u64 rtt_hist[TS_SLOTS];
	__u64 retrans; /* retransmitted segments (BPF_SOCK_OPS_RETRANS_CB) */
	__u64 connects; /* active opens that reached ESTABLISHED */
	__u64 connect_fail; /* active opens that went SYN_SENT -> CLOSE */
	__u64 connect_sum_us;
	__u64 connect_hist[TS_SLOTS];
	__u64 accepts; /* passive opens (inbound) */
};

enum ts_reason {
	TS_EVENTS = 0, /* sockops callbacks run */
	TS_NOT_MESHED, /* socket of a pod the agent does not list */
	TS_MAP_FULL, /* a new (pod, remote) could not be inserted */
	TS_NO_STORAGE, /* per-socket storage unavailable */
	TS_REASON_MAX,
};

#endif

/* Shared between meshtune.bpf.c and the loader. */
#ifndef MESHTUNE_H
#define MESHTUNE_H

#define MT_PIN_DIR "/sys/fs/bpf/meshtune"
#define MT_MAX_CGROUP_PATH 256

/* Why a connection/message took the path it did (Cilium-style per-reason accounting). */
enum mt_reason {
	MT_REDIRECTED = 0,     /* connect() redirected to the proxy */
	MT_SKIP_UID,           /* the proxy's own traffic */
	MT_SKIP_LOOPBACK,      /* destination already local */
	MT_SKIP_EXCLUDED_PORT,
	MT_SKIP_EXCLUDED_CIDR,
	MT_SKIP_PROXY_PORT,    /* already aimed at the proxy */
	MT_SKIP_NOT_TCP,
	MT_ORIGDST_SAVED,      /* original destination recorded for the accepted socket */
	MT_ORIGDST_ANSWERED,   /* getsockopt(SO_ORIGINAL_DST) answered */
	MT_ORIGDST_MISS,       /* getsockopt asked for a socket we did not redirect */
	MT_SOCKMAP_INSERTED,   /* local pair socket added to the sockhash */
	MT_SOCKMAP_INSERT_FAIL,
	MT_SOCKMAP_REDIRECTED, /* sk_msg spliced a message to the peer */
	MT_SOCKMAP_MISS,       /* sk_msg found no peer: normal TCP path */
	MT_REASON_MAX,
};

/* A TCP endpoint: address (v4 in ip[0], network order) and port (host order). */
struct mt_endpoint {
	__u32 ip[4];
	__u32 port;
	__u32 family;
};

/* sockhash key: the socket's own 4-tuple. */
struct mt_pair {
	__u32 local_ip[4];
	__u32 remote_ip[4];
	__u32 local_port;  /* host order */
	__u32 remote_port; /* host order */
	__u32 family;
};

/* Recorded by the loader next to the programs, read back by `status`. */
struct mt_meta {
	char cgroup[MT_MAX_CGROUP_PATH];
	__u32 proxy_port;
	__u32 proxy_uid;
};

#endif

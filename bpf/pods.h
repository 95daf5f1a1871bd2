/* The agent's line protocol over the pinned pod maps (pods.c); its helpers live in common.c. */
#ifndef MESHTUNE_PODS_H
#define MESHTUNE_PODS_H
#include <stddef.h>
#include "common.h"

int cmd_pods(void);
int count_pods(void);
/* One-line {"ok":false,"error":...} replies of the line protocol. */
void reply_error(const char *fmt, const char *arg);
/* An ambient pod's inbound steering (ambient.c). */
void cmd_ambient(char *args);
void cmd_unambient(char *args);
void cmd_nodeips(char *args);
void ambient_unpin_all(void);

#endif

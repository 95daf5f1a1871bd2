/* The agent's line protocol over the pinned pod maps (pods.c); its helpers live in common.c. */
#ifndef MESHTUNE_PODS_H
#define MESHTUNE_PODS_H
#include <stddef.h>
#include "common.h"

int cmd_pods(void);
int count_pods(void);

#endif

/* The agent's line protocol over the pinned pod maps (pods.c), and loader helpers it shares. */
#ifndef MESHTUNE_PODS_H
#define MESHTUNE_PODS_H
#include <stddef.h>
#include "common.h"

void pin_path(char *buf, size_t n, const char *name);
void print_counters(void);
int cmd_pods(void);
int count_pods(void);
int parse_cidr(const char *s, unsigned int ip[4], unsigned int *plen);

#endif

/*
 * admit.c: the pre-authentication budget of admit.h. A linear scan of at
 * most max_total slots per new connection: the budget is small by design
 * (tens), and the scan runs once per accept, never per byte.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/admit.h"

int admit_init(struct admit *a, unsigned max_total, unsigned max_per_src)
{
	memset(a, 0, sizeof(*a));
	if (max_per_src < 1 || max_per_src > max_total)
		return -EINVAL;
	a->slot = calloc(max_total, sizeof(*a->slot));
	if (!a->slot)
		return -ENOMEM;
	a->max_total = max_total;
	a->max_per_src = max_per_src;
	return 0;
}

void admit_free(struct admit *a)
{
	free(a->slot);
	memset(a, 0, sizeof(*a));
}

void admit_source(const struct sockaddr *sa, uint8_t src[16])
{
	memset(src, 0, 16);
	if (sa->sa_family == AF_INET) {
		src[10] = src[11] = 0xff;
		memcpy(src + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		/* A v4-mapped address is its IPv4 address, whole. */
		memcpy(src, a6, IN6_IS_ADDR_V4MAPPED(a6) ? 16 : 8);
	}
}

void admit_source_name(const struct sockaddr *sa, char *out, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	struct in6_addr a6;
	uint8_t src[16];

	admit_source(sa, src);
	if (sa->sa_family == AF_INET6 && !IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)sa)->sin6_addr)) {
		memcpy(&a6, src, sizeof(a6));
		inet_ntop(AF_INET6, &a6, ip, sizeof(ip));
		snprintf(out, len, "[%s]/64", ip);
		return;
	}
	inet_ntop(AF_INET, src + 12, ip, sizeof(ip));
	snprintf(out, len, "%s", sa->sa_family == AF_INET || sa->sa_family == AF_INET6 ? ip : "?");
}

int admit_take(struct admit *a, const struct sockaddr *sa)
{
	uint8_t src[16];
	unsigned same = 0;
	int free_slot = -1;

	admit_source(sa, src);
	for (unsigned i = 0; i < a->max_total; i++) {
		if (!a->slot[i].used) {
			if (free_slot < 0)
				free_slot = (int)i;
		} else if (memcmp(a->slot[i].src, src, sizeof(src)) == 0) {
			same++;
		}
	}
	if (same >= a->max_per_src)
		return -EDQUOT;
	if (free_slot < 0)
		return -ENOSPC;
	memcpy(a->slot[free_slot].src, src, sizeof(src));
	a->slot[free_slot].used = true;
	a->n++;
	return free_slot;
}

void admit_release(struct admit *a, int slot)
{
	if (slot < 0 || (unsigned)slot >= a->max_total || !a->slot[slot].used)
		return;
	a->slot[slot].used = false;
	a->n--;
}

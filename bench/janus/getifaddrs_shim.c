/*
 * LD_PRELOAD shim for the SFU benchmark's Janus (bench/sfu.py compiles it at run time).
 *
 * Janus, through libnice, never gathers candidates on loopback interfaces, and the
 * benchmark must never send a packet anywhere but 127.0.0.1. This getifaddrs()
 * reports the 127.0.0.1 address without IFF_LOOPBACK, so it becomes a usable host
 * candidate, and marks every other address as down, so nothing else is gathered.
 * Entries are edited in place, never unlinked: freeifaddrs() must get back exactly
 * what the C library allocated.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>

typedef int (*getifaddrs_fn)(struct ifaddrs **);

static int is_ipv4_loopback_address(const struct ifaddrs *entry)
{
    const struct sockaddr_in *address;

    if (entry->ifa_addr == NULL || entry->ifa_addr->sa_family != AF_INET)
        return 0;
    address = (const struct sockaddr_in *)entry->ifa_addr;
    return address->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
}

int getifaddrs(struct ifaddrs **result)
{
    static getifaddrs_fn real_getifaddrs = NULL;
    struct ifaddrs *entry;
    int status;

    if (real_getifaddrs == NULL)
        real_getifaddrs = (getifaddrs_fn)dlsym(RTLD_NEXT, "getifaddrs");
    if (real_getifaddrs == NULL)
        return -1;
    status = real_getifaddrs(result);
    if (status != 0)
        return status;
    for (entry = *result; entry != NULL; entry = entry->ifa_next) {
        if (is_ipv4_loopback_address(entry))
            entry->ifa_flags &= ~IFF_LOOPBACK;
        else
            entry->ifa_flags &= ~(IFF_UP | IFF_RUNNING);
    }
    return 0;
}

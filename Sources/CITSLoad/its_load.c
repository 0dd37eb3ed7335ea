#define _GNU_SOURCE
#include "its_load.h"

#include <sys/epoll.h>

int its_load_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int its_load_epoll_add(int epfd, int fd, uint64_t token) {
    struct epoll_event event = {.events = EPOLLIN, .data.u64 = token};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
}

int its_load_epoll_wait(int epfd, uint64_t *tokens, int capacity, int timeout_ms) {
    struct epoll_event events[64];
    if (capacity > 64) capacity = 64;
    int count = epoll_wait(epfd, events, capacity, timeout_ms);
    for (int index = 0; index < count; index++) tokens[index] = events[index].data.u64;
    return count;
}

#define _GNU_SOURCE 1
#include "its_support.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

int its_eventfd(unsigned int initval, int nonblock) {
    return eventfd(initval, EFD_CLOEXEC | (nonblock ? EFD_NONBLOCK : 0));
}

int its_memfd_create(const char *name, int allow_sealing) {
    return memfd_create(name, MFD_CLOEXEC | (allow_sealing ? MFD_ALLOW_SEALING : 0));
}

int its_seal_shrink(void) { return F_SEAL_SHRINK; }
int its_seal_grow(void) { return F_SEAL_GROW; }
int its_seal_seal(void) { return F_SEAL_SEAL; }
int its_add_seals(int fd, int seals) { return fcntl(fd, F_ADD_SEALS, seals); }
int its_get_seals(int fd) { return fcntl(fd, F_GET_SEALS); }

int its_errno(void) { return errno; }

size_t its_cmsg_space_fds(size_t count) { return CMSG_SPACE(count * sizeof(int)); }

void its_cmsg_put_fds(void *msghdr, void *control, const int *fds, size_t count) {
    struct msghdr *msg = msghdr;
    msg->msg_control = control;
    msg->msg_controllen = CMSG_SPACE(count * sizeof(int));
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(count * sizeof(int));
    memcpy(CMSG_DATA(cmsg), fds, count * sizeof(int));
}

size_t its_cmsg_take_fds(void *msghdr, int *fds, size_t capacity, size_t *dropped) {
    struct msghdr *msg = msghdr;
    size_t count = 0;
    *dropped = 0;
    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(msg); cmsg != NULL; cmsg = CMSG_NXTHDR(msg, cmsg)) {
        if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
        size_t n = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const unsigned char *data = CMSG_DATA(cmsg);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, data + i * sizeof(int), sizeof(int));
            if (count < capacity) {
                fds[count++] = fd;
            } else {
                close(fd);
                (*dropped)++;
            }
        }
    }
    return count;
}

int its_msg_ctrunc(const void *msghdr) { return (((const struct msghdr *)msghdr)->msg_flags & MSG_CTRUNC) != 0; }

long its_getrandom(void *buffer, size_t length) { return getrandom(buffer, length, 0); }

int its_accept4(int fd) { return accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC); }

int its_peer_credentials(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid) {
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -1;
    *pid = cred.pid;
    *uid = cred.uid;
    *gid = cred.gid;
    return 0;
}

int its_spawn_close_from(void *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np((posix_spawn_file_actions_t *)actions, from);
}

/*
 * The floor of the PHP publish benchmark: the least a native server can do
 * for one request on a Unix socket.
 *
 * It reads frames in the publish protocol's framing (a u32 big-endian length
 * and that many bytes) and answers each whole frame with 4 bytes. No
 * decoding, no event loop, no allocation: blocking read(2) and write(2) in
 * one thread per connection. What PHP pays against this server is the cost
 * of the system calls and two context switches, which no publish path over
 * a socket can go below.
 *
 * With --epoll it serves every connection from one thread waiting in
 * epoll_wait(2) on non-blocking sockets instead, as an event loop (tokio,
 * redis-server) does: one more system call per request. The difference
 * between the two is the price of the event loop itself.
 *
 *   gcc -O2 -pthread -o echo-floor echo-floor.c && ./echo-floor [--epoll] PATH
 *
 * bench/php/run.sh builds and starts it; it runs until killed.
 */
#include <fcntl.h>
#include <pthread.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Larger than any frame the benchmark sends, so one read takes a whole batch. */
#define BUFFER_SIZE (256 * 1024)

/* One connection's unanswered bytes. */
struct connection {
    int fd;
    size_t filled;
    unsigned char buffer[BUFFER_SIZE];
};

/*
 * Answers every whole frame buffered with 4 bytes and keeps a partial one.
 * Returns 0, or -1 when the connection is unusable.
 */
static int answer(struct connection *c)
{
    static const unsigned char reply[4] = {0, 0, 0, 0};
    size_t start = 0;
    while (c->filled - start >= 4) {
        uint32_t len = (uint32_t)c->buffer[start] << 24 | (uint32_t)c->buffer[start + 1] << 16 |
                       (uint32_t)c->buffer[start + 2] << 8 | c->buffer[start + 3];
        if (len > BUFFER_SIZE - 4)
            return -1;
        if (c->filled - start < 4 + (size_t)len)
            break;
        if (write(c->fd, reply, sizeof reply) != sizeof reply)
            return -1;
        start += 4 + len;
    }
    memmove(c->buffer, c->buffer + start, c->filled - start);
    c->filled -= start;
    return 0;
}

/* Blocking mode: one thread per connection. */
static void *serve(void *arg)
{
    struct connection *c = arg;
    for (;;) {
        ssize_t n = read(c->fd, c->buffer + c->filled, BUFFER_SIZE - c->filled);
        if (n <= 0)
            break;
        c->filled += (size_t)n;
        if (answer(c) < 0)
            break;
    }
    close(c->fd);
    free(c);
    return NULL;
}

/* Event-loop mode: every connection from this thread, woken by epoll. */
static void serve_epoll(int listener)
{
    int poller = epoll_create1(0);
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(poller, EPOLL_CTL_ADD, listener, &event);
    for (;;) {
        struct epoll_event ready[16];
        int n = epoll_wait(poller, ready, 16, -1);
        for (int i = 0; i < n; i++) {
            struct connection *c = ready[i].data.ptr;
            if (c == NULL) {
                int fd = accept(listener, NULL, NULL);
                if (fd < 0)
                    continue;
                c = calloc(1, sizeof *c);
                c->fd = fd;
                fcntl(fd, F_SETFL, O_NONBLOCK);
                struct epoll_event added = {.events = EPOLLIN | EPOLLET, .data.ptr = c};
                epoll_ctl(poller, EPOLL_CTL_ADD, fd, &added);
                continue;
            }
            /*
             * Edge-triggered: read until a read comes back short (as tokio
             * does, the socket is then drained and the next bytes bring a
             * new edge) or would block.
             */
            for (;;) {
                size_t room = BUFFER_SIZE - c->filled;
                ssize_t got = read(c->fd, c->buffer + c->filled, room);
                if (got > 0) {
                    c->filled += (size_t)got;
                    if (answer(c) < 0) {
                        close(c->fd);
                        free(c);
                        break;
                    }
                    if ((size_t)got < room)
                        break;
                    continue;
                }
                if (got < 0 && errno == EAGAIN)
                    break;
                close(c->fd);
                free(c);
                break;
            }
        }
    }
}

int main(int argc, char **argv)
{
    int epoll = argc == 3 && strcmp(argv[1], "--epoll") == 0;
    if (argc != 2 && !epoll) {
        fprintf(stderr, "usage: %s [--epoll] SOCKET_PATH\n", argv[0]);
        return 2;
    }
    const char *path = argv[argc - 1];
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof address.sun_path) {
        fprintf(stderr, "echo-floor: socket path too long\n");
        return 2;
    }
    strcpy(address.sun_path, path);
    unlink(path);
    int listener = socket(AF_UNIX, SOCK_STREAM, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) < 0 ||
        listen(listener, 16) < 0) {
        perror("echo-floor");
        return 1;
    }
    if (epoll) {
        serve_epoll(listener);
        return 1;
    }
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0)
            continue;
        struct connection *c = calloc(1, sizeof *c);
        c->fd = fd;
        pthread_t thread;
        if (pthread_create(&thread, NULL, serve, c) != 0) {
            close(fd);
            free(c);
        } else {
            pthread_detach(thread);
        }
    }
}

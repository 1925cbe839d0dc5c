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
 *   gcc -O2 -pthread -o echo-floor echo-floor.c && ./echo-floor PATH
 *
 * bench/php/run.sh builds and starts it; it runs until killed.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Larger than any frame the benchmark sends, so one read takes a whole batch. */
#define BUFFER_SIZE (256 * 1024)

static void *serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    static const unsigned char reply[4] = {0, 0, 0, 0};
    unsigned char *buffer = malloc(BUFFER_SIZE);
    size_t filled = 0;
    for (;;) {
        ssize_t n = read(fd, buffer + filled, BUFFER_SIZE - filled);
        if (n <= 0)
            break;
        filled += (size_t)n;
        /* Answer every whole frame with 4 bytes; keep a partial one. */
        size_t start = 0;
        while (filled - start >= 4) {
            uint32_t len = (uint32_t)buffer[start] << 24 | (uint32_t)buffer[start + 1] << 16 |
                           (uint32_t)buffer[start + 2] << 8 | buffer[start + 3];
            if (len > BUFFER_SIZE - 4)
                goto done;
            if (filled - start < 4 + (size_t)len)
                break;
            if (write(fd, reply, sizeof reply) != sizeof reply)
                goto done;
            start += 4 + len;
        }
        memmove(buffer, buffer + start, filled - start);
        filled -= start;
    }
done:
    free(buffer);
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s SOCKET_PATH\n", argv[0]);
        return 2;
    }
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(argv[1]) >= sizeof address.sun_path) {
        fprintf(stderr, "echo-floor: socket path too long\n");
        return 2;
    }
    strcpy(address.sun_path, argv[1]);
    unlink(argv[1]);
    int listener = socket(AF_UNIX, SOCK_STREAM, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) < 0 ||
        listen(listener, 16) < 0) {
        perror("echo-floor");
        return 1;
    }
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0)
            continue;
        pthread_t thread;
        if (pthread_create(&thread, NULL, serve, (void *)(intptr_t)fd) != 0)
            close(fd);
        else
            pthread_detach(thread);
    }
}

/* A closed-loop load generator for line-reply protocols (the query socket, Redis RESP).
 *
 * usage: loadgen TARGET REQFILE LINES_PER_REQUEST CONNECTIONS DEPTH SECONDS [WARMUP]
 *   TARGET   a Unix socket path (contains '/') or host:port
 *   REQFILE  pre-built requests, back to back; each is LINES_PER_REQUEST '\n'-ended lines
 *            (1 for "CHECK addr\n", 7 for a RESP array "*3\r\n$9\r\nSISMEMBER\r\n...")
 * Each connection keeps DEPTH requests outstanding (1 = unpipelined) and sends one request
 * for each reply; every reply is one '\n'-ended line. One thread, epoll: it must not be the
 * bottleneck it measures. Prints one line of key=value figures (total: every reply, warm-up
 * included, for CPU per lookup). Built by bench/lookup.py.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define HIST_US 200000 /* 1 us buckets up to 200 ms, then one overflow bucket */

typedef struct {
    int fd;
    size_t next;          /* next request index */
    int outstanding;
    uint64_t *sent;       /* ring of send times, DEPTH long */
    int head, tail;
    int at_line_start;
    char first[2];        /* first two bytes of the reply line being read */
    int first_len;
    char *out;            /* bytes queued but not yet written */
    size_t out_len, out_cap;
    int want_out;
} conn_t;

static const char *reqs;
static size_t *req_off, *req_len, nreq;
static int depth;
static uint64_t hist[HIST_US + 1];
static uint64_t count, hits, errors, lat_max, total;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) { perror(what); exit(2); }

static void load_requests(const char *path, int lines_per_request) {
    FILE *f = fopen(path, "rb");
    if (!f) die(path);
    struct stat st;
    if (fstat(fileno(f), &st) < 0) die("fstat");
    char *buf = malloc(st.st_size + 1);
    if (fread(buf, 1, st.st_size, f) != (size_t)st.st_size) die("fread");
    fclose(f);
    size_t cap = 1024, start = 0;
    int lines = 0;
    req_off = malloc(cap * sizeof(size_t));
    req_len = malloc(cap * sizeof(size_t));
    for (size_t i = 0; i < (size_t)st.st_size; i++) {
        if (buf[i] != '\n' || ++lines < lines_per_request) continue;
        if (nreq == cap) {
            cap *= 2;
            req_off = realloc(req_off, cap * sizeof(size_t));
            req_len = realloc(req_len, cap * sizeof(size_t));
        }
        req_off[nreq] = start;
        req_len[nreq++] = i + 1 - start;
        start = i + 1;
        lines = 0;
    }
    if (!nreq) { fprintf(stderr, "no requests in %s\n", path); exit(2); }
    reqs = buf;
}

static int connect_to(const char *target) {
    int fd;
    if (strchr(target, '/')) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        strncpy(sa.sun_path, target, sizeof(sa.sun_path) - 1);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) die(target);
    } else {
        char host[256];
        const char *colon = strrchr(target, ':');
        if (!colon) { fprintf(stderr, "bad target %s\n", target); exit(2); }
        snprintf(host, sizeof(host), "%.*s", (int)(colon - target), target);
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
        if (getaddrinfo(host, colon + 1, &hints, &ai) != 0) { fprintf(stderr, "resolve %s\n", target); exit(2); }
        fd = socket(ai->ai_family, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) die(target);
        freeaddrinfo(ai);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void queue_request(conn_t *c, uint64_t t) {
    size_t i = c->next;
    c->next = (c->next + 1) % nreq;
    if (c->out_len + req_len[i] > c->out_cap) {
        c->out_cap = (c->out_len + req_len[i]) * 2;
        c->out = realloc(c->out, c->out_cap);
    }
    memcpy(c->out + c->out_len, reqs + req_off[i], req_len[i]);
    c->out_len += req_len[i];
    c->sent[c->tail] = t;
    c->tail = (c->tail + 1) % depth;
    c->outstanding++;
}

static void flush_out(int ep, conn_t *c) {
    while (c->out_len) {
        ssize_t n = write(c->fd, c->out, c->out_len);
        if (n < 0) {
            if (errno == EAGAIN) break;
            die("write");
        }
        memmove(c->out, c->out + n, c->out_len - n);
        c->out_len -= n;
    }
    int want = c->out_len > 0;
    if (want != c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = want;
    }
}

static void reply_done(conn_t *c, uint64_t t, int measuring) {
    uint64_t lat = t - c->sent[c->head];
    c->head = (c->head + 1) % depth;
    c->outstanding--;
    total++;
    if (!measuring) return;
    count++;
    if (c->first[0] == 'B' || (c->first[0] == ':' && c->first[1] == '1')) hits++;
    if (c->first[0] == 'E' || c->first[0] == '-') errors++;
    uint64_t us = lat / 1000;
    hist[us < HIST_US ? us : HIST_US]++;
    if (lat > lat_max) lat_max = lat;
}

/* Read what arrived, count the completed reply lines; returns how many completed. */
static int read_replies(conn_t *c, uint64_t t, int measuring) {
    static char buf[1 << 16];
    int done = 0;
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof(buf));
        if (n < 0 && errno == EAGAIN) break;
        if (n <= 0) { fprintf(stderr, "server closed a connection\n"); exit(2); }
        for (ssize_t i = 0; i < n; i++) {
            if (c->at_line_start) { c->first_len = 0; c->at_line_start = 0; }
            if (c->first_len < 2) c->first[c->first_len++] = buf[i];
            if (buf[i] == '\n') {
                reply_done(c, t, measuring);
                done++;
                c->at_line_start = 1;
            }
        }
        if (n < (ssize_t)sizeof(buf)) break;
    }
    return done;
}

static uint64_t percentile(double p) {
    uint64_t want = (uint64_t)(p * count), seen = 0;
    for (int i = 0; i <= HIST_US; i++) {
        seen += hist[i];
        if (seen > want) return i;
    }
    return HIST_US;
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: %s TARGET REQFILE LINES_PER_REQUEST CONNECTIONS DEPTH SECONDS [WARMUP]\n", argv[0]);
        return 2;
    }
    int lines_per_request = atoi(argv[3]), nconn = atoi(argv[4]);
    depth = atoi(argv[5]);
    double seconds = atof(argv[6]), warmup = argc > 7 ? atof(argv[7]) : 0.5;
    load_requests(argv[2], lines_per_request);

    int ep = epoll_create1(0);
    conn_t *conns = calloc(nconn, sizeof(conn_t));
    uint64_t t0 = now_ns();
    for (int i = 0; i < nconn; i++) {
        conn_t *c = &conns[i];
        c->fd = connect_to(argv[1]);
        c->sent = calloc(depth, sizeof(uint64_t));
        c->next = ((size_t)i * 7919u) % nreq;
        c->at_line_start = 1;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        for (int d = 0; d < depth; d++) queue_request(c, t0);
        flush_out(ep, c);
    }
    uint64_t start = now_ns() + (uint64_t)(warmup * 1e9), end = start + (uint64_t)(seconds * 1e9);
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, 1000);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        uint64_t t = now_ns();
        if (t >= end) break;
        int measuring = t >= start;
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            if (events[i].events & EPOLLIN) {
                int done = read_replies(c, t, measuring);
                for (int k = 0; k < done; k++) queue_request(c, t);
            }
            flush_out(ep, c);
        }
    }
    double elapsed = seconds;
    printf("count=%llu seconds=%.3f rps=%.0f p50_us=%llu p99_us=%llu p999_us=%llu max_us=%llu hits=%llu errors=%llu total=%llu\n",
           (unsigned long long)count, elapsed, count / elapsed, (unsigned long long)percentile(0.50),
           (unsigned long long)percentile(0.99), (unsigned long long)percentile(0.999),
           (unsigned long long)(lat_max / 1000), (unsigned long long)hits, (unsigned long long)errors,
           (unsigned long long)total);
    return 0;
}

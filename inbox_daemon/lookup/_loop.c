/* The query loop: one thread, epoll, the whole request loop in C, without the GIL.
 *
 * Loop(tables, listeners, max_connections, max_per_peer, idle_ms, request_ms, high_water)
 *   listeners   [(fd, is_unix), ...]: bound, listening, non-blocking sockets Python owns
 *
 * The thread accepts, reads, frames lines (LF or CRLF, at most MAX_LINE bytes before the LF),
 * answers ``CHECK <plain address>`` and ``PING`` itself (the very fast path of
 * protocol.Responder.respond, byte-identical) and writes. Every other line is handed to Python
 * (``take()``, signalled on ``notify_fd``): the connection stops reading until Python's reply
 * comes back through ``deliver()``, so replies keep their order. Python thereby answers STATS,
 * ORDER, errors and learning with the reference code itself.
 *
 * Fairness (docs/query-protocol.md, "Limits"): a global connection cap and a cap per peer (the
 * uid from SO_PEERCRED on the Unix socket and of the other end on loopback TCP, the IP address
 * on other TCP), refused with
 * ``ERR too many connections``; a request line must be complete within request_ms of its first
 * byte (more bytes do not extend it); a connection with no progress (no request completed, no
 * reply byte taken) for idle_ms is closed; a client that does not read its replies stops being
 * read past high_water bytes of replies. Counters tell Python what to log.
 */
#define _GNU_SOURCE
#include "_tables.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define READ_SIZE 16384
#define PEER_BUCKETS 4096
#define MAX_LISTENERS 8
#define ACCEPTS_PER_WAKE 256
#define ERR_TOO_MANY "ERR too many connections\n"
#define ERR_TOO_LONG "ERR line too long\n"
#define TAG_LISTENER (1ull << 62)
#define TAG_WAKE (1ull << 61)
#define CLOSE_REPLY ((size_t)-1) /* deliver()ed None: close the connection */

enum { C_ACCEPTED, C_REFUSED_GLOBAL, C_REFUSED_PEER, C_REFUSED_DESCRIPTORS, C_CLOSED_IDLE, C_CLOSED_DEADLINE,
       C_LINE_TOO_LONG, C_LOOKUPS, C_HITS, C_DEFERRED, C_COUNT };
static const char *counter_names[C_COUNT] = {"accepted", "refused_global", "refused_peer", "refused_descriptors",
                                             "closed_idle", "closed_deadline", "line_too_long", "lookups", "hits",
                                             "deferred"};

typedef struct peer {
    unsigned char key[17]; /* family byte, then the uid or the address */
    int count;
    struct peer *next;
} peer_t;

typedef struct {
    int fd;
    uint32_t gen;
    peer_t *peer;
    uint32_t events;                 /* what epoll is asked for */
    int waiting, eof;                /* a line is with Python; the client sent FIN */
    int plen;                        /* bytes of an incomplete line in pending */
    char pending[MAX_LINE];
    char *stash;                     /* input after a deferred line, answered once Python replied */
    size_t stash_len;
    char *out;                       /* replies not yet written: out[off:len] */
    size_t out_len, out_off, out_cap;
    int64_t progress_ms, line_ms;    /* last progress; when the incomplete line began */
} conn_t;

typedef struct item {
    uint64_t id;
    size_t len;
    unsigned char peer[17];          /* to Python: the peer key, so learning can name the client */
    struct item *next;
    char data[];
} item_t;

typedef struct {
    item_t *head, *tail;
} queue_t;

typedef struct {
    PyObject_HEAD
    TablesObject *tables;
    int listeners[MAX_LISTENERS], listener_unix[MAX_LISTENERS], nlisteners;
    int max_conns, max_per_peer, idle_ms, request_ms;
    size_t high_water;
    int ep, wake_fd, notify_fd, spare_fd;
    pthread_t thread;
    int started, joined;
    volatile int stopping;
    conn_t **slots;
    uint32_t *free_slots;
    int nfree, nconns;
    uint32_t generation;     /* of connection ids: a reply for a closed connection is dropped */
    int listeners_paused;    /* out of descriptors: not accepting until the next sweep */
    peer_t *peers[PEER_BUCKETS];
    pthread_mutex_t qmu;   /* guards to_python, from_python */
    queue_t to_python, from_python;
    uint64_t counters[C_COUNT]; /* written by the thread, read atomically by Python */
    int64_t now_ms;
} LoopObject;

static int64_t
monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
count(LoopObject *l, int which, uint64_t n)
{
    __atomic_add_fetch(&l->counters[which], n, __ATOMIC_RELAXED);
}

/* -- peers ------------------------------------------------------------------------------------- */

static peer_t *
peer_get(LoopObject *l, const unsigned char *key)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (int i = 0; i < 17; i++)
        h = (h ^ key[i]) * 1099511628211ull;
    peer_t **bucket = &l->peers[h & (PEER_BUCKETS - 1)];
    for (peer_t *p = *bucket; p; p = p->next)
        if (memcmp(p->key, key, 17) == 0)
            return p;
    peer_t *p = calloc(1, sizeof(peer_t));
    if (p == NULL)
        return NULL;
    memcpy(p->key, key, 17);
    p->next = *bucket;
    *bucket = p;
    return p;
}

static void
peer_release(LoopObject *l, peer_t *peer)
{
    if (--peer->count > 0)
        return;
    for (int b = 0; b < PEER_BUCKETS; b++) {
        for (peer_t **p = &l->peers[b]; *p; p = &(*p)->next) {
            if (*p == peer) {
                *p = peer->next;
                free(peer);
                return;
            }
        }
    }
}

static int
is_loopback(const struct sockaddr_storage *sa)
{
    if (sa->ss_family == AF_INET)
        return ((const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr)[0] == 127;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

/* The uid owning the other end of a loopback TCP connection: one exact sock_diag(7) lookup by
 * the 4-tuple, as lookup/limits.py's loopback_uid does (every local user connects from
 * 127.0.0.1, so there the address names nobody). -1 where the kernel does not say. */
static int
loopback_uid(int fd, const struct sockaddr_storage *peer, uid_t *uid)
{
    struct sockaddr_storage local;
    socklen_t len = sizeof(local);
    if (getsockname(fd, (struct sockaddr *)&local, &len) < 0 || local.ss_family != peer->ss_family)
        return -1;
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 req;
    } msg;
    memset(&msg, 0, sizeof(msg));
    msg.nlh.nlmsg_len = sizeof(msg);
    msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    msg.nlh.nlmsg_flags = NLM_F_REQUEST;
    msg.req.sdiag_family = (unsigned char)peer->ss_family;
    msg.req.sdiag_protocol = IPPROTO_TCP;
    msg.req.idiag_states = ~0u;
    msg.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE; /* no cookie: found by the tuple */
    msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    if (peer->ss_family == AF_INET) {
        const struct sockaddr_in *p = (const struct sockaddr_in *)peer, *l = (const struct sockaddr_in *)&local;
        msg.req.id.idiag_sport = p->sin_port;
        msg.req.id.idiag_dport = l->sin_port;
        memcpy(msg.req.id.idiag_src, &p->sin_addr, 4);
        memcpy(msg.req.id.idiag_dst, &l->sin_addr, 4);
    }
    else {
        const struct sockaddr_in6 *p = (const struct sockaddr_in6 *)peer, *l = (const struct sockaddr_in6 *)&local;
        msg.req.id.idiag_sport = p->sin6_port;
        msg.req.id.idiag_dport = l->sin6_port;
        memcpy(msg.req.id.idiag_src, &p->sin6_addr, 16);
        memcpy(msg.req.id.idiag_dst, &l->sin6_addr, 16);
    }
    int diag = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (diag < 0)
        return -1;
    struct timeval wait = {.tv_sec = 1};
    setsockopt(diag, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof(wait));
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    union {
        struct nlmsghdr nlh;
        char bytes[1024];
    } reply;
    int found = -1;
    if (sendto(diag, &msg, sizeof(msg), 0, (struct sockaddr *)&kernel, sizeof(kernel)) == (ssize_t)sizeof(msg)) {
        ssize_t n = recv(diag, &reply, sizeof(reply), 0);
        if (n >= (ssize_t)NLMSG_LENGTH(sizeof(struct inet_diag_msg)) && reply.nlh.nlmsg_type == SOCK_DIAG_BY_FAMILY) {
            *uid = ((const struct inet_diag_msg *)NLMSG_DATA(&reply.nlh))->idiag_uid;
            found = 0;
        }
    }
    close(diag);
    return found;
}

/* The peer's identity: SO_PEERCRED's uid on a Unix socket, the owner's uid on loopback TCP, the
 * address on other TCP (lookup/limits.py's peer_identity, byte for byte the same rule). */
static int
peer_key(int fd, int is_unix, const struct sockaddr_storage *sa, unsigned char key[17])
{
    memset(key, 0, 17);
    uid_t uid;
    if (is_unix) {
        struct ucred cred;
        socklen_t len = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
            return -1;
        key[0] = AF_UNIX;
        memcpy(key + 1, &cred.uid, sizeof(cred.uid));
    }
    else if (is_loopback(sa) && loopback_uid(fd, sa, &uid) == 0) {
        key[0] = AF_UNIX; /* a user, as on the Unix socket */
        memcpy(key + 1, &uid, sizeof(uid));
    }
    else if (sa->ss_family == AF_INET) {
        key[0] = AF_INET;
        memcpy(key + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    }
    else {
        key[0] = AF_INET6;
        memcpy(key + 1, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    }
    return 0;
}

/* -- connections ------------------------------------------------------------------------------- */

static void
conn_close(LoopObject *l, uint32_t slot)
{
    conn_t *c = l->slots[slot];
    if (c == NULL)
        return;
    close(c->fd); /* also removes it from the epoll set */
    peer_release(l, c->peer);
    free(c->stash);
    free(c->out);
    free(c);
    l->slots[slot] = NULL;
    l->free_slots[l->nfree++] = slot;
    l->nconns--;
}

static int
out_reserve(conn_t *c, size_t more)
{
    if (c->out_off && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + more <= c->out_cap)
        return 0;
    if (c->out_off) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        if (c->out_len + more <= c->out_cap)
            return 0;
    }
    size_t cap = c->out_cap ? c->out_cap : 4096;
    while (cap < c->out_len + more)
        cap *= 2;
    char *out = realloc(c->out, cap);
    if (out == NULL)
        return -1;
    c->out = out;
    c->out_cap = cap;
    return 0;
}

static int
out_append(conn_t *c, const char *data, size_t len)
{
    if (out_reserve(c, len) < 0)
        return -1;
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return 0;
}

static void
notify_python(LoopObject *l)
{
    uint64_t one = 1;
    ssize_t rc = write(l->notify_fd, &one, 8);
    (void)rc; /* EAGAIN: the counter is already nonzero, Python will look */
}

/* Hand a line to Python; the connection waits for its reply. -1 on memory failure. */
static int
defer(LoopObject *l, uint32_t slot, conn_t *c, const char *line, size_t len)
{
    item_t *item = malloc(sizeof(item_t) + len);
    if (item == NULL)
        return -1;
    item->id = (uint64_t)c->gen << 32 | slot;
    item->len = len;
    item->next = NULL;
    memcpy(item->peer, c->peer->key, sizeof(item->peer));
    memcpy(item->data, line, len);
    pthread_mutex_lock(&l->qmu);
    int was_empty = l->to_python.head == NULL;
    if (was_empty)
        l->to_python.head = item;
    else
        l->to_python.tail->next = item;
    l->to_python.tail = item;
    pthread_mutex_unlock(&l->qmu);
    if (was_empty)
        notify_python(l);
    c->waiting = 1;
    count(l, C_DEFERRED, 1);
    return 0;
}

/* One complete line (without LF/CRLF). -1 when the connection must close. */
static int
answer_line(LoopObject *l, uint32_t slot, conn_t *c, const char *line, size_t len)
{
    if (is_plain_check((const unsigned char *)line, (Py_ssize_t)len)) {
        TablesObject *t = l->tables;
        uint64_t high, low;
        if (tables_digest_address(t, line + 6, len - 6, &high, &low) < 0) /* HMAC: needs no GIL */
            return defer(l, slot, c, line, len); /* OpenSSL failed: Python answers (or fails closed) */
        pthread_mutex_lock(&t->mu);
        uint64_t packed = tables_lookup(t, high, low);
        pthread_mutex_unlock(&t->mu);
        if (out_reserve(c, MAX_REPLY) < 0)
            return -1;
        count(l, C_LOOKUPS, 1);
        if (packed) {
            count(l, C_HITS, 1);
            c->out_len = put_blocked(c->out + c->out_len, packed) - c->out;
            return 0;
        }
        return out_append(c, "OK\n", 3);
    }
    if (len == 4 && memcmp(line, "PING", 4) == 0)
        return out_append(c, "PONG\n", 5);
    return defer(l, slot, c, line, len);
}

/* Frame and answer data; stash what follows a deferred line. -1 when the connection must close. */
static int
feed(LoopObject *l, uint32_t slot, conn_t *c, const char *data, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        if (c->waiting) {
            char *stash = malloc(len - pos);
            if (stash == NULL)
                return -1;
            memcpy(stash, data + pos, len - pos);
            c->stash = stash;
            c->stash_len = len - pos;
            return 0;
        }
        const char *lf = memchr(data + pos, '\n', len - pos);
        size_t n = (lf ? (size_t)(lf - data) : len) - pos;
        if ((size_t)c->plen + n > MAX_LINE) {
            count(l, C_LINE_TOO_LONG, 1);
            out_append(c, ERR_TOO_LONG, sizeof(ERR_TOO_LONG) - 1);
            c->eof = 1; /* nothing more is read: the replies so far, the error, then close */
            c->plen = 0;
            return 0;
        }
        if (c->plen == 0 && n)
            c->line_ms = l->now_ms;
        memcpy(c->pending + c->plen, data + pos, n);
        c->plen += (int)n;
        if (!lf)
            return 0;
        pos += n + 1;
        size_t size = (size_t)c->plen;
        c->plen = 0;
        if (size && c->pending[size - 1] == '\r')
            size--;
        c->progress_ms = l->now_ms;
        if (answer_line(l, slot, c, c->pending, size) < 0)
            return -1;
    }
    return 0;
}

/* Write what can be written; set what epoll watches. -1 when the connection must close. */
static int
flush(LoopObject *l, conn_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR)
                continue;
            return -1;
        }
        c->out_off += (size_t)n;
        c->progress_ms = l->now_ms;
    }
    size_t unsent = c->out_len - c->out_off;
    if (unsent == 0)
        c->out_off = c->out_len = 0;
    if (c->eof && !c->waiting && unsent == 0)
        return -1; /* everything answered: close */
    return (unsent ? EPOLLOUT : 0) | (!c->waiting && !c->eof && unsent < l->high_water ? EPOLLIN : 0);
}

static void
set_events(LoopObject *l, uint32_t slot, conn_t *c, uint32_t events)
{
    if (events == c->events)
        return;
    struct epoll_event ev = {.events = events, .data.u64 = slot};
    epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = events;
}

/* After any change to a connection: write, re-arm, or close it. */
static void
settle(LoopObject *l, uint32_t slot)
{
    conn_t *c = l->slots[slot];
    int events = flush(l, c);
    if (events < 0)
        conn_close(l, slot);
    else
        set_events(l, slot, c, (uint32_t)events);
}

static void
on_readable(LoopObject *l, uint32_t slot, char *buffer)
{
    conn_t *c = l->slots[slot];
    ssize_t n = recv(c->fd, buffer, READ_SIZE, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        if (n < 0) { /* reset: nobody to answer */
            conn_close(l, slot);
            return;
        }
        c->eof = 1; /* a half-closed client still gets every reply */
        c->plen = 0;
    }
    else if (feed(l, slot, c, buffer, (size_t)n) < 0) {
        conn_close(l, slot);
        return;
    }
    settle(l, slot);
}

static void
refuse(LoopObject *l, int fd, int which)
{
    ssize_t rc = send(fd, ERR_TOO_MANY, sizeof(ERR_TOO_MANY) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)rc;
    close(fd);
    count(l, which, 1);
}

static void
on_accept(LoopObject *l, int index)
{
    int lfd = l->listeners[index], is_unix = l->listener_unix[index];
    for (int k = 0; k < ACCEPTS_PER_WAKE; k++) {
        struct sockaddr_storage sa;
        socklen_t salen = sizeof(sa);
        int fd = accept4(lfd, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if ((errno == EMFILE || errno == ENFILE) && l->spare_fd < 0) {
                /* No spare either: stop watching the listener until the next sweep, rather than
                 * spin on it while it stays readable. */
                struct epoll_event off = {.events = 0, .data.u64 = TAG_LISTENER | (uint64_t)index};
                epoll_ctl(l->ep, EPOLL_CTL_MOD, lfd, &off);
                l->listeners_paused = 1;
                count(l, C_REFUSED_DESCRIPTORS, 1);
                return;
            }
            if (errno == EMFILE || errno == ENFILE) {
                /* Out of descriptors: free the spare one to take the connection off the queue
                 * and refuse it, rather than leave it there and spin on a readable listener. */
                close(l->spare_fd);
                fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd >= 0)
                    refuse(l, fd, C_REFUSED_DESCRIPTORS);
                l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                continue;
            }
            return;
        }
        if (l->nconns >= l->max_conns || l->nfree == 0) {
            refuse(l, fd, C_REFUSED_GLOBAL);
            continue;
        }
        unsigned char key[17];
        peer_t *peer = peer_key(fd, is_unix, &sa, key) < 0 ? NULL : peer_get(l, key);
        if (peer == NULL) {
            close(fd);
            continue;
        }
        if (peer->count >= l->max_per_peer) {
            refuse(l, fd, C_REFUSED_PEER);
            continue;
        }
        peer->count++;
        conn_t *c = calloc(1, sizeof(conn_t));
        if (c == NULL) {
            peer_release(l, peer);
            close(fd);
            continue;
        }
        if (!is_unix) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        uint32_t slot = l->free_slots[--l->nfree];
        c->fd = fd;
        c->gen = ++l->generation;
        c->peer = peer;
        c->progress_ms = l->now_ms;
        c->events = EPOLLIN;
        l->slots[slot] = c;
        l->nconns++;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = slot};
        if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            conn_close(l, slot);
            continue;
        }
        count(l, C_ACCEPTED, 1);
    }
}

/* Python's replies to deferred lines: append, then go on with what the client sent after. */
static void
on_replies(LoopObject *l)
{
    uint64_t drained;
    ssize_t rc = read(l->wake_fd, &drained, 8);
    (void)rc;
    pthread_mutex_lock(&l->qmu);
    item_t *item = l->from_python.head;
    l->from_python.head = l->from_python.tail = NULL;
    pthread_mutex_unlock(&l->qmu);
    while (item != NULL) {
        item_t *next = item->next;
        uint32_t slot = (uint32_t)item->id, gen = (uint32_t)(item->id >> 32);
        conn_t *c = slot < (uint32_t)l->max_conns ? l->slots[slot] : NULL;
        if (c != NULL && c->gen == gen && c->waiting && item->len == CLOSE_REPLY)
            conn_close(l, slot); /* Python failed to answer: end the session, as asyncio would */
        else if (c != NULL && c->gen == gen && c->waiting) {
            c->waiting = 0;
            char *stash = c->stash;
            size_t stash_len = c->stash_len;
            c->stash = NULL;
            c->stash_len = 0;
            int failed = out_append(c, item->data, item->len) < 0 || (stash && feed(l, slot, c, stash, stash_len) < 0);
            free(stash);
            if (failed)
                conn_close(l, slot);
            else
                settle(l, slot);
        }
        free(item);
        item = next;
    }
}

static void
sweep(LoopObject *l)
{
    if (l->listeners_paused) {
        if (l->spare_fd < 0)
            l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        for (int i = 0; i < l->nlisteners; i++) {
            struct epoll_event on = {.events = EPOLLIN, .data.u64 = TAG_LISTENER | (uint64_t)i};
            epoll_ctl(l->ep, EPOLL_CTL_MOD, l->listeners[i], &on);
        }
        l->listeners_paused = 0;
    }
    for (int slot = 0; slot < l->max_conns; slot++) {
        conn_t *c = l->slots[slot];
        if (c == NULL || c->waiting)
            continue;
        if (c->plen && l->now_ms - c->line_ms > l->request_ms) {
            count(l, C_CLOSED_DEADLINE, 1);
            conn_close(l, (uint32_t)slot);
        }
        else if (l->now_ms - c->progress_ms > l->idle_ms) {
            count(l, C_CLOSED_IDLE, 1);
            conn_close(l, (uint32_t)slot);
        }
    }
}

static void *
run(void *arg)
{
    LoopObject *l = arg;
    char *buffer = malloc(READ_SIZE);
    struct epoll_event events[256];
    int interval = (l->request_ms < l->idle_ms ? l->request_ms : l->idle_ms) / 4;
    if (interval < 5)
        interval = 5;
    l->now_ms = monotonic_ms();
    int64_t next_sweep = l->now_ms + interval;
    while (!l->stopping && buffer != NULL) {
        int n = epoll_wait(l->ep, events, 256, (int)(next_sweep - l->now_ms > 0 ? next_sweep - l->now_ms : 0));
        l->now_ms = monotonic_ms();
        for (int i = 0; i < n; i++) {
            uint64_t tag = events[i].data.u64;
            if (tag & TAG_WAKE)
                on_replies(l);
            else if (tag & TAG_LISTENER)
                on_accept(l, (int)(tag & 0xff));
            else if (l->slots[tag] != NULL) {
                uint32_t slot = (uint32_t)tag;
                if (events[i].events & (EPOLLERR | EPOLLHUP))
                    conn_close(l, slot); /* both directions gone: nobody to answer */
                else if (events[i].events & EPOLLIN)
                    on_readable(l, slot, buffer);
                else
                    settle(l, slot);
            }
        }
        if (l->now_ms >= next_sweep) {
            sweep(l);
            next_sweep = l->now_ms + interval;
        }
    }
    free(buffer);
    for (int slot = 0; slot < l->max_conns; slot++) {
        if (l->slots[slot] != NULL) {
            flush(l, l->slots[slot]); /* one last try for replies already computed */
            conn_close(l, (uint32_t)slot);
        }
    }
    return NULL;
}

/* -- the Python type --------------------------------------------------------------------------- */

static void
free_queue(queue_t *q)
{
    for (item_t *item = q->head, *next; item != NULL; item = next) {
        next = item->next;
        free(item);
    }
    q->head = q->tail = NULL;
}

static void
Loop_join(LoopObject *l)
{
    if (!l->started || l->joined)
        return;
    l->stopping = 1;
    uint64_t one = 1;
    ssize_t rc = write(l->wake_fd, &one, 8);
    (void)rc;
    Py_BEGIN_ALLOW_THREADS
    pthread_join(l->thread, NULL);
    Py_END_ALLOW_THREADS
    l->joined = 1;
}

static void
Loop_dealloc(LoopObject *l)
{
    Loop_join(l);
    for (int b = 0; b < PEER_BUCKETS; b++)
        for (peer_t *p = l->peers[b], *next; p != NULL; p = next) {
            next = p->next;
            free(p);
        }
    free_queue(&l->to_python);
    free_queue(&l->from_python);
    free(l->slots);
    free(l->free_slots);
    int fds[] = {l->ep, l->wake_fd, l->notify_fd, l->spare_fd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        if (fds[i] > 0)
            close(fds[i]);
    pthread_mutex_destroy(&l->qmu);
    Py_XDECREF(l->tables);
    Py_TYPE(l)->tp_free((PyObject *)l);
}

static int
Loop_init(LoopObject *l, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"tables", "listeners", "max_connections", "max_per_peer", "idle_ms", "request_ms",
                            "high_water", NULL};
    PyObject *tables, *listeners;
    Py_ssize_t high_water;
    if (l->ep)
        return PyErr_Format(PyExc_RuntimeError, "Loop.__init__ called twice"), -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!iiiin:Loop", names, &TablesType, &tables, &PyList_Type,
                                     &listeners, &l->max_conns, &l->max_per_peer, &l->idle_ms, &l->request_ms,
                                     &high_water))
        return -1;
    if (l->max_conns < 1 || l->max_per_peer < 1 || l->idle_ms < 1 || l->request_ms < 1 || high_water < 1 ||
        PyList_GET_SIZE(listeners) > MAX_LISTENERS) {
        PyErr_SetString(PyExc_ValueError, "Loop: limits must be positive, at most 8 listeners");
        return -1;
    }
    if (((TablesObject *)tables)->mac == NULL) {
        PyErr_SetString(PyExc_ValueError, "Loop: the tables have no pseudonym key");
        return -1;
    }
    l->high_water = (size_t)high_water;
    l->ep = l->wake_fd = l->notify_fd = l->spare_fd = -1;
    pthread_mutex_init(&l->qmu, NULL);
    Py_INCREF(tables);
    l->tables = (TablesObject *)tables;
    l->ep = epoll_create1(EPOLL_CLOEXEC);
    l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    l->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    l->slots = calloc((size_t)l->max_conns, sizeof(conn_t *));
    l->free_slots = calloc((size_t)l->max_conns, sizeof(uint32_t));
    if (l->ep < 0 || l->wake_fd < 0 || l->notify_fd < 0 || !l->slots || !l->free_slots) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    for (int i = l->max_conns - 1; i >= 0; i--)
        l->free_slots[l->nfree++] = (uint32_t)i;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_WAKE};
    if (epoll_ctl(l->ep, EPOLL_CTL_ADD, l->wake_fd, &ev) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(listeners); i++) {
        int fd, is_unix;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(listeners, i), "ip:listener", &fd, &is_unix))
            return -1;
        struct epoll_event lev = {.events = EPOLLIN, .data.u64 = TAG_LISTENER | (uint64_t)i};
        if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &lev) < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        l->listeners[i] = fd;
        l->listener_unix[i] = is_unix;
        l->nlisteners++;
    }
    return 0;
}

static PyObject *
Loop_start(LoopObject *l, PyObject *Py_UNUSED(arg))
{
    if (l->ep <= 0 || l->started)
        return PyErr_Format(PyExc_RuntimeError, "Loop.start(): not initialised, or started already");
    int rc = pthread_create(&l->thread, NULL, run, l);
    if (rc != 0) {
        errno = rc;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    l->started = 1;
    Py_RETURN_NONE;
}

static PyObject *
Loop_stop(LoopObject *l, PyObject *Py_UNUSED(arg))
{
    Loop_join(l);
    Py_RETURN_NONE;
}

static PyObject *
Loop_take(LoopObject *l, PyObject *Py_UNUSED(arg))
{
    pthread_mutex_lock(&l->qmu);
    item_t *item = l->to_python.head;
    l->to_python.head = l->to_python.tail = NULL;
    pthread_mutex_unlock(&l->qmu);
    PyObject *list = PyList_New(0);
    for (item_t *next; item != NULL; item = next) {
        next = item->next;
        PyObject *entry = list ? Py_BuildValue("(Ky#y#)", (unsigned long long)item->id, item->data, (Py_ssize_t)item->len,
                                               (const char *)item->peer, (Py_ssize_t)sizeof(item->peer)) : NULL;
        if (entry == NULL || PyList_Append(list, entry) < 0)
            Py_CLEAR(list);
        Py_XDECREF(entry);
        free(item);
    }
    return list;
}

static PyObject *
Loop_deliver(LoopObject *l, PyObject *replies)
{
    if (!PyList_Check(replies))
        return PyErr_Format(PyExc_TypeError, "deliver() takes a list of (id, bytes)");
    queue_t q = {NULL, NULL};
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(replies); i++) {
        unsigned long long id;
        PyObject *reply;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(replies, i), "KO:deliver", &id, &reply) ||
            (reply != Py_None && !PyBytes_Check(reply))) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "deliver(): a reply is bytes, or None to close");
            free_queue(&q);
            return NULL;
        }
        Py_ssize_t len = reply == Py_None ? 0 : PyBytes_GET_SIZE(reply);
        item_t *item = malloc(sizeof(item_t) + (size_t)len);
        if (item == NULL) {
            free_queue(&q);
            return PyErr_NoMemory();
        }
        item->id = id;
        item->len = reply == Py_None ? CLOSE_REPLY : (size_t)len;
        item->next = NULL;
        if (len)
            memcpy(item->data, PyBytes_AS_STRING(reply), (size_t)len);
        if (q.tail)
            q.tail->next = item;
        else
            q.head = item;
        q.tail = item;
    }
    if (q.head == NULL)
        Py_RETURN_NONE;
    pthread_mutex_lock(&l->qmu);
    if (l->from_python.tail)
        l->from_python.tail->next = q.head;
    else
        l->from_python.head = q.head;
    l->from_python.tail = q.tail;
    pthread_mutex_unlock(&l->qmu);
    uint64_t one = 1;
    ssize_t rc = write(l->wake_fd, &one, 8);
    (void)rc;
    Py_RETURN_NONE;
}

static PyObject *
Loop_counters(LoopObject *l, PyObject *Py_UNUSED(arg))
{
    PyObject *figures = PyDict_New();
    for (int i = 0; figures && i < C_COUNT; i++) {
        PyObject *value = PyLong_FromUnsignedLongLong(__atomic_load_n(&l->counters[i], __ATOMIC_RELAXED));
        if (value == NULL || PyDict_SetItemString(figures, counter_names[i], value) < 0)
            Py_CLEAR(figures);
        Py_XDECREF(value);
    }
    PyObject *value = figures ? PyLong_FromLong(__atomic_load_n(&l->nconns, __ATOMIC_RELAXED)) : NULL;
    if (value == NULL || PyDict_SetItemString(figures, "connections", value) < 0)
        Py_CLEAR(figures);
    Py_XDECREF(value);
    return figures;
}

static PyObject *
Loop_notify_fd(LoopObject *l, void *Py_UNUSED(closure))
{
    return PyLong_FromLong(l->notify_fd);
}

static PyMethodDef Loop_methods[] = {
    {"start", (PyCFunction)Loop_start, METH_NOARGS, "Start the thread."},
    {"stop", (PyCFunction)Loop_stop, METH_NOARGS, "Stop the thread and close every connection (waits)."},
    {"take", (PyCFunction)Loop_take, METH_NOARGS, "The lines for Python: [(id, line, peer key), ...]."},
    {"deliver", (PyCFunction)Loop_deliver, METH_O, "deliver([(id, reply), ...]): Python's replies; None closes."},
    {"counters", (PyCFunction)Loop_counters, METH_NOARGS, "What the thread counted so far, and connections."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Loop_getset[] = {
    {"notify_fd", (getter)Loop_notify_fd, NULL, "readable when take() has lines (an eventfd)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject LoopType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "inbox_daemon.lookup._fastpath.Loop",
    .tp_basicsize = sizeof(LoopObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The query loop thread (see _loop.c).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Loop_init,
    .tp_dealloc = (destructor)Loop_dealloc,
    .tp_methods = Loop_methods,
    .tp_getset = Loop_getset,
};

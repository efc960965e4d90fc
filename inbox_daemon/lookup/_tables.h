/* Shared between _fastpath.c (module, Tables) and _loop.c (the query loop thread). */
#ifndef INBOX_LOOKUP_TABLES_H
#define INBOX_LOOKUP_TABLES_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>

#define MAX_LINE 1024  /* protocol.MAX_LINE: bytes before the LF, a CR included */
#define MAX_REPLY 40   /* "BLOCKED " 8 + "YYYY-MM-DDTHH:MM:SSZ" 20 + " " 1 + uint32 10 + "\n" 1 */
#define MAX_ADDRESS 320 /* keys.MAX_ADDRESS */
#define PSEUDONYM_BYTES 16 /* privacy.PSEUDONYM_BYTES: HMAC-SHA-256 truncated to 128 bits */

typedef struct pseudonym_key PseudonymKey; /* _pseudonym.c */

/* A view of BlocklistIndex's lookups that a thread without the GIL may read, with the key that
 * digests a query into the index's pseudonyms (keys.digest: HMAC-SHA-256, 128 bits).
 *
 * A key is 128 bits: its high 64 in the sorted keys, its low 64 in lows at the same position.
 * The base (keys, lows, values, directory) is the index's own array('Q') memory, published by
 * raw pointer: the index only resizes those arrays between begin() and commit(), which hold the
 * mutex, and commit() publishes the new pointers. A value changed in place is one aligned 8-byte
 * store (atomic on every 64-bit platform CPython supports). The delta's and the side table's
 * keys are mirrored here in an open-addressing table, changed only under the mutex.
 */
typedef struct {
    PyObject_HEAD
    pthread_mutex_t mu;
    int held;  /* begin() without commit() yet: only the event loop thread, which holds the GIL */
    const uint64_t *keys, *lows, *values, *directory;
    Py_ssize_t nkeys, nslots;
    int shift;  /* 64 - directory bits; 64: one slot */
    uint64_t *dhigh, *dlow, *dvals;
    unsigned char *dstate;  /* 0: empty, 1: used, 2: removed */
    size_t dcap, dused, dlive;
    PseudonymKey *mac;  /* keyed once; each digest copies its states (see _pseudonym.c) */
} TablesObject;

extern PyTypeObject TablesType;
extern PyTypeObject LoopType;
extern PyTypeObject PseudonymiserType;

int pseudonym_digest(const PseudonymKey *keyed, const unsigned char *data, size_t size, unsigned char out[PSEUDONYM_BYTES]);
PseudonymKey *pseudonym_context(const unsigned char *key, size_t size);
void pseudonym_free(PseudonymKey *keyed);

int is_plain_check(const unsigned char *line, Py_ssize_t size);
char *put_blocked(char *out, uint64_t packed);
uint64_t tables_lookup(TablesObject *t, uint64_t high, uint64_t low); /* with t->mu held */
/* The pseudonym of a canonical address (keys.BuyerKey.canonical: "email:" + it), split in halves. */
int tables_digest_address(TablesObject *t, const char *address, size_t size, uint64_t *high, uint64_t *low);

#endif

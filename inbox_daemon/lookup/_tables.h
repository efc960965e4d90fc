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
#define ADDRESS_TOP ((uint64_t)1 << 63)

/* A view of BlocklistIndex's address lookups that a thread without the GIL may read.
 *
 * The base (sorted keys, values, directory) is the index's own array('Q') memory, published by
 * raw pointer: the index only resizes those arrays between begin() and commit(), which hold the
 * mutex, and commit() publishes the new pointers. A value changed in place is one aligned 8-byte
 * store (atomic on every 64-bit platform CPython supports). The delta dict's address keys are
 * mirrored here in an open-addressing table, changed only under the mutex.
 */
typedef struct {
    PyObject_HEAD
    pthread_mutex_t mu;
    int held;  /* begin() without commit() yet: only the event loop thread, which holds the GIL */
    const uint64_t *keys, *values, *directory;
    Py_ssize_t nkeys, nslots;
    int shift;
    uint64_t *dkeys, *dvals;  /* key 0: empty, 1: removed (address keys have the top bit set) */
    size_t dcap, dused, dlive;
} TablesObject;

extern PyTypeObject TablesType;
extern PyTypeObject LoopType;
extern PyTypeObject PseudonymiserType;

typedef struct evp_mac_ctx_st EVP_MAC_CTX;
int pseudonym_digest(EVP_MAC_CTX *keyed, const unsigned char *data, size_t size, unsigned char out[PSEUDONYM_BYTES]);
EVP_MAC_CTX *pseudonym_context(const unsigned char *key, size_t size);

int is_plain_check(const unsigned char *line, Py_ssize_t size);
char *put_blocked(char *out, uint64_t packed);
uint64_t tables_lookup(TablesObject *t, uint64_t key); /* with t->mu held */
Py_hash_t hash_bytes(const char *data, Py_ssize_t size);

#endif

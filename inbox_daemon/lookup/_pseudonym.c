/* Keyed pseudonyms in C: HMAC-SHA-256 truncated to 128 bits, as keys.digest.
 *
 * HMAC (RFC 2104) is SHA-256((K ^ opad) || SHA-256((K ^ ipad) || m)). The states after the
 * two padded key blocks are computed once (pseudonym_context) and copied per digest, a struct
 * copy with no allocation, so a digest is two SHA-256 compressions for a short key and needs
 * no lock: pseudonym_digest() may run without the GIL (the query loop thread). The pure Python
 * path (hmac.digest) is the reference: tests/lookup/test_pseudonym.py compares them.
 * OpenSSL's SHA256_* calls are deprecated in 3.0 in favour of EVP_Digest*, whose contexts
 * allocate on every copy: at a lookup each that doubles the query loop's CPU (bench/lookup.py).
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "_tables.h"
#include <openssl/sha.h>
#include <string.h>

struct pseudonym_key {
    SHA256_CTX inner, outer;  /* after (K ^ ipad) and (K ^ opad): one block each */
};

/* 16 bytes of HMAC-SHA-256(the context's key, data) into out; 0, or -1 when OpenSSL fails. */
int
pseudonym_digest(const PseudonymKey *keyed, const unsigned char *data, size_t size, unsigned char out[PSEUDONYM_BYTES])
{
    unsigned char inner_hash[SHA256_DIGEST_LENGTH], full[SHA256_DIGEST_LENGTH];
    SHA256_CTX ctx = keyed->inner;
    if (!SHA256_Update(&ctx, data, size) || !SHA256_Final(inner_hash, &ctx))
        return -1;
    ctx = keyed->outer;
    if (!SHA256_Update(&ctx, inner_hash, sizeof(inner_hash)) || !SHA256_Final(full, &ctx))
        return -1;
    memcpy(out, full, PSEUDONYM_BYTES);
    return 0;
}

/* A context keyed with key (HMAC-SHA-256), or NULL with a Python error set. */
PseudonymKey *
pseudonym_context(const unsigned char *key, size_t size)
{
    unsigned char block[SHA256_CBLOCK], pad[SHA256_CBLOCK];
    memset(block, 0, sizeof(block));
    if (size > SHA256_CBLOCK) /* RFC 2104: a longer key is hashed first */
        SHA256(key, size, block);
    else
        memcpy(block, key, size);
    PseudonymKey *keyed = PyMem_RawMalloc(sizeof(PseudonymKey));
    if (keyed == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    int ok = SHA256_Init(&keyed->inner) && SHA256_Init(&keyed->outer);
    for (int i = 0; i < SHA256_CBLOCK; i++)
        pad[i] = block[i] ^ 0x36;
    ok = ok && SHA256_Update(&keyed->inner, pad, sizeof(pad));
    for (int i = 0; i < SHA256_CBLOCK; i++)
        pad[i] = block[i] ^ 0x5c;
    ok = ok && SHA256_Update(&keyed->outer, pad, sizeof(pad));
    memset(block, 0, sizeof(block));
    memset(pad, 0, sizeof(pad));
    if (!ok) {
        pseudonym_free(keyed);
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL could not key HMAC-SHA-256");
        return NULL;
    }
    return keyed;
}

void
pseudonym_free(PseudonymKey *keyed)
{
    if (keyed == NULL)
        return;
    memset(keyed, 0, sizeof(*keyed)); /* key material */
    PyMem_RawFree(keyed);
}

typedef struct {
    PyObject_HEAD
    PseudonymKey *ctx;
} PseudonymiserObject;

static int
Pseudonymiser_init(PseudonymiserObject *self, PyObject *args, PyObject *kwds)
{
    Py_buffer key;
    static char *names[] = {"key", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*:Pseudonymiser", names, &key))
        return -1;
    if (key.len < 16) {
        PyBuffer_Release(&key);
        PyErr_SetString(PyExc_ValueError, "a pseudonym key has at least 16 bytes");
        return -1;
    }
    PseudonymKey *ctx = pseudonym_context(key.buf, (size_t)key.len);
    PyBuffer_Release(&key);
    if (ctx == NULL)
        return -1;
    pseudonym_free(self->ctx);
    self->ctx = ctx;
    return 0;
}

static void
Pseudonymiser_dealloc(PseudonymiserObject *self)
{
    pseudonym_free(self->ctx);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Pseudonymiser_digest(PseudonymiserObject *self, PyObject *arg)
{
    Py_buffer data;
    unsigned char out[PSEUDONYM_BYTES];
    if (self->ctx == NULL)
        return PyErr_Format(PyExc_RuntimeError, "Pseudonymiser not initialised");
    if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE) < 0)
        return NULL;
    int rc = pseudonym_digest(self->ctx, data.buf, (size_t)data.len, out);
    PyBuffer_Release(&data);
    if (rc < 0)
        return PyErr_Format(PyExc_RuntimeError, "OpenSSL HMAC failed");
    return PyBytes_FromStringAndSize((const char *)out, PSEUDONYM_BYTES);
}

static PyObject *
Pseudonymiser_repr(PseudonymiserObject *Py_UNUSED(self))
{
    return PyUnicode_FromString("Pseudonymiser(<key hidden>)");
}

static PyMethodDef Pseudonymiser_methods[] = {
    {"digest", (PyCFunction)Pseudonymiser_digest, METH_O,
     "digest(data) -> 16 bytes: HMAC-SHA-256 under the key, truncated (privacy.KeyRing.pseudonym)."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject PseudonymiserType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "inbox_daemon.lookup._fastpath.Pseudonymiser",
    .tp_basicsize = sizeof(PseudonymiserObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Pseudonymiser(key): keyed digests of canonical buyer keys, the key scheduled once.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Pseudonymiser_init,
    .tp_dealloc = (destructor)Pseudonymiser_dealloc,
    .tp_repr = (reprfunc)Pseudonymiser_repr,
    .tp_methods = Pseudonymiser_methods,
};

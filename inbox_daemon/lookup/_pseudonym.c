/* Keyed pseudonyms in C: HMAC-SHA-256 truncated to 128 bits, as privacy.KeyRing.pseudonym.
 *
 * Pseudonymiser(key) holds an HMAC context keyed once (OpenSSL 3's EVP_MAC); every digest
 * duplicates it, so the key schedule is not redone per lookup and no state is shared between
 * callers: pseudonym_digest() may run without the GIL (the query loop thread). The pure Python
 * path (hmac.digest) is the reference: tests/lookup/test_pseudonym.py compares them.
 */
#include "_tables.h"
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

/* 16 bytes of HMAC-SHA-256(template's key, data) into out; 0, or -1 when OpenSSL fails. */
int
pseudonym_digest(EVP_MAC_CTX *keyed, const unsigned char *data, size_t size, unsigned char out[PSEUDONYM_BYTES])
{
    unsigned char full[32];
    size_t length = 0;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(keyed);
    if (ctx == NULL)
        return -1;
    int ok = EVP_MAC_update(ctx, data, size) && EVP_MAC_final(ctx, full, &length, sizeof(full)) && length == 32;
    EVP_MAC_CTX_free(ctx);
    if (!ok)
        return -1;
    memcpy(out, full, PSEUDONYM_BYTES);
    return 0;
}

/* A context keyed with key (HMAC-SHA-256), or NULL with a Python error set. */
EVP_MAC_CTX *
pseudonym_context(const unsigned char *key, size_t size)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL has no HMAC");
        return NULL;
    }
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac); /* the context keeps its own reference */
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
    if (ctx == NULL || !EVP_MAC_init(ctx, key, size, params)) {
        EVP_MAC_CTX_free(ctx);
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL could not key HMAC-SHA-256");
        return NULL;
    }
    return ctx;
}

typedef struct {
    PyObject_HEAD
    EVP_MAC_CTX *ctx;
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
    EVP_MAC_CTX *ctx = pseudonym_context(key.buf, (size_t)key.len);
    PyBuffer_Release(&key);
    if (ctx == NULL)
        return -1;
    EVP_MAC_CTX_free(self->ctx);
    self->ctx = ctx;
    return 0;
}

static void
Pseudonymiser_dealloc(PseudonymiserObject *self)
{
    EVP_MAC_CTX_free(self->ctx);
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

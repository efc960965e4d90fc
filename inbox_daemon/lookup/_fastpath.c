/* The optional C accelerator for pipelined reads: Responder.respond's fast path over many lines.
 *
 * answer_lines(lines, start, stop, tables) -> (replies, next, lookups, hits)
 *
 *   lines   a list; lines[start:stop] are answered in order while each is a bytes object of the
 *           form ``CHECK <token>`` with the token of protocol._PLAIN_ADDRESS_BYTES plus exactly one
 *           "@", not at either end (the very condition of Responder.respond's fast path).
 *   tables  BlocklistIndex.lookup_tables(): (keys, values, directory, address_shift, delta).
 *
 * It stops at the first line it does not handle and returns its position as ``next`` (``stop``
 * when it answered them all): Python answers that line, then calls again, so the order is kept.
 * ``replies`` is the concatenated reply lines, byte-identical to protocol.blocked_reply / OK;
 * ``lookups`` and ``hits`` are what Python adds to its Counters.
 *
 * The key is index.normalised_address_bytes_key's: (hash(token) & (2**63 - 1)) | 2**63, with
 * CPython's own bytes hash. Python only uses this module when that hash is the 64-bit SipHash
 * (index._FAST_HASH); it is the reference: tests/lookup/test_lookup_fastpath.py compares them.
 * No Python code runs during a call, so the index cannot change under the buffers held here.
 */

#include "_tables.h"
#include <string.h>

static unsigned char plain[256]; /* 1 for [a-z0-9._-], 2 for "@", 0 otherwise */

Py_hash_t
hash_bytes(const char *data, Py_ssize_t size)
{
#if PY_VERSION_HEX >= 0x030E0000
    return Py_HashBuffer(data, size);
#else
    return _Py_HashBytes(data, size);
#endif
}

/* 1 when line is "CHECK " + a plain address: the fast-path condition of Responder.respond
 * (protocol._plain): an address keys.address leaves unchanged. */
int
is_plain_check(const unsigned char *line, Py_ssize_t size)
{
    if (size < 6 + 3 || memcmp(line, "CHECK ", 6) != 0)
        return 0;
    const unsigned char *token = line + 6;
    Py_ssize_t n = size - 6;
    /* protocol._plain: what keys.address leaves unchanged; the rest goes to Python */
    if (token[0] == '@' || token[n - 1] == '@' || token[n - 1] == '.' || n > MAX_ADDRESS)
        return 0;
    int ats = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char kind = plain[token[i]];
        if (kind == 0)
            return 0;
        ats += kind == 2;
        if (i && token[i] == '.' && (token[i - 1] == '.' || token[i - 1] == '@'))
            return 0;
    }
    return ats == 1;
}

/* Days since 1970-01-01 -> civil date (H. Hinnant's days_from_civil, inverted); days >= 0. */
static void
civil_from_days(int64_t days, int64_t *year, unsigned *month, unsigned *day)
{
    days += 719468;
    int64_t era = days / 146097;
    unsigned doe = (unsigned)(days - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *day = doy - (153 * mp + 2) / 5 + 1;
    *month = mp < 10 ? mp + 3 : mp - 9;
    *year = (int64_t)yoe + era * 400 + (*month <= 2);
}

static char *
put_digits(char *out, unsigned value, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + value % 10);
        value /= 10;
    }
    return out + width;
}

/* "BLOCKED <ISO first-seen> <count>\n" for a nonzero packed value; returns the end. */
char *
put_blocked(char *out, uint64_t packed)
{
    uint32_t first_seen = (uint32_t)(packed >> 32), count = (uint32_t)packed;
    int64_t year;
    unsigned month, day, seconds = first_seen % 86400;
    civil_from_days(first_seen / 86400, &year, &month, &day);
    memcpy(out, "BLOCKED ", 8);
    out = put_digits(out + 8, (unsigned)year, 4); /* years 1970..2106: always 4 digits */
    *out++ = '-';
    out = put_digits(out, month, 2);
    *out++ = '-';
    out = put_digits(out, day, 2);
    *out++ = 'T';
    out = put_digits(out, seconds / 3600, 2);
    *out++ = ':';
    out = put_digits(out, seconds / 60 % 60, 2);
    *out++ = ':';
    out = put_digits(out, seconds % 60, 2);
    *out++ = 'Z';
    *out++ = ' ';
    char digits[10];
    int n = 0;
    do {
        digits[n++] = (char)('0' + count % 10);
        count /= 10;
    } while (count);
    while (n)
        *out++ = digits[--n];
    *out++ = '\n';
    return out;
}

/* packed value for key from the delta dict; 0 when absent, -1 (as error) on failure. */
static int
delta_lookup(PyObject *delta, uint64_t key, uint64_t *packed)
{
    PyObject *pykey = PyLong_FromUnsignedLongLong(key);
    if (pykey == NULL)
        return -1;
    PyObject *value = PyDict_GetItemWithError(delta, pykey); /* borrowed */
    Py_DECREF(pykey);
    if (value == NULL)
        return PyErr_Occurred() ? -1 : 0;
    *packed = PyLong_AsUnsignedLongLong(value);
    if (*packed == (uint64_t)-1 && PyErr_Occurred())
        return -1;
    return 1;
}

static int
get_q_buffer(PyObject *array, Py_buffer *view, const char *name)
{
    if (PyObject_GetBuffer(array, view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    if (view->itemsize != 8 || view->format == NULL || strcmp(view->format, "Q") != 0) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "%s must be an array('Q')", name);
        return -1;
    }
    return 0;
}

static PyObject *
answer_lines(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *lines, *keys_obj, *values_obj, *directory_obj, *delta;
    Py_ssize_t start, stop;
    int address_shift;
    if (!PyArg_ParseTuple(args, "O!nn(OOOiO!):answer_lines", &PyList_Type, &lines, &start, &stop, &keys_obj,
                          &values_obj, &directory_obj, &address_shift, &PyDict_Type, &delta))
        return NULL;
    if (start < 0 || stop > PyList_GET_SIZE(lines) || start > stop)
        return PyErr_Format(PyExc_IndexError, "answer_lines: bad range [%zd, %zd)", start, stop);
    if (address_shift < 0 || address_shift > 63)
        return PyErr_Format(PyExc_ValueError, "answer_lines: bad address shift %d", address_shift);

    Py_buffer kview, vview, dview;
    if (get_q_buffer(keys_obj, &kview, "keys") < 0)
        return NULL;
    if (get_q_buffer(values_obj, &vview, "values") < 0) {
        PyBuffer_Release(&kview);
        return NULL;
    }
    if (get_q_buffer(directory_obj, &dview, "directory") < 0) {
        PyBuffer_Release(&kview);
        PyBuffer_Release(&vview);
        return NULL;
    }
    const uint64_t *keys = kview.buf, *values = vview.buf, *directory = dview.buf;
    Py_ssize_t nkeys = kview.len / 8, nslots = dview.len / 8;
    int has_delta = PyDict_GET_SIZE(delta) > 0;

    PyObject *result = NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, (stop - start) * MAX_REPLY);
    if (out == NULL)
        goto done;
    char *write = PyBytes_AS_STRING(out);
    Py_ssize_t i = start, lookups = 0, hits = 0;
    for (; i < stop; i++) {
        PyObject *line = PyList_GET_ITEM(lines, i);
        if (!PyBytes_CheckExact(line))
            break;
        const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(line);
        Py_ssize_t size = PyBytes_GET_SIZE(line);
        if (!is_plain_check(data, size))
            break;
        Py_hash_t hash = hash_bytes((const char *)data + 6, size - 6);
        if (hash == -1 && PyErr_Occurred())
            goto fail;
        uint64_t key = ((uint64_t)hash & (ADDRESS_TOP - 1)) | ADDRESS_TOP;
        uint64_t packed = 0;
        int found = has_delta ? delta_lookup(delta, key, &packed) : 0;
        if (found < 0)
            goto fail;
        if (!found) {
            Py_ssize_t slot = (Py_ssize_t)(key >> address_shift);
            if (slot + 1 >= nslots)
                break; /* not a directory this code understands: let Python answer */
            Py_ssize_t lo = (Py_ssize_t)directory[slot], hi = (Py_ssize_t)directory[slot + 1];
            if (lo > hi || hi > nkeys)
                break;
            while (lo < hi) { /* bisect_left */
                Py_ssize_t mid = lo + (hi - lo) / 2;
                if (keys[mid] < key)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (lo < (Py_ssize_t)directory[slot + 1] && keys[lo] == key)
                packed = values[lo];
        }
        lookups++;
        if (packed) {
            hits++;
            write = put_blocked(write, packed);
        }
        else {
            memcpy(write, "OK\n", 3);
            write += 3;
        }
    }
    if (_PyBytes_Resize(&out, write - PyBytes_AS_STRING(out)) < 0)
        goto done; /* out is NULL and the error set */
    result = Py_BuildValue("(Nnnn)", out, i, lookups, hits);
    out = NULL;
    goto done;
fail:
    Py_CLEAR(out);
done:
    Py_XDECREF(out);
    PyBuffer_Release(&kview);
    PyBuffer_Release(&vview);
    PyBuffer_Release(&dview);
    return result;
}


/* -- Tables: the index's address lookups, readable without the GIL (see _tables.h) ------------- */

static int
delta_resize(TablesObject *t, size_t live)
{
    size_t cap = 16;
    while (cap < live * 2 + 2)
        cap <<= 1;
    uint64_t *keys = calloc(cap, 8), *vals = calloc(cap, 8);
    if (keys == NULL || vals == NULL) {
        free(keys);
        free(vals);
        return -1;
    }
    for (size_t i = 0; i < t->dcap; i++) {
        if (t->dkeys[i] <= 1)
            continue;
        size_t j = t->dkeys[i] & (cap - 1);
        while (keys[j])
            j = (j + 1) & (cap - 1);
        keys[j] = t->dkeys[i];
        vals[j] = t->dvals[i];
    }
    free(t->dkeys);
    free(t->dvals);
    t->dkeys = keys;
    t->dvals = vals;
    t->dcap = cap;
    t->dused = t->dlive;
    return 0;
}

/* Set key to packed in the delta mirror; packed 0 removes it. -1 on memory failure. */
static int
delta_put(TablesObject *t, uint64_t key, uint64_t packed)
{
    size_t mask = t->dcap - 1, i = key & mask, free_slot = (size_t)-1;
    if (t->dcap) {
        for (; t->dkeys[i]; i = (i + 1) & mask) {
            if (t->dkeys[i] == key) {
                if (packed)
                    t->dvals[i] = packed;
                else {
                    t->dkeys[i] = 1;
                    t->dlive--;
                }
                return 0;
            }
            if (t->dkeys[i] == 1 && free_slot == (size_t)-1)
                free_slot = i;
        }
    }
    if (!packed)
        return 0;
    if (free_slot == (size_t)-1) {
        if ((t->dused + 1) * 2 > t->dcap) {
            if (delta_resize(t, t->dlive + 1) < 0)
                return -1;
            mask = t->dcap - 1;
            for (i = key & mask; t->dkeys[i]; i = (i + 1) & mask)
                ;
        }
        free_slot = i;
        t->dused++;
    }
    t->dkeys[free_slot] = key;
    t->dvals[free_slot] = packed;
    t->dlive++;
    return 0;
}

uint64_t
tables_lookup(TablesObject *t, uint64_t key)
{
    if (t->dlive) {
        size_t mask = t->dcap - 1;
        for (size_t i = key & mask; t->dkeys[i]; i = (i + 1) & mask)
            if (t->dkeys[i] == key)
                return t->dvals[i];
    }
    Py_ssize_t slot = (Py_ssize_t)(key >> t->shift);
    if (slot + 1 >= t->nslots)
        return 0;
    Py_ssize_t lo = (Py_ssize_t)t->directory[slot], hi = (Py_ssize_t)t->directory[slot + 1], end = hi;
    if (lo > hi || hi > t->nkeys)
        return 0;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (t->keys[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < end && t->keys[lo] == key ? t->values[lo] : 0;
}

static PyObject *
Tables_new(PyTypeObject *type, PyObject *Py_UNUSED(args), PyObject *Py_UNUSED(kwds))
{
    TablesObject *t = (TablesObject *)type->tp_alloc(type, 0);
    if (t != NULL && pthread_mutex_init(&t->mu, NULL) != 0) {
        Py_DECREF(t);
        return PyErr_Format(PyExc_OSError, "pthread_mutex_init failed");
    }
    return (PyObject *)t;
}

static void
Tables_dealloc(TablesObject *t)
{
    if (t->held)
        pthread_mutex_unlock(&t->mu);
    pthread_mutex_destroy(&t->mu);
    free(t->dkeys);
    free(t->dvals);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static PyObject *
Tables_begin(TablesObject *t, PyObject *Py_UNUSED(arg))
{
    if (t->held)
        return PyErr_Format(PyExc_RuntimeError, "Tables.begin() twice without commit()");
    pthread_mutex_lock(&t->mu); /* the loop thread holds it for one lookup at a time */
    t->held = 1;
    Py_RETURN_NONE;
}

static PyObject *
Tables_commit(TablesObject *t, PyObject *args)
{
    PyObject *arrays[3], *delta;
    int shift;
    if (!PyArg_ParseTuple(args, "OOOiO!:commit", &arrays[0], &arrays[1], &arrays[2], &shift, &PyDict_Type, &delta))
        return NULL;
    if (!t->held) {
        pthread_mutex_lock(&t->mu);
        t->held = 1;
    }
    Py_buffer views[3];
    int got = 0, failed = shift < 0 || shift > 63;
    for (; got < 3 && !failed; got++)
        failed = get_q_buffer(arrays[got], &views[got], "tables") < 0;
    if (failed)
        got--;
    for (int i = 0; i < got; i++)
        PyBuffer_Release(&views[i]); /* the index keeps the arrays alive and unresized until begin() */
    if (!failed) {
        t->keys = views[0].buf;
        t->values = views[1].buf;
        t->directory = views[2].buf;
        t->nkeys = views[0].len / 8;
        t->nslots = views[2].len / 8;
        t->shift = shift;
        memset(t->dkeys, 0, t->dcap * 8);
        t->dused = t->dlive = 0;
        PyObject *key, *value;
        Py_ssize_t pos = 0;
        while (!failed && PyDict_Next(delta, &pos, &key, &value)) {
            uint64_t k = PyLong_AsUnsignedLongLong(key), v = PyLong_AsUnsignedLongLong(value);
            if (PyErr_Occurred())
                failed = 1;
            else if (k >= ADDRESS_TOP && delta_put(t, k, v) < 0)
                failed = 1, PyErr_NoMemory();
        }
    }
    if (failed) { /* answer nothing rather than from a half-published view */
        t->nslots = 0;
        t->dlive = 0;
    }
    t->held = 0;
    pthread_mutex_unlock(&t->mu);
    if (failed)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
Tables_set(TablesObject *t, PyObject *args)
{
    unsigned long long key, packed;
    if (!PyArg_ParseTuple(args, "KK:set", &key, &packed))
        return NULL;
    if (key < ADDRESS_TOP)
        Py_RETURN_NONE; /* order keys are answered by Python */
    int locked = !t->held;
    if (locked)
        pthread_mutex_lock(&t->mu);
    int rc = delta_put(t, key, packed);
    if (locked)
        pthread_mutex_unlock(&t->mu);
    if (rc < 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *
Tables_lookup(TablesObject *t, PyObject *arg)
{
    uint64_t key = PyLong_AsUnsignedLongLong(arg);
    if (key == (uint64_t)-1 && PyErr_Occurred())
        return NULL;
    int locked = !t->held;
    if (locked)
        pthread_mutex_lock(&t->mu);
    uint64_t packed = tables_lookup(t, key);
    if (locked)
        pthread_mutex_unlock(&t->mu);
    return PyLong_FromUnsignedLongLong(packed);
}

static PyObject *
Tables_memory_bytes(TablesObject *t, PyObject *Py_UNUSED(arg))
{
    return PyLong_FromSize_t(sizeof(TablesObject) + t->dcap * 16);
}

static PyMethodDef Tables_methods[] = {
    {"begin", (PyCFunction)Tables_begin, METH_NOARGS, "Hold the tables before the index resizes its arrays."},
    {"commit", (PyCFunction)Tables_commit, METH_VARARGS,
     "commit(keys, values, directory, address_shift, delta): publish the arrays, mirror the delta's "
     "address keys, release."},
    {"set", (PyCFunction)Tables_set, METH_VARARGS, "set(key, packed): mirror one delta change (0 removes)."},
    {"lookup", (PyCFunction)Tables_lookup, METH_O, "lookup(key) -> packed, as the loop thread sees it."},
    {"memory_bytes", (PyCFunction)Tables_memory_bytes, METH_NOARGS, "Bytes held beside the index's arrays."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject TablesType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "inbox_daemon.lookup._fastpath.Tables",
    .tp_basicsize = sizeof(TablesObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The index's address lookups, published for the query loop thread.",
    .tp_new = Tables_new,
    .tp_dealloc = (destructor)Tables_dealloc,
    .tp_methods = Tables_methods,
};


static PyObject *
fill_directory(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *keys_obj, *directory_obj;
    int bits;
    if (!PyArg_ParseTuple(args, "OOi:fill_directory", &keys_obj, &directory_obj, &bits))
        return NULL;
    if (bits < 0 || bits > 24)
        return PyErr_Format(PyExc_ValueError, "fill_directory: bad bits %d", bits);
    Py_buffer kview, dview;
    if (get_q_buffer(keys_obj, &kview, "keys") < 0)
        return NULL;
    if (get_q_buffer(directory_obj, &dview, "directory") < 0) {
        PyBuffer_Release(&kview);
        return NULL;
    }
    const uint64_t *keys = kview.buf;
    uint64_t *directory = dview.buf;
    Py_ssize_t nkeys = kview.len / 8, slots = (Py_ssize_t)2 << bits;
    if (dview.len / 8 != slots + 1) {
        PyBuffer_Release(&kview);
        PyBuffer_Release(&dview);
        return PyErr_Format(PyExc_ValueError, "fill_directory: the directory needs %zd slots", slots + 1);
    }
    int order_shift = 57 - bits, address_shift = 63 - bits;
    Py_ssize_t position = 0;
    for (Py_ssize_t slot = 0; slot < slots; slot++) {
        uint64_t start = slot < ((Py_ssize_t)1 << bits) ? (uint64_t)slot << order_shift : (uint64_t)slot << address_shift;
        Py_ssize_t lo = position, hi = nkeys;
        while (lo < hi) { /* bisect_left(keys, start, position) */
            Py_ssize_t mid = lo + (hi - lo) / 2;
            if (keys[mid] < start)
                lo = mid + 1;
            else
                hi = mid;
        }
        directory[slot] = (uint64_t)(position = lo);
    }
    directory[slots] = (uint64_t)nkeys;
    PyBuffer_Release(&kview);
    PyBuffer_Release(&dview);
    Py_RETURN_NONE;
}


/* The positions or values of a list as uint64; -1 with an error set. */
static int
list_u64(PyObject *list, Py_ssize_t i, uint64_t *out)
{
    *out = PyLong_AsUnsignedLongLong(PyList_GET_ITEM(list, i));
    return *out == (uint64_t)-1 && PyErr_Occurred() ? -1 : 0;
}

static PyObject *
spread(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *column, *positions, *values;
    Py_ssize_t end;
    if (!PyArg_ParseTuple(args, "OnO!O!:spread", &column, &end, &PyList_Type, &positions, &PyList_Type, &values))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(values);
    Py_buffer view;
    if (get_q_buffer(column, &view, "column") < 0)
        return NULL;
    uint64_t *data = view.buf;
    if (PyList_GET_SIZE(positions) != n || end < 0 || end + n != view.len / 8) {
        PyBuffer_Release(&view);
        return PyErr_Format(PyExc_ValueError, "spread: the column must hold end + len(values) items");
    }
    for (Py_ssize_t j = n - 1; j >= 0; j--) { /* from the right: each run moves once */
        uint64_t position, value;
        if (list_u64(positions, j, &position) < 0 || list_u64(values, j, &value) < 0 || (Py_ssize_t)position > end) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "spread: positions must be sorted and within the column");
            PyBuffer_Release(&view);
            return NULL;
        }
        if (end > (Py_ssize_t)position)
            memmove(data + position + j + 1, data + position, (size_t)(end - (Py_ssize_t)position) * 8);
        data[position + j] = value;
        end = (Py_ssize_t)position;
    }
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *
compact(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *column, *dead;
    if (!PyArg_ParseTuple(args, "OO!:compact", &column, &PyList_Type, &dead))
        return NULL;
    Py_buffer view;
    if (get_q_buffer(column, &view, "column") < 0)
        return NULL;
    uint64_t *data = view.buf;
    Py_ssize_t size = view.len / 8, n = PyList_GET_SIZE(dead), write = 0, previous = -1;
    for (Py_ssize_t j = 0; j < n; j++) {
        uint64_t position, next;
        if (list_u64(dead, j, &position) < 0 || (Py_ssize_t)position <= previous || (Py_ssize_t)position >= size) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "compact: positions must be sorted, distinct, within the column");
            PyBuffer_Release(&view);
            return NULL;
        }
        if (j == 0)
            write = (Py_ssize_t)position;
        if (j + 1 < n) {
            if (list_u64(dead, j + 1, &next) < 0) {
                PyBuffer_Release(&view);
                return NULL;
            }
        }
        else
            next = (uint64_t)size;
        Py_ssize_t run = (Py_ssize_t)next - (Py_ssize_t)position - 1;
        if (run > 0) {
            if ((Py_ssize_t)next > size) {
                PyBuffer_Release(&view);
                return PyErr_Format(PyExc_ValueError, "compact: position out of range");
            }
            memmove(data + write, data + position + 1, (size_t)run * 8);
        }
        write += run > 0 ? run : 0;
        previous = (Py_ssize_t)position;
    }
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(n ? write : size);
}


/* merge_into(keys, values, dead, new_keys, new_values, out_keys, out_values): the base without
 * the sorted positions dead, merged with the sorted new keys, written into the out arrays (their
 * size exactly that). Reads the base only: the query loop thread may read it meanwhile. */
static PyObject *
merge_into(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *arrays[4], *dead, *new_keys, *new_values;
    if (!PyArg_ParseTuple(args, "OOO!O!O!OO:merge_into", &arrays[0], &arrays[1], &PyList_Type, &dead, &PyList_Type,
                          &new_keys, &PyList_Type, &new_values, &arrays[2], &arrays[3]))
        return NULL;
    Py_buffer views[4];
    int got = 0;
    for (; got < 4; got++)
        if (get_q_buffer(arrays[got], &views[got], "merge_into") < 0)
            break;
    PyObject *result = NULL;
    if (got < 4)
        goto done;
    const uint64_t *keys = views[0].buf, *values = views[1].buf;
    uint64_t *out_keys = views[2].buf, *out_values = views[3].buf;
    Py_ssize_t n = views[0].len / 8, ndead = PyList_GET_SIZE(dead), nnew = PyList_GET_SIZE(new_keys);
    Py_ssize_t size = n - ndead + nnew;
    if (views[1].len / 8 != n || PyList_GET_SIZE(new_values) != nnew || views[2].len / 8 != size ||
        views[3].len / 8 != size) {
        PyErr_SetString(PyExc_ValueError, "merge_into: sizes do not add up");
        goto done;
    }
    Py_ssize_t i = 0, j = 0, d = 0, w = 0;
    uint64_t next_dead = 0, new_key = 0, new_value = 0;
    if (ndead && list_u64(dead, 0, &next_dead) < 0)
        goto done;
    if (nnew && (list_u64(new_keys, 0, &new_key) < 0 || list_u64(new_values, 0, &new_value) < 0))
        goto done;
    while (w < size) {
        if (i < n && d < ndead && (uint64_t)i == next_dead) { /* skip a tombstone */
            i++;
            if (++d < ndead && list_u64(dead, d, &next_dead) < 0)
                goto done;
            continue;
        }
        if (j < nnew && (i >= n || new_key < keys[i])) {
            out_keys[w] = new_key;
            out_values[w++] = new_value;
            if (++j < nnew && (list_u64(new_keys, j, &new_key) < 0 || list_u64(new_values, j, &new_value) < 0))
                goto done;
        }
        else if (i < n) {
            out_keys[w] = keys[i];
            out_values[w++] = values[i++];
        }
        else {
            PyErr_SetString(PyExc_ValueError, "merge_into: dead positions out of range");
            goto done;
        }
    }
    result = Py_NewRef(Py_None);
done:
    for (int k = 0; k < got; k++)
        PyBuffer_Release(&views[k]);
    return result;
}

static PyMethodDef methods[] = {
    {"answer_lines", answer_lines, METH_VARARGS,
     "answer_lines(lines, start, stop, tables) -> (replies, next, lookups, hits)\n\n"
     "Answer lines[start:stop] while they take Responder.respond's fast path; stop at the first\n"
     "that does not (next is its position). tables is BlocklistIndex.lookup_tables()."},
    {"fill_directory", fill_directory, METH_VARARGS,
     "fill_directory(keys, directory, bits): BlocklistIndex._index_directory's loop, in C."},
    {"spread", spread, METH_VARARGS,
     "spread(column, end, positions, values): index._spread's moves, in C (column already extended)."},
    {"merge_into", merge_into, METH_VARARGS,
     "merge_into(keys, values, dead, new_keys, new_values, out_keys, out_values): a merge into new arrays."},
    {"compact", compact, METH_VARARGS,
     "compact(column, dead) -> new length: index._compact's moves, in C (the caller truncates)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "inbox_daemon.lookup._fastpath",
    .m_doc = "C accelerator for the query protocol's pipelined fast path (optional; protocol.py is the reference).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__fastpath(void)
{
    static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789._-";
    for (const char *c = chars; *c; c++)
        plain[(unsigned char)*c] = 1;
    plain['@'] = 2;
    if (PyType_Ready(&TablesType) < 0 || PyType_Ready(&LoopType) < 0 || PyType_Ready(&PseudonymiserType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Tables", (PyObject *)&TablesType) < 0 ||
        PyModule_AddObjectRef(m, "Loop", (PyObject *)&LoopType) < 0 ||
        PyModule_AddObjectRef(m, "Pseudonymiser", (PyObject *)&PseudonymiserType) < 0 ||
        PyModule_AddIntConstant(m, "MAX_LINE", MAX_LINE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

/* The optional C accelerator for pipelined reads: Responder.respond's fast path over many lines.
 *
 * answer_lines(lines, start, stop, tables) -> (replies, next, lookups, hits)
 *
 *   lines   a list; lines[start:stop] are answered in order while each is a bytes object of the
 *           form ``CHECK <token>`` with the token of protocol._PLAIN_ADDRESS_BYTES plus exactly one
 *           "@", not at either end (the very condition of Responder.respond's fast path).
 *   tables  BlocklistIndex.shared_tables(): the index's arrays and its pseudonym key.
 *
 * It stops at the first line it does not handle and returns its position as ``next`` (``stop``
 * when it answered them all): Python answers that line, then calls again, so the order is kept.
 * ``replies`` is the concatenated reply lines, byte-identical to protocol.blocked_reply / OK;
 * ``lookups`` and ``hits`` are what Python adds to its Counters.
 *
 * The key is index.address_bytes_key's: the token's pseudonym (keys.digest of "email:" + token,
 * 128 bits). Python is the reference: tests/lookup/test_lookup_fastpath.py compares them.
 */

#include "_tables.h"
#include <string.h>

static unsigned char plain[256]; /* 1 for [a-z0-9._-], 2 for "@", 0 otherwise */

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

/* tables_lookup from the thread holding the GIL: the mutex unless begin() holds it already. */
static uint64_t
lookup_with_gil(TablesObject *t, uint64_t high, uint64_t low)
{
    int locked = !t->held;
    if (locked)
        pthread_mutex_lock(&t->mu);
    uint64_t packed = tables_lookup(t, high, low);
    if (locked)
        pthread_mutex_unlock(&t->mu);
    return packed;
}

static PyObject *
answer_lines(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *lines;
    TablesObject *t;
    Py_ssize_t start, stop;
    if (!PyArg_ParseTuple(args, "O!nnO!:answer_lines", &PyList_Type, &lines, &start, &stop, &TablesType, &t))
        return NULL;
    if (start < 0 || stop > PyList_GET_SIZE(lines) || start > stop)
        return PyErr_Format(PyExc_IndexError, "answer_lines: bad range [%zd, %zd)", start, stop);
    if (t->mac == NULL)
        return PyErr_Format(PyExc_RuntimeError, "answer_lines: the tables have no pseudonym key");
    PyObject *out = PyBytes_FromStringAndSize(NULL, (stop - start) * MAX_REPLY);
    if (out == NULL)
        return NULL;
    char *write = PyBytes_AS_STRING(out);
    Py_ssize_t i = start, lookups = 0, hits = 0;
    for (; i < stop; i++) {
        PyObject *line = PyList_GET_ITEM(lines, i);
        if (!PyBytes_CheckExact(line))
            break;
        const char *data = PyBytes_AS_STRING(line);
        Py_ssize_t size = PyBytes_GET_SIZE(line);
        if (!is_plain_check((const unsigned char *)data, size))
            break;
        uint64_t high, low;
        if (tables_digest_address(t, data + 6, (size_t)(size - 6), &high, &low) < 0) {
            Py_DECREF(out);
            return PyErr_Format(PyExc_RuntimeError, "OpenSSL HMAC failed");
        }
        uint64_t packed = lookup_with_gil(t, high, low);
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
        return NULL; /* out is NULL and the error set */
    return Py_BuildValue("(Nnnn)", out, i, lookups, hits);
}


/* -- Tables: the index's address lookups, readable without the GIL (see _tables.h) ------------- */

static int
delta_resize(TablesObject *t, size_t live)
{
    size_t cap = 16;
    while (cap < live * 2 + 2)
        cap <<= 1;
    uint64_t *high = calloc(cap, 8), *low = calloc(cap, 8), *vals = calloc(cap, 8);
    unsigned char *state = calloc(cap, 1);
    if (high == NULL || low == NULL || vals == NULL || state == NULL) {
        free(high);
        free(low);
        free(vals);
        free(state);
        return -1;
    }
    for (size_t i = 0; i < t->dcap; i++) {
        if (t->dstate[i] != 1)
            continue;
        size_t j = t->dlow[i] & (cap - 1);
        while (state[j])
            j = (j + 1) & (cap - 1);
        high[j] = t->dhigh[i];
        low[j] = t->dlow[i];
        vals[j] = t->dvals[i];
        state[j] = 1;
    }
    free(t->dhigh);
    free(t->dlow);
    free(t->dvals);
    free(t->dstate);
    t->dhigh = high;
    t->dlow = low;
    t->dvals = vals;
    t->dstate = state;
    t->dcap = cap;
    t->dused = t->dlive;
    return 0;
}

/* Set a key to packed in the delta mirror; packed 0 removes it. -1 on memory failure.
 * Pseudonyms are uniform, so the low half's bits place a key. */
static int
delta_put(TablesObject *t, uint64_t high, uint64_t low, uint64_t packed)
{
    size_t mask = t->dcap - 1, i = low & mask, free_slot = (size_t)-1;
    if (t->dcap) {
        for (; t->dstate[i]; i = (i + 1) & mask) {
            if (t->dstate[i] == 1 && t->dhigh[i] == high && t->dlow[i] == low) {
                if (packed)
                    t->dvals[i] = packed;
                else {
                    t->dstate[i] = 2;
                    t->dlive--;
                }
                return 0;
            }
            if (t->dstate[i] == 2 && free_slot == (size_t)-1)
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
            for (i = low & mask; t->dstate[i]; i = (i + 1) & mask)
                ;
        }
        free_slot = i;
        t->dused++;
    }
    t->dhigh[free_slot] = high;
    t->dlow[free_slot] = low;
    t->dvals[free_slot] = packed;
    t->dstate[free_slot] = 1;
    t->dlive++;
    return 0;
}

uint64_t
tables_lookup(TablesObject *t, uint64_t high, uint64_t low)
{
    if (t->dlive) {
        size_t mask = t->dcap - 1;
        for (size_t i = low & mask; t->dstate[i]; i = (i + 1) & mask)
            if (t->dstate[i] == 1 && t->dhigh[i] == high && t->dlow[i] == low)
                return t->dvals[i];
    }
    Py_ssize_t slot = t->shift >= 64 ? 0 : (Py_ssize_t)(high >> t->shift);
    if (slot + 1 >= t->nslots)
        return 0;
    Py_ssize_t lo = (Py_ssize_t)t->directory[slot], hi = (Py_ssize_t)t->directory[slot + 1], end = hi;
    if (lo > hi || hi > t->nkeys)
        return 0;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (t->keys[mid] < high)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < end && t->keys[lo] == high && t->lows[lo] == low ? t->values[lo] : 0;
}

int
tables_digest_address(TablesObject *t, const char *address, size_t size, uint64_t *high, uint64_t *low)
{
    unsigned char canonical[6 + MAX_ADDRESS], digest[PSEUDONYM_BYTES];
    if (size > MAX_ADDRESS)
        return -1;
    memcpy(canonical, "email:", 6);
    memcpy(canonical + 6, address, size);
    if (pseudonym_digest(t->mac, canonical, 6 + size, digest) < 0)
        return -1;
    uint64_t h = 0, l = 0;
    for (int i = 0; i < 8; i++) { /* big-endian, as int.from_bytes(digest, "big") */
        h = h << 8 | digest[i];
        l = l << 8 | digest[8 + i];
    }
    *high = h;
    *low = l;
    return 0;
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

static int
Tables_init(TablesObject *t, PyObject *args, PyObject *kwds)
{
    Py_buffer key;
    static char *names[] = {"key", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*:Tables", names, &key))
        return -1;
    if (key.len < 16 || t->mac != NULL) {
        PyBuffer_Release(&key);
        PyErr_SetString(PyExc_ValueError, t->mac ? "Tables keyed twice" : "a pseudonym key has at least 16 bytes");
        return -1;
    }
    t->mac = pseudonym_context(key.buf, (size_t)key.len);
    PyBuffer_Release(&key);
    return t->mac == NULL ? -1 : 0;
}

static void
Tables_dealloc(TablesObject *t)
{
    if (t->held)
        pthread_mutex_unlock(&t->mu);
    pthread_mutex_destroy(&t->mu);
    free(t->dhigh);
    free(t->dlow);
    free(t->dvals);
    free(t->dstate);
    pseudonym_free(t->mac);
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

/* A 128-bit Python int as its halves; -1 with an error set. */
static int
split_key(PyObject *key, uint64_t *high, uint64_t *low)
{
    static PyObject *sixty_four = NULL;
    if (sixty_four == NULL && (sixty_four = PyLong_FromLong(64)) == NULL)
        return -1;
    *low = PyLong_AsUnsignedLongLongMask(key);
    if (*low == (uint64_t)-1 && PyErr_Occurred())
        return -1;
    PyObject *shifted = PyNumber_Rshift(key, sixty_four);
    if (shifted == NULL)
        return -1;
    *high = PyLong_AsUnsignedLongLong(shifted);
    Py_DECREF(shifted);
    return *high == (uint64_t)-1 && PyErr_Occurred() ? -1 : 0;
}

/* Mirror every key of a dict {128-bit key: packed}; -1 with an error set. */
static int
mirror_dict(TablesObject *t, PyObject *dict)
{
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(dict, &pos, &key, &value)) {
        uint64_t high, low, v = PyLong_AsUnsignedLongLong(value);
        if ((v == (uint64_t)-1 && PyErr_Occurred()) || split_key(key, &high, &low) < 0)
            return -1;
        if (delta_put(t, high, low, v) < 0) {
            PyErr_NoMemory();
            return -1;
        }
    }
    return 0;
}

static PyObject *
Tables_commit(TablesObject *t, PyObject *args)
{
    PyObject *arrays[4], *delta, *side;
    int shift;
    if (!PyArg_ParseTuple(args, "OOOOiO!O!:commit", &arrays[0], &arrays[1], &arrays[2], &arrays[3], &shift,
                          &PyDict_Type, &delta, &PyDict_Type, &side))
        return NULL;
    if (!t->held) {
        pthread_mutex_lock(&t->mu);
        t->held = 1;
    }
    Py_buffer views[4];
    int got = 0, failed = shift < 0 || shift > 64;
    if (failed)
        PyErr_SetString(PyExc_ValueError, "commit: bad shift");
    for (; got < 4 && !failed; got++)
        failed = get_q_buffer(arrays[got], &views[got], "tables") < 0;
    if (failed && got)
        got--;
    for (int i = 0; i < got; i++)
        PyBuffer_Release(&views[i]); /* the index keeps the arrays alive and unresized until begin() */
    if (!failed && (views[1].len != views[0].len || views[2].len != views[0].len)) {
        failed = 1;
        PyErr_SetString(PyExc_ValueError, "commit: keys, lows and values differ in length");
    }
    if (!failed) {
        t->keys = views[0].buf;
        t->lows = views[1].buf;
        t->values = views[2].buf;
        t->directory = views[3].buf;
        t->nkeys = views[0].len / 8;
        t->nslots = views[3].len / 8;
        t->shift = shift;
        if (t->dcap)
            memset(t->dstate, 0, t->dcap);
        t->dused = t->dlive = 0;
        failed = mirror_dict(t, delta) < 0 || mirror_dict(t, side) < 0;
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
    PyObject *key;
    unsigned long long packed;
    uint64_t high, low;
    if (!PyArg_ParseTuple(args, "O!K:set", &PyLong_Type, &key, &packed) || split_key(key, &high, &low) < 0)
        return NULL;
    int locked = !t->held;
    if (locked)
        pthread_mutex_lock(&t->mu);
    int rc = delta_put(t, high, low, packed);
    if (locked)
        pthread_mutex_unlock(&t->mu);
    if (rc < 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *
Tables_lookup(TablesObject *t, PyObject *arg)
{
    uint64_t high, low;
    if (!PyLong_Check(arg))
        return PyErr_Format(PyExc_TypeError, "lookup: a key is an int");
    if (split_key(arg, &high, &low) < 0)
        return NULL;
    return PyLong_FromUnsignedLongLong(lookup_with_gil(t, high, low));
}

static PyObject *
Tables_memory_bytes(TablesObject *t, PyObject *Py_UNUSED(arg))
{
    return PyLong_FromSize_t(sizeof(TablesObject) + t->dcap * 25);
}

static PyObject *
Tables_repr(TablesObject *Py_UNUSED(t))
{
    return PyUnicode_FromString("Tables(<key hidden>)");
}

static PyMethodDef Tables_methods[] = {
    {"begin", (PyCFunction)Tables_begin, METH_NOARGS, "Hold the tables before the index resizes its arrays."},
    {"commit", (PyCFunction)Tables_commit, METH_VARARGS,
     "commit(keys, lows, values, directory, shift, delta, side): publish the arrays, mirror the delta's "
     "and the side table's keys, release."},
    {"set", (PyCFunction)Tables_set, METH_VARARGS, "set(key, packed): mirror one delta or side change (0 removes)."},
    {"lookup", (PyCFunction)Tables_lookup, METH_O, "lookup(key) -> packed, as the loop thread sees it."},
    {"memory_bytes", (PyCFunction)Tables_memory_bytes, METH_NOARGS, "Bytes held beside the index's arrays."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject TablesType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "inbox_daemon.lookup._fastpath.Tables",
    .tp_basicsize = sizeof(TablesObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Tables(key): the index's lookups and pseudonym key, published for the query loop thread.",
    .tp_new = Tables_new,
    .tp_init = (initproc)Tables_init,
    .tp_dealloc = (destructor)Tables_dealloc,
    .tp_repr = (reprfunc)Tables_repr,
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
    Py_ssize_t nkeys = kview.len / 8, slots = (Py_ssize_t)1 << bits;
    if (dview.len / 8 != slots + 1) {
        PyBuffer_Release(&kview);
        PyBuffer_Release(&dview);
        return PyErr_Format(PyExc_ValueError, "fill_directory: the directory needs %zd slots", slots + 1);
    }
    Py_ssize_t position = 0;
    for (Py_ssize_t slot = 0; slot < slots; slot++) {
        uint64_t start = bits ? (uint64_t)slot << (64 - bits) : 0;
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


static PyMethodDef methods[] = {
    {"answer_lines", answer_lines, METH_VARARGS,
     "answer_lines(lines, start, stop, tables) -> (replies, next, lookups, hits)\n\n"
     "Answer lines[start:stop] while they take Responder.respond's fast path; stop at the first\n"
     "that does not (next is its position). tables is BlocklistIndex.shared_tables()."},
    {"fill_directory", fill_directory, METH_VARARGS,
     "fill_directory(keys, directory, bits): BlocklistIndex._index_directory's loop, in C."},
    {"spread", spread, METH_VARARGS,
     "spread(column, end, positions, values): index._spread's moves, in C (column already extended)."},
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

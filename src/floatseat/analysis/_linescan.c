/*
 * floatseat.analysis._linescan: one pass over a block of access-log lines, GIL released.
 *
 * The matching programs come from floatseat.analysis.fastscan, which compiles the very
 * regular expressions the Polars path uses (pattern.regex, the polling-line regex, the
 * extraction regex) into a small backtracking machine with leftmost-first semantics.
 * Every line is classified as blank, malformed, polling, anonymous or counted; counted
 * lines are reduced to (user as logged, UTC second) -> requests. A line this code cannot
 * decide with certainty (a byte >= 0x80, a time the Polars parser
 * might judge differently, a match that needs too many steps) is "undecided": its raw
 * bytes are handed back so that the Polars path (the reference) reads it.
 *
 * CPython C API only.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

enum {
    OP_MATCH = 0,
    OP_END = 1,
    OP_LIT = 2,
    OP_SET = 3,
    OP_RUN = 4,
    OP_LAZY = 5,
    OP_ESCRUN = 6,
    OP_SPLIT = 7,
    OP_DSPLIT = 8,
    OP_JMP = 9,
    OP_SAVE = 10,
    OP_TIME = 11,
};

/* int32 words per instruction: op, a, b, c, d, then for SET, RUN (possessive), ESCRUN and
 * TIME: a capture slot stored before (-1: none), one stored after, and the offset and
 * length of a literal that must follow (length 0: none). */
#define WORDS 9
#define PRE 5
#define POST 6
/* A set: one byte per input byte, [256] for the end of the line, then how to find its first
 * non-member 16 bytes at a time: [257] 1 when possible, [258] 1 when every byte <= 0x20 is
 * a candidate, [259..261] three more candidate bytes (candidates are checked in the table);
 * or [257] 2 when the members are the bytes [258] to [258] + [259]; or [257] 3 when the
 * ASCII non-members are exactly the bytes [258] to [258] + [259] and [260], [261], [262]. */
#define SET_BYTES 264
#define SLOTS 10      /* user, time, target, path, query: start and end each */
#define MAX_DEPTH 2000
#define MAX_MALFORMED 5

/* A set, decoded once per call: its table and how to search for its first non-member. */
typedef struct {
#if defined(__SSE2__)
    __m128i a, b, c, d, e;
#endif
    const uint8_t *t;
    int kind; /* 0: bytewise, 1: candidates then table, 2: one range, 3: exact stops */
    int use_low;
} SetInfo;

typedef struct {
    const int32_t *code;
    Py_ssize_t ncode; /* instructions */
    const uint8_t *sets;
    Py_ssize_t nsets;
    const uint8_t *lits;
    Py_ssize_t nlits;
    SetInfo *info;
} Prog;

typedef struct {
    const Prog *p;
    const uint8_t *s;
    int64_t n;
    int64_t avail; /* bytes readable from s: a 16-byte load may look past the line's end */
    int64_t caps[SLOTS];
    int64_t steps;
    int depth;
} Run;

static int decode_sets(Prog *p)
{
    p->info = malloc(sizeof(SetInfo) * (size_t)(p->nsets ? p->nsets : 1));
    if (!p->info)
        return -1;
    for (Py_ssize_t i = 0; i < p->nsets; i++) {
        const uint8_t *t = p->sets + (Py_ssize_t)SET_BYTES * i;
        SetInfo *si = &p->info[i];
        memset(si, 0, sizeof *si);
        si->t = t;
#if defined(__SSE2__)
        si->kind = t[257] <= 3 ? t[257] : 0;
        if (si->kind == 2) {
            si->a = _mm_set1_epi8((char)t[258]);
            si->b = _mm_set1_epi8((char)t[259]);
        } else if (si->kind == 1) {
            si->use_low = t[258];
            si->a = _mm_set1_epi8((char)t[259]);
            si->b = _mm_set1_epi8((char)t[260]);
            si->c = _mm_set1_epi8((char)t[261]);
            si->d = _mm_set1_epi8(0x20);
        } else if (si->kind == 3) {
            si->a = _mm_set1_epi8((char)t[258]);
            si->b = _mm_set1_epi8((char)t[259]);
            si->c = _mm_set1_epi8((char)t[260]);
            si->d = _mm_set1_epi8((char)t[261]);
            si->e = _mm_set1_epi8((char)t[262]);
        }
#endif
    }
    return 0;
}

/* How many bytes from s[0] (at most mx) are in the set; avail bytes may be read. */
static inline int64_t span(const uint8_t *s, int64_t mx, int64_t avail, const SetInfo *si)
{
    int64_t k = 0;
    const uint8_t *t = si->t;
#if defined(__SSE2__)
    if (si->kind == 2) { /* members: one range */
        while (k < mx && k + 16 <= avail) {
            __m128i v = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)(s + k)), si->a);
            __m128i inside = _mm_cmpeq_epi8(_mm_min_epu8(v, si->b), v);
            unsigned bits = (unsigned)_mm_movemask_epi8(inside) ^ 0xffffu;
            if (bits) {
                k += __builtin_ctz(bits);
                return k < mx ? k : mx;
            }
            k += 16;
        }
    } else if (si->kind == 3) { /* non-members: one range and three bytes, exactly */
        while (k < mx && k + 16 <= avail) {
            __m128i v = _mm_loadu_si128((const __m128i *)(s + k));
            __m128i r = _mm_sub_epi8(v, si->a);
            __m128i m = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(r, si->b), r), _mm_cmpeq_epi8(v, si->c)),
                _mm_or_si128(_mm_cmpeq_epi8(v, si->d), _mm_cmpeq_epi8(v, si->e)));
            unsigned bits = (unsigned)_mm_movemask_epi8(m);
            if (bits) {
                k += __builtin_ctz(bits);
                return k < mx ? k : mx;
            }
            k += 16;
        }
    } else if (si->kind == 1) {
        while (k < mx && k + 16 <= avail) {
            __m128i v = _mm_loadu_si128((const __m128i *)(s + k));
            __m128i m = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, si->a), _mm_cmpeq_epi8(v, si->b)),
                _mm_cmpeq_epi8(v, si->c));
            if (si->use_low)
                m = _mm_or_si128(m, _mm_cmpeq_epi8(_mm_min_epu8(v, si->d), v));
            unsigned bits = (unsigned)_mm_movemask_epi8(m);
            while (bits) {
                int b = __builtin_ctz(bits);
                if (k + b >= mx)
                    return mx;
                if (!t[s[k + b]])
                    return k + b;
                bits &= bits - 1;
            }
            k += 16;
        }
    }
    if (k >= mx)
        return mx;
#endif
    while (k < mx && t[s[k]])
        k++;
    return k;
}

/* 1: match, 0: no match, -1: budget exhausted (undecided).
 * Steps are counted where the machine may come back (branches, giving back, recursion):
 * without those it runs straight through, and every loop consumes input. */
static int vm(Run *R, int pc, int64_t pos)
{
    static const void *labels[] = {&&op_match, &&op_end,   &&op_lit,    &&op_set,
                                   &&op_run,   &&op_lazy,  &&op_escrun, &&op_split,
                                   &&op_dsplit, &&op_jmp,  &&op_save,   &&op_time};
    const Prog *p = R->p;
    const uint8_t *s = R->s;
    const int64_t n = R->n;
    const int32_t *c;
    int r;
    if (++R->depth > MAX_DEPTH || --R->steps < 0) {
        R->depth--;
        return -1;
    }
#define DISPATCH()                                                                           \
    do {                                                                                     \
        c = p->code + (Py_ssize_t)WORDS * pc;                                                \
        goto *labels[c[0]];                                                                  \
    } while (0)
    DISPATCH();

op_match:
    R->depth--;
    return 1;
op_end:
    if (pos != n)
        goto fail;
    pc++;
    DISPATCH();
op_lit: {
    const uint8_t *lit = p->lits + c[1];
    if (n - pos < c[2])
        goto fail;
    for (int32_t i = 0; i < c[2]; i++)
        if (s[pos + i] != lit[i])
            goto fail;
    pos += c[2];
    pc++;
    DISPATCH();
}
op_set:
    if (pos >= n || !p->sets[(Py_ssize_t)SET_BYTES * c[1] + s[pos]])
        goto fail;
    if (c[PRE] >= 0)
        R->caps[c[PRE]] = pos;
    pos++;
    goto carried;
op_run: {
    int64_t mx = n - pos;
    if (c[3] >= 0 && c[3] < mx)
        mx = c[3];
    int64_t k = span(s + pos, mx, R->avail - pos, &p->info[c[1]]);
    if (k < c[2])
        goto fail;
    if (c[4]) { /* possessive: the compiler proved giving back cannot help */
        if (c[PRE] >= 0)
            R->caps[c[PRE]] = pos;
        pos += k;
        goto carried;
    }
    for (; k >= c[2]; k--) {
        if ((r = vm(R, pc + 1, pos + k)) != 0) {
            R->depth--;
            return r;
        }
    }
    goto fail;
}
op_lazy: {
    const uint8_t *t = p->sets + (Py_ssize_t)SET_BYTES * c[1];
    int64_t mx = n - pos;
    if (c[3] >= 0 && c[3] < mx)
        mx = c[3];
    int64_t k = 0;
    while (k < c[2]) {
        if (k >= mx || !t[s[pos + k]])
            goto fail;
        k++;
    }
    for (;;) {
        if ((r = vm(R, pc + 1, pos + k)) != 0) {
            R->depth--;
            return r;
        }
        if (k >= mx || !t[s[pos + k]])
            goto fail;
        k++;
    }
}
op_escrun: { /* (?:[set]|\\.)* possessively; the set excludes the backslash */
    const SetInfo *si = &p->info[c[1]];
    if (c[PRE] >= 0)
        R->caps[c[PRE]] = pos;
    for (;;) {
        pos += span(s + pos, n - pos, R->avail - pos, si);
        if (pos + 1 < n && s[pos] == '\\' && s[pos + 1] != '\n')
            pos += 2;
        else
            break;
    }
    goto carried;
}
op_split:
    if ((r = vm(R, c[1], pos)) != 0) {
        R->depth--;
        return r;
    }
    pc = c[2];
    DISPATCH();
op_dsplit:
    pc = p->sets[(Py_ssize_t)SET_BYTES * c[1] + (pos < n ? s[pos] : 256)] ? c[2] : c[3];
    DISPATCH();
op_jmp:
    pc = c[1];
    DISPATCH();
op_save: {
    if (c[2]) { /* no backtracking can reach here again: a plain store */
        R->caps[c[1]] = pos;
        pc++;
        DISPATCH();
    }
    int64_t old = R->caps[c[1]];
    R->caps[c[1]] = pos;
    if ((r = vm(R, pc + 1, pos)) != 0) {
        R->depth--;
        return r;
    }
    R->caps[c[1]] = old;
    goto fail;
}
op_time: {
    /* CLF_TIME of pattern.py: dd/Mon/yyyy:HH:MM:SS [+-]zzzz, day ranges per month */
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    const uint8_t *q = s + pos;
    if (n - pos < 26)
        goto fail;
#define DIG(x) ((x) >= '0' && (x) <= '9')
    if (!DIG(q[0]) || !DIG(q[1]) || q[2] != '/' || q[6] != '/' || !DIG(q[7]) || !DIG(q[8]) ||
        !DIG(q[9]) || !DIG(q[10]) || q[11] != ':' || !DIG(q[12]) || !DIG(q[13]) ||
        q[14] != ':' || q[15] < '0' || q[15] > '5' || !DIG(q[16]) || q[17] != ':' ||
        q[18] < '0' || q[18] > '5' || !DIG(q[19]) || q[20] != ' ' ||
        (q[21] != '+' && q[21] != '-') || !DIG(q[22]) || !DIG(q[23]) || !DIG(q[24]) ||
        !DIG(q[25]))
        goto fail;
#undef DIG
    int hour = (q[12] - '0') * 10 + (q[13] - '0');
    if (hour > 23)
        goto fail;
    int month = -1;
    for (int m = 0; m < 12; m++)
        if (q[3] == months[3 * m] && q[4] == months[3 * m + 1] && q[5] == months[3 * m + 2]) {
            month = m + 1;
            break;
        }
    if (month < 0)
        goto fail;
    int day = (q[0] - '0') * 10 + (q[1] - '0');
    if (day < 1 || day > 31 || (day == 30 && month == 2))
        goto fail;
    if (day == 31 && !(month == 1 || month == 3 || month == 5 || month == 7 || month == 8 ||
                       month == 10 || month == 12))
        goto fail;
    if (c[PRE] >= 0)
        R->caps[c[PRE]] = pos;
    pos += 26;
    goto carried;
}
carried: /* the capture after a carrier, then the literal it carries */
    if (c[POST] >= 0)
        R->caps[c[POST]] = pos;
    if (c[8]) {
        const uint8_t *lit = p->lits + c[7];
        if (n - pos < c[8])
            goto fail;
        for (int32_t i = 0; i < c[8]; i++)
            if (s[pos + i] != lit[i])
                goto fail;
        pos += c[8];
    }
    pc++;
    DISPATCH();
#undef DISPATCH
fail:
    R->depth--;
    return 0;
}

static int run_prog(Run *R, const Prog *p, int entry, const uint8_t *s, int64_t n,
                    int64_t avail)
{
    R->p = p;
    R->s = s;
    R->n = n;
    R->avail = avail;
    R->steps = 10000 + 16 * n;
    R->depth = 0;
    for (int i = 0; i < SLOTS; i++)
        R->caps[i] = -1;
    return vm(R, entry, 0);
}

/* ---------- hash tables ---------- */

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t hash_bytes(const uint8_t *p, Py_ssize_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (uint64_t)n;
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = mix64(h ^ w) + 0x9e3779b97f4a7c15ULL;
    }
    uint64_t w = 0;
    memcpy(&w, p + i, (size_t)(n - i));
    return mix64(h ^ w ^ ((uint64_t)(n - i) << 56));
}

typedef struct {
    uint64_t hash;
    uint32_t off, len; /* in the pool */
    uint32_t id;       /* UINT32_MAX: empty */
} UserSlot;

typedef struct {
    UserSlot *slots;
    size_t cap, count;
    uint8_t *pool;
    size_t pool_len, pool_cap;
    uint32_t *offsets; /* per id: pool offset, length */
    uint32_t *lengths;
    size_t ids_cap;
} Users;

typedef struct {
    int64_t ts;
    uint32_t uid; /* UINT32_MAX: empty */
    uint32_t n;
} PairSlot;

typedef struct {
    PairSlot *slots;
    size_t cap, count;
    uint32_t *order; /* slot index per insertion */
    size_t last_slot; /* where pairs_add counted last */
    size_t order_cap;
} Pairs;

static int users_init(Users *u)
{
    memset(u, 0, sizeof *u);
    u->cap = 1024;
    u->slots = malloc(u->cap * sizeof *u->slots);
    if (!u->slots)
        return -1;
    for (size_t i = 0; i < u->cap; i++)
        u->slots[i].id = UINT32_MAX;
    return 0;
}

static void users_free(Users *u)
{
    free(u->slots);
    free(u->pool);
    free(u->offsets);
    free(u->lengths);
}

static int64_t users_get(Users *u, const uint8_t *name, uint32_t len)
{
    uint64_t h = hash_bytes(name, len);
    size_t mask = u->cap - 1, i = (size_t)h & mask;
    while (u->slots[i].id != UINT32_MAX) {
        UserSlot *sl = &u->slots[i];
        if (sl->hash == h && sl->len == len && memcmp(u->pool + sl->off, name, len) == 0)
            return sl->id;
        i = (i + 1) & mask;
    }
    if ((u->count + 1) * 2 > u->cap) {
        size_t ncap = u->cap * 2;
        UserSlot *ns = malloc(ncap * sizeof *ns);
        if (!ns)
            return -1;
        for (size_t j = 0; j < ncap; j++)
            ns[j].id = UINT32_MAX;
        for (size_t j = 0; j < u->cap; j++)
            if (u->slots[j].id != UINT32_MAX) {
                size_t k = (size_t)u->slots[j].hash & (ncap - 1);
                while (ns[k].id != UINT32_MAX)
                    k = (k + 1) & (ncap - 1);
                ns[k] = u->slots[j];
            }
        free(u->slots);
        u->slots = ns;
        u->cap = ncap;
        mask = ncap - 1;
        i = (size_t)h & mask;
        while (u->slots[i].id != UINT32_MAX)
            i = (i + 1) & mask;
    }
    if (u->pool_len + len > u->pool_cap) {
        size_t ncap = u->pool_cap ? u->pool_cap * 2 : 4096;
        while (ncap < u->pool_len + len)
            ncap *= 2;
        uint8_t *np = realloc(u->pool, ncap);
        if (!np)
            return -1;
        u->pool = np;
        u->pool_cap = ncap;
    }
    if (u->count == u->ids_cap) {
        size_t ncap = u->ids_cap ? u->ids_cap * 2 : 256;
        uint32_t *no = realloc(u->offsets, ncap * sizeof *no);
        if (!no)
            return -1;
        u->offsets = no;
        uint32_t *nl = realloc(u->lengths, ncap * sizeof *nl);
        if (!nl)
            return -1;
        u->lengths = nl;
        u->ids_cap = ncap;
    }
    memcpy(u->pool + u->pool_len, name, len);
    UserSlot *sl = &u->slots[i];
    sl->hash = h;
    sl->off = (uint32_t)u->pool_len;
    sl->len = len;
    sl->id = (uint32_t)u->count;
    u->offsets[u->count] = sl->off;
    u->lengths[u->count] = len;
    u->pool_len += len;
    u->count++;
    return sl->id;
}

static int pairs_init(Pairs *p, size_t block_bytes)
{
    memset(p, 0, sizeof *p);
    p->cap = 1 << 12; /* about one distinct pair per 256 bytes at half load: rarely regrown */
    while (p->cap < block_bytes / 512 && p->cap < ((size_t)1 << 30))
        p->cap <<= 1;
    p->slots = malloc(p->cap * sizeof *p->slots);
    if (!p->slots)
        return -1;
    for (size_t i = 0; i < p->cap; i++)
        p->slots[i].uid = UINT32_MAX;
    return 0;
}

static void pairs_free(Pairs *p)
{
    free(p->slots);
    free(p->order);
}

static inline uint64_t pair_hash(uint32_t uid, int64_t ts)
{
    return mix64((uint64_t)ts * 0x9e3779b97f4a7c15ULL ^ ((uint64_t)uid << 40 | uid));
}

static int pairs_add(Pairs *p, uint32_t uid, int64_t ts)
{
    size_t mask = p->cap - 1, i = (size_t)pair_hash(uid, ts) & mask;
    while (p->slots[i].uid != UINT32_MAX) {
        if (p->slots[i].uid == uid && p->slots[i].ts == ts) {
            p->slots[i].n++;
            p->last_slot = i;
            return 0;
        }
        i = (i + 1) & mask;
    }
    if ((p->count + 1) * 2 > p->cap) {
        size_t ncap = p->cap * 2;
        PairSlot *ns = malloc(ncap * sizeof *ns);
        if (!ns)
            return -1;
        for (size_t j = 0; j < ncap; j++)
            ns[j].uid = UINT32_MAX;
        /* re-insert in insertion order, keeping the order array valid */
        for (size_t o = 0; o < p->count; o++) {
            PairSlot *old = &p->slots[p->order[o]];
            size_t k = (size_t)pair_hash(old->uid, old->ts) & (ncap - 1);
            while (ns[k].uid != UINT32_MAX)
                k = (k + 1) & (ncap - 1);
            ns[k] = *old;
            p->order[o] = (uint32_t)k;
        }
        free(p->slots);
        p->slots = ns;
        p->cap = ncap;
        mask = ncap - 1;
        i = (size_t)pair_hash(uid, ts) & mask;
        while (p->slots[i].uid != UINT32_MAX)
            i = (i + 1) & mask;
    }
    if (p->count == p->order_cap) {
        size_t ncap = p->order_cap ? p->order_cap * 2 : 1 << 15;
        uint32_t *no = realloc(p->order, ncap * sizeof *no);
        if (!no)
            return -1;
        p->order = no;
        p->order_cap = ncap;
    }
    p->slots[i].uid = uid;
    p->slots[i].ts = ts;
    p->slots[i].n = 1;
    p->order[p->count++] = (uint32_t)i;
    p->last_slot = i;
    return 0;
}

/* ---------- growable byte buffer ---------- */

typedef struct {
    uint8_t *data;
    size_t len, cap;
} Buf;

static int buf_add(Buf *b, const void *src, size_t n)
{
    if (b->len + n > b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 4096;
        while (ncap < b->len + n)
            ncap *= 2;
        uint8_t *nd = realloc(b->data, ncap);
        if (!nd)
            return -1;
        b->data = nd;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, src, n);
    b->len += n;
    return 0;
}

/* ---------- time ---------- */

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* A validated CLF time (26 bytes) to UTC seconds; 0 when certain, -1 when the Polars path
 * must judge it (29 Feb of a common year, an offset chrono rejects, a different shape). */
static int clf_seconds(const uint8_t *q, int64_t len, int64_t *out)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    if (len != 26)
        return -1;
    for (int i = 0; i < 26; i++)
        if (q[i] >= 0x80)
            return -1;
#define D(i) ((int)(q[i] - '0'))
#define ISD(i) (q[i] >= '0' && q[i] <= '9')
    if (!ISD(0) || !ISD(1) || q[2] != '/' || q[6] != '/' || !ISD(7) || !ISD(8) || !ISD(9) ||
        !ISD(10) || q[11] != ':' || !ISD(12) || !ISD(13) || q[14] != ':' || !ISD(15) ||
        !ISD(16) || q[17] != ':' || !ISD(18) || !ISD(19) || q[20] != ' ' ||
        (q[21] != '+' && q[21] != '-') || !ISD(22) || !ISD(23) || !ISD(24) || !ISD(25))
        return -1;
    int month = -1;
    for (int m = 0; m < 12; m++)
        if (q[3] == months[3 * m] && q[4] == months[3 * m + 1] && q[5] == months[3 * m + 2]) {
            month = m + 1;
            break;
        }
    if (month < 0)
        return -1;
    int day = D(0) * 10 + D(1);
    int64_t year = D(7) * 1000 + D(8) * 100 + D(9) * 10 + D(10);
    int hour = D(12) * 10 + D(13), minute = D(15) * 10 + D(16), second = D(18) * 10 + D(19);
    int oh = D(22) * 10 + D(23), om = D(24) * 10 + D(25);
#undef D
#undef ISD
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    int dim = mdays[month - 1] + (month == 2 && leap);
    if (day < 1 || day > dim || hour > 23 || minute > 59 || second > 59 || oh > 23 || om > 59)
        return -1;
    int64_t offset = (int64_t)oh * 3600 + om * 60;
    if (q[21] == '-')
        offset = -offset;
    *out = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second -
           offset;
    return 0;
}

/* ---------- Arrow C data interface, for zero-copy columns ---------- */

struct ArrowSchema {
    const char *format;
    const char *name;
    const char *metadata;
    int64_t flags;
    int64_t n_children;
    struct ArrowSchema **children;
    struct ArrowSchema *dictionary;
    void (*release)(struct ArrowSchema *);
    void *private_data;
};

struct ArrowArray {
    int64_t length;
    int64_t null_count;
    int64_t offset;
    int64_t n_buffers;
    int64_t n_children;
    const void **buffers;
    struct ArrowArray **children;
    struct ArrowArray *dictionary;
    void (*release)(struct ArrowArray *);
    void *private_data;
};

typedef struct {
    PyObject_HEAD
    char format[4];
    void *data; /* malloc'ed; owned until exported */
    int64_t length;
} ColumnObject;

static void schema_release(struct ArrowSchema *schema)
{
    free((void *)schema->format);
    schema->release = NULL;
}

typedef struct {
    void *data;
    const void *buffers[2];
} ArrayPrivate;

static void array_release(struct ArrowArray *array)
{
    ArrayPrivate *priv = array->private_data;
    free(priv->data);
    free(priv);
    array->release = NULL;
}

static void capsule_schema_free(PyObject *capsule)
{
    struct ArrowSchema *schema = PyCapsule_GetPointer(capsule, "arrow_schema");
    if (schema) {
        if (schema->release)
            schema->release(schema);
        free(schema);
    }
}

static void capsule_array_free(PyObject *capsule)
{
    struct ArrowArray *array = PyCapsule_GetPointer(capsule, "arrow_array");
    if (array) {
        if (array->release)
            array->release(array);
        free(array);
    }
}

static PyObject *column_arrow_c_array(PyObject *self_obj, PyObject *args, PyObject *kwargs)
{
    ColumnObject *self = (ColumnObject *)self_obj;
    (void)args;
    (void)kwargs;
    if (self->data == NULL && self->length > 0) {
        PyErr_SetString(PyExc_RuntimeError, "column already exported");
        return NULL;
    }
    struct ArrowSchema *schema = calloc(1, sizeof *schema);
    struct ArrowArray *array = calloc(1, sizeof *array);
    ArrayPrivate *priv = calloc(1, sizeof *priv);
    char *format = malloc(4);
    if (!schema || !array || !priv || !format) {
        free(schema);
        free(array);
        free(priv);
        free(format);
        return PyErr_NoMemory();
    }
    memcpy(format, self->format, 4);
    schema->format = format;
    schema->name = "";
    schema->flags = 0;
    schema->release = schema_release;
    priv->data = self->data;
    priv->buffers[0] = NULL;
    priv->buffers[1] = self->data;
    array->length = self->length;
    array->n_buffers = 2;
    array->buffers = priv->buffers;
    array->release = array_release;
    array->private_data = priv;
    self->data = NULL;
    PyObject *sc = PyCapsule_New(schema, "arrow_schema", capsule_schema_free);
    if (!sc) {
        schema_release(schema);
        free(schema);
        array_release(array);
        free(array);
        return NULL;
    }
    PyObject *ac = PyCapsule_New(array, "arrow_array", capsule_array_free);
    if (!ac) {
        Py_DECREF(sc);
        array_release(array);
        free(array);
        return NULL;
    }
    return Py_BuildValue("(NN)", sc, ac);
}

static void column_dealloc(PyObject *self_obj)
{
    ColumnObject *self = (ColumnObject *)self_obj;
    free(self->data);
    Py_TYPE(self_obj)->tp_free(self_obj);
}

static PyObject *column_len(PyObject *self_obj, void *closure)
{
    (void)closure;
    return PyLong_FromLongLong(((ColumnObject *)self_obj)->length);
}

static PyMethodDef column_methods[] = {
    {"__arrow_c_array__", (PyCFunction)(void (*)(void))column_arrow_c_array,
     METH_VARARGS | METH_KEYWORDS, "Export as an Arrow array (once)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef column_getset[] = {
    {"length", column_len, NULL, "number of values", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ColumnType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "floatseat.analysis._linescan.Column",
    .tp_basicsize = sizeof(ColumnObject),
    .tp_dealloc = column_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A primitive column in C memory, handed to Polars through the Arrow C interface.",
    .tp_methods = column_methods,
    .tp_getset = column_getset,
};

static PyObject *new_column(const char *format, void *data, int64_t length)
{
    ColumnObject *col = PyObject_New(ColumnObject, &ColumnType);
    if (!col) {
        free(data);
        return NULL;
    }
    memset(col->format, 0, 4);
    strncpy(col->format, format, 3);
    col->data = data;
    col->length = length;
    return (PyObject *)col;
}

/* ---------- the scan ---------- */

enum { POLL_NONE = 0, POLL_PROGRAM = 1, POLL_TARGET = 2 };

typedef struct {
    const uint8_t *data;
    size_t len;
    Prog prog;
    int validate, polling, extract; /* entry points; polling -1 unless POLL_PROGRAM */
    int poll_mode;
    int target_slot; /* 4: target; 6: path then query (8) */
    const uint8_t **prefixes;
    Py_ssize_t *prefix_lens;
    Py_ssize_t nprefixes;
    const uint8_t *context;
    Py_ssize_t context_len; /* -1: none */
    int fused;     /* the validation captures stand for the extraction's */
    int poll_slot; /* POLL_PROGRAM: try poll_prefixes where this capture starts; -1: run it */
    const uint8_t **poll_prefixes;
    Py_ssize_t *poll_prefix_lens;
    Py_ssize_t npoll_prefixes;
    /* out */
    int64_t rows, blank, malformed, polling_n, anonymous, counted;
    int64_t malformed_rows[MAX_MALFORMED];
    int nmal;
    Users users;
    Pairs pairs;
    Buf undecided;      /* raw lines, each ending in '\n' */
    Buf undecided_rows; /* uint32 block rows */
    int oom;
} Scan;

static inline int is_space(uint8_t c)
{
    return c == ' ' || (c >= 9 && c <= 13);
}

static int has_high_byte(const uint8_t *p, size_t n)
{
    size_t i = 0;
    uint64_t acc = 0;
    for (; i + 32 <= n; i += 32) {
        uint64_t a, b, c, d;
        memcpy(&a, p + i, 8);
        memcpy(&b, p + i + 8, 8);
        memcpy(&c, p + i + 16, 8);
        memcpy(&d, p + i + 24, 8);
        acc |= a | b | c | d;
        if ((i & 0xfff) == 0 && (acc & 0x8080808080808080ULL))
            return 1;
    }
    for (; i < n; i++)
        acc |= p[i];
    return (acc & 0x8080808080808080ULL) != 0 || (acc & 0x80) != 0;
}

static int starts_with_one_of(const uint8_t *t, size_t tn, const uint8_t **prefixes,
                              const Py_ssize_t *lens, Py_ssize_t count)
{
    for (Py_ssize_t i = 0; i < count; i++) {
        size_t pn = (size_t)lens[i];
        if (pn <= tn && memcmp(t, prefixes[i], pn) == 0)
            return 1;
    }
    return 0;
}

static int starts_with_any(Scan *S, const uint8_t *t, size_t tn)
{
    return starts_with_one_of(t, tn, S->prefixes, S->prefix_lens, S->nprefixes);
}

/* 1 polling, 0 not, -1 undecided; target built from the extraction captures. */
static int polling_by_target(Scan *S, const int64_t *caps, const uint8_t *line,
                             uint8_t *scratch)
{
    size_t tn = 0;
    int slot = S->target_slot;
    int parts = slot == 6 ? 2 : 1;
    for (int k = 0; k < parts; k++) {
        int64_t a = caps[slot + 2 * k], b = caps[slot + 2 * k + 1];
        if (a >= 0 && b >= a) {
            memcpy(scratch + tn, line + a, (size_t)(b - a));
            tn += (size_t)(b - a);
        }
    }
    const uint8_t *t = scratch;
    if (S->context_len > 0 && tn >= (size_t)S->context_len &&
        memcmp(t, S->context, (size_t)S->context_len) == 0) {
        const uint8_t *rest = t + S->context_len;
        size_t rn = tn - (size_t)S->context_len;
        if (rn == 0 || rest[0] == '/' || rest[0] == '?') {
            if (rn > 0 && rest[0] == '/')
                return starts_with_any(S, rest, rn);
            /* "/" + rest: rest sits right after the context in scratch; put '/' before it */
            uint8_t *slash = (uint8_t *)rest - 1;
            *slash = '/';
            return starts_with_any(S, slash, rn + 1);
        }
    }
    return starts_with_any(S, t, tn);
}

static int add_undecided(Scan *S, const uint8_t *raw, size_t rawlen, int has_nl, int64_t row)
{
    uint32_t r = (uint32_t)row;
    if (buf_add(&S->undecided, raw, rawlen) < 0)
        return -1;
    if (!has_nl && buf_add(&S->undecided, "\n", 1) < 0)
        return -1;
    return buf_add(&S->undecided_rows, &r, sizeof r);
}

static void scan_block(Scan *S)
{
    const uint8_t *p = S->data, *end = S->data + S->len;
    int check_high = has_high_byte(p, S->len);
    Run R;
    size_t scratch_cap = 0;
    uint8_t *scratch = NULL;
    int64_t row = 0;
    const uint8_t *last_time = NULL;
    int64_t last_ts = 0;
    uint8_t last_time_buf[26];
    uint32_t last_uid = UINT32_MAX;
    uint8_t last_user[64];
    size_t last_user_len = 0;
    int64_t *seen_ts = NULL; /* per user id: the second last counted, INT64_MIN: none */
    size_t *seen_slot = NULL; /* and its slot in the pairs table */
    size_t seen_cap = 0, seen_table_cap = 0;
    (void)last_time;

    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *line_end = nl ? nl : end;
        const uint8_t *raw = p;
        size_t rawlen = (size_t)(line_end - p) + (nl ? 1 : 0);
        int64_t n = line_end - p;
        if (n > 0 && p[n - 1] == '\r') /* Polars' scan_lines drops one '\r' before '\n' */
            n--;
        const uint8_t *line = p;
        p = nl ? nl + 1 : end;
        int64_t this_row = row++;

        if (check_high && has_high_byte(line, (size_t)n)) {
            if (add_undecided(S, raw, rawlen, nl != NULL, this_row) < 0)
                goto oom;
            continue;
        }
        int r = run_prog(&R, &S->prog, S->validate, line, n, end - line);
        if (r < 0) {
            if (add_undecided(S, raw, rawlen, nl != NULL, this_row) < 0)
                goto oom;
            continue;
        }
        if (r == 0) {
            int64_t i = 0;
            while (i < n && is_space(line[i]))
                i++;
            if (i == n) {
                S->blank++;
            } else {
                if (S->nmal < MAX_MALFORMED)
                    S->malformed_rows[S->nmal++] = this_row + 1;
                S->malformed++;
            }
            continue;
        }
        int64_t caps[SLOTS];
        memcpy(caps, R.caps, sizeof caps);
        if (S->poll_mode == POLL_PROGRAM) {
            int64_t q = S->poll_slot >= 0 ? caps[S->poll_slot] : -1;
            if (q >= 0) {
                r = starts_with_one_of(line + q, (size_t)(n - q), S->poll_prefixes,
                                       S->poll_prefix_lens, S->npoll_prefixes);
            } else {
                r = run_prog(&R, &S->prog, S->polling, line, n, end - line);
                if (r < 0) {
                    if (add_undecided(S, raw, rawlen, nl != NULL, this_row) < 0)
                        goto oom;
                    continue;
                }
            }
            if (r == 1) {
                S->polling_n++;
                continue;
            }
        }
        if (!S->fused) {
            r = run_prog(&R, &S->prog, S->extract, line, n, end - line);
            if (r != 1) { /* cannot happen on a validated line; let the reference decide */
                if (add_undecided(S, raw, rawlen, nl != NULL, this_row) < 0)
                    goto oom;
                continue;
            }
            memcpy(caps, R.caps, sizeof caps);
        }
        if (S->poll_mode == POLL_TARGET) {
            if ((size_t)n + 2 > scratch_cap) {
                size_t ncap = (size_t)n + 64;
                uint8_t *ns = realloc(scratch, ncap);
                if (!ns)
                    goto oom;
                scratch = ns;
                scratch_cap = ncap;
            }
            if (polling_by_target(S, caps, line, scratch)) {
                S->polling_n++;
                continue;
            }
        }
        int64_t ua = caps[0], ub = caps[1], ta = caps[2], tb = caps[3];
        if (ua < 0 || ub < ua || ta < 0 || tb < ta) {
            if (add_undecided(S, raw, rawlen, nl != NULL, this_row) < 0)
                goto oom;
            continue;
        }
        size_t ulen = (size_t)(ub - ua);
        const uint8_t *user = line + ua;
        if (ulen == 0 || (ulen == 1 && user[0] == '-')) {
            S->anonymous++;
            continue;
        }
        if (ulen > 0xffffff) {
            if (add_undecided(S, raw, rawlen, nl != NULL, this_row) < 0)
                goto oom;
            continue;
        }
        int64_t ts;
        if (tb - ta == 26 && last_time != NULL && memcmp(last_time_buf, line + ta, 26) == 0) {
            ts = last_ts;
        } else {
            if (clf_seconds(line + ta, tb - ta, &ts) < 0) {
                if (add_undecided(S, raw, rawlen, nl != NULL, this_row) < 0)
                    goto oom;
                continue;
            }
            memcpy(last_time_buf, line + ta, 26);
            last_time = last_time_buf;
            last_ts = ts;
        }
        uint32_t uid;
        if (last_uid != UINT32_MAX && ulen == last_user_len && memcmp(user, last_user, ulen) == 0) {
            uid = last_uid;
        } else {
            int64_t id = users_get(&S->users, user, (uint32_t)ulen); /* raw, as logged */
            if (id < 0)
                goto oom;
            uid = (uint32_t)id;
            if (ulen <= sizeof last_user) {
                memcpy(last_user, user, ulen);
                last_user_len = ulen;
                last_uid = uid;
            } else {
                last_uid = UINT32_MAX;
            }
        }
        /* Each user's last second, remembered: requests come in bursts, users interleave. */
        if (uid >= seen_cap || seen_table_cap != S->pairs.cap) {
            size_t ncap = seen_cap ? seen_cap : 256;
            while (ncap <= uid)
                ncap *= 2;
            int64_t *nts = realloc(seen_ts, ncap * sizeof *nts);
            if (!nts)
                goto oom;
            seen_ts = nts;
            size_t *nsl = realloc(seen_slot, ncap * sizeof *nsl);
            if (!nsl)
                goto oom;
            seen_slot = nsl;
            /* a grown table moved every pair: forget them all, else only the new users */
            size_t from = seen_table_cap != S->pairs.cap ? 0 : seen_cap;
            for (size_t i = from; i < ncap; i++)
                seen_ts[i] = INT64_MIN;
            seen_cap = ncap;
            seen_table_cap = S->pairs.cap;
        }
        if (seen_ts[uid] == ts) {
            S->pairs.slots[seen_slot[uid]].n++;
        } else {
            if (pairs_add(&S->pairs, uid, ts) < 0)
                goto oom;
            if (seen_table_cap == S->pairs.cap) {
                seen_ts[uid] = ts;
                seen_slot[uid] = S->pairs.last_slot;
            } /* else the table just grew: the check above forgets everything next time */
        }
        S->counted++;
    }
    S->rows = row;
    free(scratch);
    free(seen_ts);
    free(seen_slot);
    return;
oom:
    S->oom = 1;
    free(scratch);
    free(seen_ts);
    free(seen_slot);
}

static int get_prog(PyObject *code, PyObject *sets, PyObject *lits, Prog *prog, Py_buffer views[3])
{
    if (PyObject_GetBuffer(code, &views[0], PyBUF_SIMPLE) < 0)
        return -1;
    if (PyObject_GetBuffer(sets, &views[1], PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&views[0]);
        return -1;
    }
    if (PyObject_GetBuffer(lits, &views[2], PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&views[0]);
        PyBuffer_Release(&views[1]);
        return -1;
    }
    prog->code = views[0].buf;
    prog->ncode = views[0].len / (Py_ssize_t)(WORDS * sizeof(int32_t));
    prog->sets = views[1].buf;
    prog->nsets = views[1].len / SET_BYTES;
    prog->lits = views[2].buf;
    prog->nlits = views[2].len;
    return 0;
}

/* Check every instruction's operands once, so that a bad program cannot read out of bounds. */
static int check_prog(const Prog *p)
{
    for (Py_ssize_t i = 0; i < p->ncode; i++) {
        const int32_t *c = p->code + WORDS * i;
        int ok = 1;
        switch (c[0]) {
        case OP_MATCH:
        case OP_END:
        case OP_TIME:
            break;
        case OP_LIT:
            ok = c[1] >= 0 && c[2] >= 0 && (Py_ssize_t)c[1] + c[2] <= p->nlits;
            break;
        case OP_SET:
        case OP_RUN:
        case OP_LAZY:
        case OP_ESCRUN:
            ok = c[1] >= 0 && c[1] < p->nsets && c[2] >= 0 && (c[0] == OP_SET || c[0] == OP_ESCRUN || c[3] < 0 || c[3] >= c[2]);
            break;
        case OP_SPLIT:
            ok = c[1] >= 0 && c[1] < p->ncode && c[2] >= 0 && c[2] < p->ncode;
            break;
        case OP_DSPLIT:
            ok = c[1] >= 0 && c[1] < p->nsets && c[2] >= 0 && c[2] < p->ncode && c[3] >= 0 &&
                 c[3] < p->ncode;
            break;
        case OP_JMP:
            ok = c[1] >= 0 && c[1] < p->ncode;
            break;
        case OP_SAVE:
            ok = c[1] >= 0 && c[1] < SLOTS;
            break;
        default:
            ok = 0;
        }
        if (c[0] == OP_SET || c[0] == OP_RUN || c[0] == OP_ESCRUN || c[0] == OP_TIME) {
            ok = ok && c[PRE] >= -1 && c[PRE] < SLOTS && c[POST] >= -1 && c[POST] < SLOTS &&
                 c[7] >= 0 && c[8] >= 0 && (Py_ssize_t)c[7] + c[8] <= p->nlits &&
                 (c[0] != OP_RUN || c[4] || (c[PRE] < 0 && c[POST] < 0 && c[8] == 0));
        }
        if (!ok || (i == p->ncode - 1 && c[0] != OP_MATCH && c[0] != OP_JMP)) {
            PyErr_Format(PyExc_ValueError, "bad instruction %zd", i);
            return -1;
        }
    }
    return 0;
}

static PyObject *py_scan(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *block, *code, *sets, *lits, *prefixes, *context, *poll_prefixes;
    int validate, polling, extract, poll_mode, target_slot, fused, poll_slot;
    if (!PyArg_ParseTuple(args, "OOOOiiiiiO!OpiO!", &block, &code, &sets, &lits, &validate,
                          &polling, &extract, &poll_mode, &target_slot, &PyTuple_Type, &prefixes,
                          &context, &fused, &poll_slot, &PyTuple_Type, &poll_prefixes))
        return NULL;
    Scan S;
    memset(&S, 0, sizeof S);
    Py_buffer bview, pviews[3], cview;
    int have_context = 0;
    if (PyObject_GetBuffer(block, &bview, PyBUF_SIMPLE) < 0)
        return NULL;
    if (get_prog(code, sets, lits, &S.prog, pviews) < 0) {
        PyBuffer_Release(&bview);
        return NULL;
    }
    PyObject *result = NULL;
    Py_ssize_t np = PyTuple_GET_SIZE(prefixes);
    S.prefixes = PyMem_Calloc((size_t)np + 1, sizeof *S.prefixes);
    S.prefix_lens = PyMem_Calloc((size_t)np + 1, sizeof *S.prefix_lens);
    if (!S.prefixes || !S.prefix_lens) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < np; i++) {
        PyObject *item = PyTuple_GET_ITEM(prefixes, i);
        if (!PyBytes_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "prefixes must be bytes");
            goto done;
        }
        S.prefixes[i] = (const uint8_t *)PyBytes_AS_STRING(item);
        S.prefix_lens[i] = PyBytes_GET_SIZE(item);
    }
    S.nprefixes = np;
    Py_ssize_t npp = PyTuple_GET_SIZE(poll_prefixes);
    S.poll_prefixes = PyMem_Calloc((size_t)npp + 1, sizeof *S.poll_prefixes);
    S.poll_prefix_lens = PyMem_Calloc((size_t)npp + 1, sizeof *S.poll_prefix_lens);
    if (!S.poll_prefixes || !S.poll_prefix_lens) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < npp; i++) {
        PyObject *item = PyTuple_GET_ITEM(poll_prefixes, i);
        if (!PyBytes_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "prefixes must be bytes");
            goto done;
        }
        S.poll_prefixes[i] = (const uint8_t *)PyBytes_AS_STRING(item);
        S.poll_prefix_lens[i] = PyBytes_GET_SIZE(item);
    }
    S.npoll_prefixes = npp;
    S.fused = fused;
    S.poll_slot = poll_slot;
    S.context_len = -1;
    if (context != Py_None) {
        if (PyObject_GetBuffer(context, &cview, PyBUF_SIMPLE) < 0)
            goto done;
        have_context = 1;
        S.context = cview.buf;
        S.context_len = cview.len;
    }
    if (check_prog(&S.prog) < 0)
        goto done;
    if (decode_sets(&S.prog) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    if (validate < 0 || validate >= S.prog.ncode || extract < 0 || extract >= S.prog.ncode ||
        (poll_mode == POLL_PROGRAM && (polling < 0 || polling >= S.prog.ncode)) ||
        poll_mode < 0 || poll_mode > 2 || (target_slot != 4 && target_slot != 6) ||
        poll_slot < -1 || poll_slot >= SLOTS) {
        PyErr_SetString(PyExc_ValueError, "bad entry points");
        goto done;
    }
    S.data = bview.buf;
    S.len = (size_t)bview.len;
    S.validate = validate;
    S.polling = polling;
    S.extract = extract;
    S.poll_mode = poll_mode;
    S.target_slot = target_slot;
    if (users_init(&S.users) < 0 || pairs_init(&S.pairs, (size_t)bview.len) < 0) {
        PyErr_NoMemory();
        goto done;
    }

    Py_BEGIN_ALLOW_THREADS
    scan_block(&S);
    Py_END_ALLOW_THREADS

    if (S.oom) {
        PyErr_NoMemory();
        goto done;
    }
    {
        size_t count = S.pairs.count;
        uint32_t *uids = malloc((count ? count : 1) * sizeof *uids);
        int64_t *tss = malloc((count ? count : 1) * sizeof *tss);
        uint32_t *ns = malloc((count ? count : 1) * sizeof *ns);
        if (!uids || !tss || !ns) {
            free(uids);
            free(tss);
            free(ns);
            PyErr_NoMemory();
            goto done;
        }
        for (size_t i = 0; i < count; i++) {
            PairSlot *sl = &S.pairs.slots[S.pairs.order[i]];
            uids[i] = sl->uid;
            tss[i] = sl->ts;
            ns[i] = sl->n;
        }
        PyObject *cu = new_column("I", uids, (int64_t)count);
        PyObject *ct = new_column("l", tss, (int64_t)count);
        PyObject *cn = new_column("I", ns, (int64_t)count);
        PyObject *users = PyList_New((Py_ssize_t)S.users.count);
        PyObject *mal = PyList_New(S.nmal);
        PyObject *und = PyBytes_FromStringAndSize((const char *)S.undecided.data,
                                                  (Py_ssize_t)S.undecided.len);
        PyObject *und_rows = PyBytes_FromStringAndSize((const char *)S.undecided_rows.data,
                                                       (Py_ssize_t)S.undecided_rows.len);
        int ok = cu && ct && cn && users && mal && und && und_rows;
        for (size_t i = 0; ok && i < S.users.count; i++) {
            PyObject *name = PyUnicode_DecodeASCII(
                (const char *)S.users.pool + S.users.offsets[i], S.users.lengths[i], "strict");
            if (!name)
                ok = 0;
            else
                PyList_SET_ITEM(users, (Py_ssize_t)i, name);
        }
        for (int i = 0; ok && i < S.nmal; i++) {
            PyObject *v = PyLong_FromLongLong(S.malformed_rows[i]);
            if (!v)
                ok = 0;
            else
                PyList_SET_ITEM(mal, i, v);
        }
        if (ok)
            result = Py_BuildValue("{sLsLsLsLsLsLsNsNsNsNsNsNsN}", "rows", (long long)S.rows,
                                   "blank", (long long)S.blank, "malformed",
                                   (long long)S.malformed, "polling", (long long)S.polling_n,
                                   "anonymous", (long long)S.anonymous, "counted",
                                   (long long)S.counted, "malformed_rows", mal, "users", users,
                                   "uid", cu, "ts", ct, "n", cn, "undecided", und,
                                   "undecided_rows", und_rows);
        else {
            Py_XDECREF(cu);
            Py_XDECREF(ct);
            Py_XDECREF(cn);
            Py_XDECREF(users);
            Py_XDECREF(mal);
            Py_XDECREF(und);
            Py_XDECREF(und_rows);
        }
    }
done:
    users_free(&S.users);
    pairs_free(&S.pairs);
    free(S.undecided.data);
    free(S.undecided_rows.data);
    free(S.prog.info);
    PyMem_Free(S.prefixes);
    PyMem_Free(S.prefix_lens);
    PyMem_Free(S.poll_prefixes);
    PyMem_Free(S.poll_prefix_lens);
    if (have_context)
        PyBuffer_Release(&cview);
    for (int i = 0; i < 3; i++)
        PyBuffer_Release(&pviews[i]);
    PyBuffer_Release(&bview);
    return result;
}

/* match(line, code, sets, lits, entry) -> (result, captures): for tests of the machine. */
static PyObject *py_match(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *line, *code, *sets, *lits;
    int entry;
    if (!PyArg_ParseTuple(args, "OOOOi", &line, &code, &sets, &lits, &entry))
        return NULL;
    Prog prog;
    Py_buffer lview, pviews[3];
    if (PyObject_GetBuffer(line, &lview, PyBUF_SIMPLE) < 0)
        return NULL;
    if (get_prog(code, sets, lits, &prog, pviews) < 0) {
        PyBuffer_Release(&lview);
        return NULL;
    }
    PyObject *result = NULL;
    prog.info = NULL;
    if (check_prog(&prog) == 0 && decode_sets(&prog) < 0) {
        PyErr_NoMemory();
    } else if (prog.info != NULL) {
        if (entry < 0 || entry >= prog.ncode) {
            PyErr_SetString(PyExc_ValueError, "bad entry point");
        } else {
            Run R;
            int r = run_prog(&R, &prog, entry, lview.buf, lview.len, lview.len);
            result = Py_BuildValue("(i(LLLLLLLLLL))", r, R.caps[0], R.caps[1], R.caps[2],
                                   R.caps[3], R.caps[4], R.caps[5], R.caps[6], R.caps[7],
                                   R.caps[8], R.caps[9]);
        }
    }
    free(prog.info);
    for (int i = 0; i < 3; i++)
        PyBuffer_Release(&pviews[i]);
    PyBuffer_Release(&lview);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", py_scan, METH_VARARGS, "Classify and reduce one block of lines."},
    {"match", py_match, METH_VARARGS, "Run one program on one line (for tests)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_linescan", "Fast exact scanning of access-log blocks.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__linescan(void)
{
    if (PyType_Ready(&ColumnType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (!m)
        return NULL;
    /* Bumped whenever the program format or scan()'s arguments change, so that a module
     * built from older sources is not used with newer Python code. */
    if (PyModule_AddIntConstant(m, "ABI", 2) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&ColumnType);
    if (PyModule_AddObject(m, "Column", (PyObject *)&ColumnType) < 0) {
        Py_DECREF(&ColumnType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

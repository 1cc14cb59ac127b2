/* kitefan._records: JSON lines and CSV rows of a tick frame, written straight from its bytes.
 *
 * The compiled half of kitefan.render.records (see its docstring): it walks one binary frame
 * (count:u16 { length:u16 packet }*, big-endian; kitefan/codec.py has the layouts) and writes,
 * for every packet of a known length, exactly the text the pure-Python reference writes:
 *
 *   jsonl(frame, head, name_of) -> bytes | None
 *       one line per tick: head (b'{"type":"tick","key":...,"connection":...,"symbol":'), the
 *       symbol as a JSON string (json.dumps with ensure_ascii=False), then the fields of
 *       Tick.as_dict() in its order, datetimes as isoformat() in IST, each line ending in "\n";
 *   csv(frame, head, name_of) -> bytes | None
 *       one row per tick: head (b'received_at,key,connection,', already quoted), the symbol
 *       quoted as the csv module quotes (QUOTE_MINIMAL, excel dialect), then the columns of
 *       CSV_COLUMNS from instrument_token on, each row ending in "\r\n".
 *
 * name_of(token) is called once per tick and must return a str; or name_of is a dict (exactly),
 * token -> str, looked up without a call, a token it lacks named by its digits (str(token)),
 * as FeedManager.name_of names it. None means "not done here":
 * the frame's structure is not what kitefan.codec.decode_packets accepts, or a name is not a
 * str or has no UTF-8 form; the caller then takes the reference path, which gives the same
 * text or the same exception. An exception raised by name_of propagates.
 *
 * Exactness: prices are integers over the segment's divisor (100, 1e4 or 1e7). Python's repr of
 * such a quotient is the decimal v / divisor with its trailing zeros dropped (and ".0" when
 * nothing is left after the point): the quotient is the double nearest that decimal, and no
 * other decimal of 15 significant digits or fewer has the same nearest double, so it is the
 * shortest that round-trips. Any other float (the change, a genuine float computation) is
 * written by put_double: repr's shortest round-trip decimal worked out in exact 128-bit integer
 * arithmetic for the fixed-notation range, and PyOS_double_to_string(x, 'r', 0,
 * Py_DTSF_ADD_DOT_0) (float.__repr__ itself) for what that leaves: exponent form (repr switches
 * to it below 1e-4, which only CDS prices under 1000 units reach), and ties. dtoa was a quarter
 * of the encoder's time. The change is computed in the order Tick.as_dict computes it; the build
 * turns off floating-point contraction so that the compiler cannot fuse its multiply and divide
 * differently.
 *
 * fields(...), for kitefan.columnar, copies the packets of one length into columns: native u32
 * words, prices divided by their segment's divisor, order counts (see it below).
 *
 * crc32s(buffers), for kitefan.recording, is zlib.crc32 of each buffer, all of them in one call.
 *
 * fold(...), for kitefan.candles, takes a run of packets into their symbols' forming bars: the
 * hot path of CandleBuilder._take_full, the same updates in the same order (see it below).
 *
 * The GIL: released only for work long enough to be worth it. A thread that gives the GIL up
 * while another runs Python waits up to the switch interval (5 ms) to take it back, so the
 * column copy and the checksums release it for a megabyte or more. jsonl and csv release it for
 * a frame of RELEASE_TICKS ticks or more, after looking every name up with it held: they run in
 * the records' worker thread (kitefan.output.write_records), and formatting a frame of 3000
 * full ticks there takes milliseconds the event loop would otherwise wait.
 *
 * Must not: allocate a Python object per field, or read past the frame.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Work of at least this many bytes runs with the GIL released (see the top). */
#define RELEASE_GIL_BYTES (1 << 20)

/* ---- an output buffer: a bytes object of the room needed at most, cut to size at the end - */

typedef struct {
    PyObject *bytes;
    char *start;
    char *pos;
    char *end;
} Out;

static int
out_init(Out *o, Py_ssize_t size)
{
    if (size < 256) {
        size = 256;
    }
    o->bytes = PyBytes_FromStringAndSize(NULL, size);
    if (o->bytes == NULL) {
        return -1;
    }
    o->start = o->pos = PyBytes_AS_STRING(o->bytes);
    o->end = o->start + size;
    return 0;
}

static PyObject *
out_finish(Out *o)
{
    Py_ssize_t used = o->pos - o->start;
    if (_PyBytes_Resize(&o->bytes, used) < 0) {
        return NULL;
    }
    return o->bytes;
}

static void
out_drop(Out *o)
{
    Py_CLEAR(o->bytes);
}

/* Literal text of known length: the caller reserved room. */
#define PUT(o, lit)                                 \
    do {                                            \
        memcpy((o)->pos, (lit), sizeof(lit) - 1);   \
        (o)->pos += sizeof(lit) - 1;                \
    } while (0)

/* ---- numbers ----------------------------------------------------------------------------- */

static const char DIGIT_PAIRS[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static char *
put_u32(char *p, uint32_t v)
{
    char tmp[10];
    int n = 10;
    while (v >= 100) {
        uint32_t pair = v % 100;
        v /= 100;
        n -= 2;
        memcpy(tmp + n, DIGIT_PAIRS + 2 * pair, 2);
    }
    if (v >= 10) {
        n -= 2;
        memcpy(tmp + n, DIGIT_PAIRS + 2 * v, 2);
    }
    else {
        tmp[--n] = (char)('0' + v);
    }
    memcpy(p, tmp + n, (size_t)(10 - n));
    return p + (10 - n);
}

/* The thread state of an encoder that released the GIL to write its lines (this thread's),
 * for the rare float that needs dtoa to take it back; NULL while the GIL is held. */
#ifdef _MSC_VER
#define THREAD_LOCAL __declspec(thread)
#else
#define THREAD_LOCAL _Thread_local
#endif
static THREAD_LOCAL PyThreadState *released = NULL;

/* repr(x) of a float through Python's own dtoa; at most 32 bytes. Takes the GIL back for the
 * call if the encoder released it. */
static char *
put_double_slow(char *p, double x)
{
    PyThreadState *state = released;
    if (state != NULL) {
        released = NULL;
        PyEval_RestoreThread(state);
    }
    char *s = PyOS_double_to_string(x, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (s != NULL) {
        size_t n = strlen(s);
        memcpy(p, s, n);
        PyMem_Free(s);
        p += n;
    }
    else {
        p = NULL;
    }
    if (state != NULL) {
        released = PyEval_SaveThread();
    }
    return p;
}

#if defined(__SIZEOF_INT128__)
typedef unsigned __int128 u128;

static u128 POW10[22]; /* 10**k, filled at import */

/* The candidate with k fractional digits inside [low, high] (see put_double_fast): 1 found
 * (*out set), 0 none, -1 a tie for the nearest (left to dtoa). */
static int
shortest_at(int k, u128 four_m, u128 g, int q, int inclusive, u128 *out)
{
    u128 scale = POW10[k];
    u128 center = four_m * scale;
    u128 low = (four_m - g) * scale, high = (four_m + 2) * scale;
    u128 mask = ((u128)1 << q) - 1, half = (u128)1 << (q - 1);
    u128 d = center >> q, rem = center & mask;
    if (rem == half) {
        return -1;
    }
    if (rem > half) {
        d += 1;
    }
    /* round(x * 10**k), else (the gap below x is half the gap above) a neighbour */
    for (int step = 0; step < 3; step++) {
        if (step == 2 && d == 0) {
            break;
        }
        u128 cand = step == 0 ? d : step == 1 ? d + 1 : d - 1;
        u128 at = cand << q;
        if (inclusive ? (at >= low && at <= high) : (at > low && at < high)) {
            *out = cand;
            return 1;
        }
    }
    return 0;
}

static char *
put_double_fast(char *p, double x)
{
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    int biased = (int)((bits >> 52) & 0x7FF);
    uint64_t frac = bits & ((UINT64_C(1) << 52) - 1);
    if (biased == 0 || biased == 0x7FF) {
        return NULL;
    }
    int e = biased - 1075;
    if (e >= 0 || e < -66) {
        return NULL;
    }
    uint64_t m = frac | (UINT64_C(1) << 52);
    int q = 2 - e;
    u128 g = (frac == 0 && biased > 1) ? 1 : 2;
    int inclusive = (m & 1) == 0;
    u128 four_m = (u128)m << 2;
    /* A decimal with k fractional digits that reads back as x has one with k + 1: the fewest
     * digits are found by bisection. */
    u128 found;
    int got = shortest_at(21, four_m, g, q, inclusive, &found);
    if (got != 1) {
        return NULL;
    }
    int lo = -1, hi = 21; /* none at lo (or lo < 0), one at hi */
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        u128 cand;
        got = shortest_at(mid, four_m, g, q, inclusive, &cand);
        if (got < 0) {
            return NULL;
        }
        if (got) {
            hi = mid;
            found = cand;
        }
        else {
            lo = mid;
        }
    }
    int k = hi;
    char digits[40];
    int n = 0;
    uint64_t v = (uint64_t)found; /* < 2**55 * 10 */
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    int decpt = n - k;
    if (decpt <= -4 || decpt > 16) {
        return NULL;
    }
    if (bits >> 63) {
        *p++ = '-';
    }
    if (decpt <= 0) {
        *p++ = '0';
        *p++ = '.';
        for (int i = decpt; i < 0; i++) {
            *p++ = '0';
        }
        while (n) {
            *p++ = digits[--n];
        }
        return p;
    }
    for (int i = 0; i < decpt; i++) {
        *p++ = digits[--n];
    }
    *p++ = '.';
    if (n == 0) {
        *p++ = '0';
    }
    while (n) {
        *p++ = digits[--n];
    }
    return p;
}
#else
/* No 128-bit integers in this compiler: every float goes through dtoa. */
static char *
put_double_fast(char *p, double x)
{
    (void)p;
    (void)x;
    return NULL;
}
#endif

/* repr(x) of a float; at most 32 bytes. */
static char *
put_double(char *p, double x)
{
    if (x == 0.0) {
        if (signbit(x)) {
            *p++ = '-';
        }
        memcpy(p, "0.0", 3);
        return p + 3;
    }
    char *end = put_double_fast(p, x);
    return end != NULL ? end : put_double_slow(p, x);
}

/* The segment's divisor, as kitefan.models.divisor_for gives it, and its decimal places. */
typedef struct {
    double value;
    uint32_t scale;  /* the same, as an integer */
    int places;
} Divisor;

static const Divisor DIV_100 = {100.0, 100u, 2};
static const Divisor DIV_1E4 = {10000.0, 10000u, 4};
static const Divisor DIV_1E7 = {10000000.0, 10000000u, 7};

static const Divisor *
divisor_of(uint32_t token)
{
    switch (token & 0xFF) {
    case 3:
        return &DIV_1E7;
    case 6:
    case 12:
        return &DIV_1E4;
    default:
        return &DIV_100;
    }
}

/* The fraction digits of a price, trailing zeros dropped ("0" for none); scale and places are
 * constants where this is inlined, so that the divisions are multiplications. */
static inline char *
put_fraction(char *p, uint32_t frac, int places)
{
    if (frac == 0) {
        *p++ = '0';
        return p;
    }
    char digits[8];
    for (int i = places - 1; i >= 0; i--) {
        digits[i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    int n = places;
    while (digits[n - 1] == '0') {
        n--;
    }
    memcpy(p, digits, (size_t)n);
    return p + n;
}

/* repr(v / divisor); at most 32 bytes. */
static char *
put_price(char *p, uint32_t v, const Divisor *d)
{
    switch (d->places) {
    case 2:
        p = put_u32(p, v / 100u);
        *p++ = '.';
        if (v % 100u == 0) {
            *p++ = '0';
            return p;
        }
        /* one or two digits, a trailing zero dropped */
        {
            uint32_t frac = v % 100u;
            *p++ = (char)('0' + frac / 10);
            if (frac % 10) {
                *p++ = (char)('0' + frac % 10);
            }
        }
        return p;
    case 4:
        p = put_u32(p, v / 10000u);
        *p++ = '.';
        return put_fraction(p, v % 10000u, 4);
    default:
        if (v != 0 && v < 1000u) {
            /* below 1e-4: repr's exponent form */
            return put_double(p, (double)v / d->value);
        }
        p = put_u32(p, v / 10000000u);
        *p++ = '.';
        return put_fraction(p, v % 10000000u, 7);
    }
}

/* Tick.change: the int 0 when close is 0, else (last - close) * 100 / close in floats. */
static char *
put_change(char *p, uint32_t last_raw, uint32_t close_raw, const Divisor *d)
{
    if (close_raw == 0) {
        *p++ = '0';
        return p;
    }
    double last = (double)last_raw / d->value;
    double close = (double)close_raw / d->value;
    double change = (last - close) * 100.0 / close;
    return put_double(p, change);
}

/* ---- timestamps: datetime.fromtimestamp(s, IST).isoformat(), 25 bytes ---------------------- */

typedef struct {
    int64_t epoch;
    char text[25];
} IsoCache;

static void
iso_of(IsoCache *c, uint32_t epoch_s)
{
    if (c->epoch == (int64_t)epoch_s) {
        return;
    }
    c->epoch = epoch_s;
    int64_t t = (int64_t)epoch_s + 19800;  /* +05:30 */
    int64_t z = t / 86400;
    int64_t secs = t % 86400;
    /* civil_from_days (H. Hinnant), for days since 1970-01-01 >= 0 */
    z += 719468;
    int64_t era = z / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t day = doy - (153 * mp + 2) / 5 + 1;
    int64_t month = mp < 10 ? mp + 3 : mp - 9;
    if (month <= 2) {
        y += 1;
    }
    int hh = (int)(secs / 3600), mm = (int)(secs / 60 % 60), ss = (int)(secs % 60);
    char *s = c->text;
    s[0] = (char)('0' + y / 1000 % 10);
    s[1] = (char)('0' + y / 100 % 10);
    s[2] = (char)('0' + y / 10 % 10);
    s[3] = (char)('0' + y % 10);
    s[4] = '-';
    s[5] = (char)('0' + month / 10);
    s[6] = (char)('0' + month % 10);
    s[7] = '-';
    s[8] = (char)('0' + day / 10);
    s[9] = (char)('0' + day % 10);
    s[10] = 'T';
    s[11] = (char)('0' + hh / 10);
    s[12] = (char)('0' + hh % 10);
    s[13] = ':';
    s[14] = (char)('0' + mm / 10);
    s[15] = (char)('0' + mm % 10);
    s[16] = ':';
    s[17] = (char)('0' + ss / 10);
    s[18] = (char)('0' + ss % 10);
    memcpy(s + 19, "+05:30", 6);
}

/* ---- the frame --------------------------------------------------------------------------- */

static inline uint32_t
u32_at(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline uint32_t
u16_at(const unsigned char *p)
{
    return (uint32_t)p[0] << 8 | (uint32_t)p[1];
}

static int
known_length(uint32_t length)
{
    return length == 8 || length == 28 || length == 32 || length == 44 || length == 184;
}

/* Whether decode_packets accepts the frame's structure; the number of ticks it holds. */
static int
check_frame(const unsigned char *data, Py_ssize_t size, Py_ssize_t *ticks)
{
    *ticks = 0;
    if (size < 2) {
        return 1;
    }
    uint32_t count = u16_at(data);
    Py_ssize_t offset = 2;
    for (uint32_t i = 0; i < count; i++) {
        if (offset + 2 > size) {
            return 0;
        }
        uint32_t length = u16_at(data + offset);
        offset += 2;
        if (offset + (Py_ssize_t)length > size) {
            return 0;
        }
        if (known_length(length)) {
            (*ticks)++;
        }
        offset += length;
    }
    return offset == size;
}

/* The symbol of a tick: name_of(token) (or name_of[token], a dict) as UTF-8. 1 done, 0 not a
 * str or no UTF-8, -1 error. */
static int
symbol_of(PyObject *name_of, uint32_t token, PyObject **name, const char **text,
          Py_ssize_t *size)
{
    PyObject *arg = PyLong_FromUnsignedLong(token);
    if (arg == NULL) {
        return -1;
    }
    if (PyDict_CheckExact(name_of)) {
        *name = PyDict_GetItemWithError(name_of, arg); /* borrowed */
        if (*name != NULL) {
            Py_INCREF(*name);
        } else if (!PyErr_Occurred()) {
            *name = PyObject_Str(arg);
        }
    } else {
        *name = PyObject_CallOneArg(name_of, arg);
    }
    Py_DECREF(arg);
    if (*name == NULL) {
        return -1;
    }
    if (!PyUnicode_CheckExact(*name)) {
        Py_CLEAR(*name);
        return 0;
    }
    *text = PyUnicode_AsUTF8AndSize(*name, size);
    if (*text == NULL) {
        Py_CLEAR(*name);
        if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
            PyErr_Clear();
            return 0;
        }
        return -1;
    }
    return 1;
}

static const char HEX[] = "0123456789abcdef";

/* The symbol as json.dumps(s, ensure_ascii=False) writes it; 6 * size + 2 bytes at most. */
static char *
put_json_string(char *p, const char *s, Py_ssize_t size)
{
    *p++ = '"';
    for (Py_ssize_t i = 0; i < size; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *p++ = (char)c;
            continue;
        }
        *p++ = '\\';
        switch (c) {
        case '"':
            *p++ = '"';
            break;
        case '\\':
            *p++ = '\\';
            break;
        case '\b':
            *p++ = 'b';
            break;
        case '\f':
            *p++ = 'f';
            break;
        case '\n':
            *p++ = 'n';
            break;
        case '\r':
            *p++ = 'r';
            break;
        case '\t':
            *p++ = 't';
            break;
        default:
            *p++ = 'u';
            *p++ = '0';
            *p++ = '0';
            *p++ = HEX[c >> 4];
            *p++ = HEX[c & 0xF];
        }
    }
    *p++ = '"';
    return p;
}

/* The symbol as csv.writer (excel, QUOTE_MINIMAL) writes a field; 2 * size + 2 at most. */
static char *
put_csv_string(char *p, const char *s, Py_ssize_t size)
{
    int quote = 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        char c = s[i];
        if (c == ',' || c == '"' || c == '\r' || c == '\n') {
            quote = 1;
            break;
        }
    }
    if (!quote) {
        memcpy(p, s, (size_t)size);
        return p + size;
    }
    *p++ = '"';
    for (Py_ssize_t i = 0; i < size; i++) {
        if (s[i] == '"') {
            *p++ = '"';
        }
        *p++ = s[i];
    }
    *p++ = '"';
    return p;
}

/* The most any one tick writes besides the head and the symbol (a full packet's JSON is about
 * 1,100 bytes at its widest). */
#define TICK_ROOM 2048

/* One tick's JSON fields after the symbol, from its packet; the room was reserved. */
static char *
json_fields(char *p, const unsigned char *pk, uint32_t length, IsoCache *iso)
{
    uint32_t token = u32_at(pk);
    const Divisor *d = divisor_of(token);
    uint32_t last = u32_at(pk + 4);
    Out o;
    o.pos = p;
#define LIT(s) PUT(&o, s)
#define CHECKED(expr)            \
    do {                         \
        o.pos = (expr);          \
        if (o.pos == NULL) {     \
            return NULL;         \
        }                        \
    } while (0)
    if ((token & 0xFF) == 9) {
        LIT(",\"tradable\":false,\"mode\":\"");
    }
    else {
        LIT(",\"tradable\":true,\"mode\":\"");
    }
    switch (length) {
    case 8:
        LIT("ltp");
        break;
    case 28:
    case 44:
        LIT("quote");
        break;
    default:
        LIT("full");
    }
    LIT("\",\"instrument_token\":");
    o.pos = put_u32(o.pos, token);
    LIT(",\"last_price\":");
    CHECKED(put_price(o.pos, last, d));
    if (length == 8) {
        LIT("}\n");
        return o.pos;
    }
    if (length == 28 || length == 32) {
        uint32_t close = u32_at(pk + 20);
        LIT(",\"ohlc\":{\"high\":");
        CHECKED(put_price(o.pos, u32_at(pk + 8), d));
        LIT(",\"low\":");
        CHECKED(put_price(o.pos, u32_at(pk + 12), d));
        LIT(",\"open\":");
        CHECKED(put_price(o.pos, u32_at(pk + 16), d));
        LIT(",\"close\":");
        CHECKED(put_price(o.pos, close, d));
        LIT("},\"change\":");
        CHECKED(put_change(o.pos, last, close, d));
        if (length == 32) {
            iso_of(iso, u32_at(pk + 28));
            LIT(",\"exchange_timestamp\":\"");
            memcpy(o.pos, iso->text, 25);
            o.pos += 25;
            LIT("\"");
        }
        LIT("}\n");
        return o.pos;
    }
    uint32_t close = u32_at(pk + 40);
    LIT(",\"last_traded_quantity\":");
    o.pos = put_u32(o.pos, u32_at(pk + 8));
    LIT(",\"average_traded_price\":");
    CHECKED(put_price(o.pos, u32_at(pk + 12), d));
    LIT(",\"volume_traded\":");
    o.pos = put_u32(o.pos, u32_at(pk + 16));
    LIT(",\"total_buy_quantity\":");
    o.pos = put_u32(o.pos, u32_at(pk + 20));
    LIT(",\"total_sell_quantity\":");
    o.pos = put_u32(o.pos, u32_at(pk + 24));
    LIT(",\"ohlc\":{\"open\":");
    CHECKED(put_price(o.pos, u32_at(pk + 28), d));
    LIT(",\"high\":");
    CHECKED(put_price(o.pos, u32_at(pk + 32), d));
    LIT(",\"low\":");
    CHECKED(put_price(o.pos, u32_at(pk + 36), d));
    LIT(",\"close\":");
    CHECKED(put_price(o.pos, close, d));
    LIT("},\"change\":");
    CHECKED(put_change(o.pos, last, close, d));
    if (length == 44) {
        LIT("}\n");
        return o.pos;
    }
    iso_of(iso, u32_at(pk + 44));
    LIT(",\"last_trade_time\":\"");
    memcpy(o.pos, iso->text, 25);
    o.pos += 25;
    LIT("\",\"oi\":");
    o.pos = put_u32(o.pos, u32_at(pk + 48));
    LIT(",\"oi_day_high\":");
    o.pos = put_u32(o.pos, u32_at(pk + 52));
    LIT(",\"oi_day_low\":");
    o.pos = put_u32(o.pos, u32_at(pk + 56));
    iso_of(iso, u32_at(pk + 60));
    LIT(",\"exchange_timestamp\":\"");
    memcpy(o.pos, iso->text, 25);
    o.pos += 25;
    LIT("\",\"depth\":{\"buy\":[");
    for (int level = 0; level < 10; level++) {
        const unsigned char *q = pk + 64 + 12 * level;
        if (level == 5) {
            LIT("],\"sell\":[");
        }
        else if (level) {
            LIT(",");
        }
        LIT("{\"quantity\":");
        o.pos = put_u32(o.pos, u32_at(q));
        LIT(",\"price\":");
        CHECKED(put_price(o.pos, u32_at(q + 4), d));
        LIT(",\"orders\":");
        o.pos = put_u32(o.pos, u16_at(q + 8));
        LIT("}");
    }
    LIT("]}}\n");
    return o.pos;
}

/* One tick's CSV columns after the symbol; the room was reserved. */
static char *
csv_fields(char *p, const unsigned char *pk, uint32_t length, IsoCache *iso)
{
    uint32_t token = u32_at(pk);
    const Divisor *d = divisor_of(token);
    uint32_t last = u32_at(pk + 4);
    Out o;
    o.pos = p;
    LIT(",");
    o.pos = put_u32(o.pos, token);
    switch (length) {
    case 8:
        LIT(",ltp");
        break;
    case 28:
    case 44:
        LIT(",quote");
        break;
    default:
        LIT(",full");
    }
    if ((token & 0xFF) == 9) {
        LIT(",False,");
    }
    else {
        LIT(",True,");
    }
    CHECKED(put_price(o.pos, last, d));
    if (length == 8) {
        /* ltq atp volume buy sell open high low close change ltt oi oih oil ts bid bq ask aq */
        LIT(",,,,,,,,,,,,,,,,,,,\r\n");
        return o.pos;
    }
    if (length == 28 || length == 32) {
        uint32_t close = u32_at(pk + 20);
        LIT(",,,,,,");
        CHECKED(put_price(o.pos, u32_at(pk + 16), d));
        LIT(",");
        CHECKED(put_price(o.pos, u32_at(pk + 8), d));
        LIT(",");
        CHECKED(put_price(o.pos, u32_at(pk + 12), d));
        LIT(",");
        CHECKED(put_price(o.pos, close, d));
        LIT(",");
        CHECKED(put_change(o.pos, last, close, d));
        LIT(",,,,,");
        if (length == 32) {
            iso_of(iso, u32_at(pk + 28));
            memcpy(o.pos, iso->text, 25);
            o.pos += 25;
        }
        LIT(",,,,\r\n");
        return o.pos;
    }
    uint32_t close = u32_at(pk + 40);
    LIT(",");
    o.pos = put_u32(o.pos, u32_at(pk + 8));
    LIT(",");
    CHECKED(put_price(o.pos, u32_at(pk + 12), d));
    for (int i = 16; i <= 24; i += 4) {
        LIT(",");
        o.pos = put_u32(o.pos, u32_at(pk + i));
    }
    for (int i = 28; i <= 40; i += 4) {
        LIT(",");
        CHECKED(put_price(o.pos, u32_at(pk + i), d));
    }
    LIT(",");
    CHECKED(put_change(o.pos, last, close, d));
    if (length == 44) {
        LIT(",,,,,,,,,\r\n");
        return o.pos;
    }
    LIT(",");
    iso_of(iso, u32_at(pk + 44));
    memcpy(o.pos, iso->text, 25);
    o.pos += 25;
    for (int i = 48; i <= 56; i += 4) {
        LIT(",");
        o.pos = put_u32(o.pos, u32_at(pk + i));
    }
    LIT(",");
    iso_of(iso, u32_at(pk + 60));
    memcpy(o.pos, iso->text, 25);
    o.pos += 25;
    /* the best bid (level 0) and the best offer (level 5): price then quantity */
    LIT(",");
    CHECKED(put_price(o.pos, u32_at(pk + 68), d));
    LIT(",");
    o.pos = put_u32(o.pos, u32_at(pk + 64));
    LIT(",");
    CHECKED(put_price(o.pos, u32_at(pk + 128), d));
    LIT(",");
    o.pos = put_u32(o.pos, u32_at(pk + 124));
    LIT("\r\n");
    return o.pos;
#undef LIT
#undef CHECKED
}

typedef char *(*FieldsFn)(char *, const unsigned char *, uint32_t, IsoCache *);

/* One tick to write: its packet and its symbol (a reference held while the text is read). */
typedef struct {
    const unsigned char *packet;
    uint32_t length;
    PyObject *name;
    const char *text;
    Py_ssize_t size;
} Line;

/* Frames of at least this many ticks are written with the GIL released (names are looked up
 * first, with it held), so that a writer thread formats while the event loop runs. */
#define RELEASE_TICKS 256

static PyObject *
encode(PyObject *args, int json)
{
    Py_buffer frame;
    const char *head;
    Py_ssize_t head_size;
    PyObject *name_of;
    if (!PyArg_ParseTuple(args, json ? "y*y#O:jsonl" : "y*y#O:csv", &frame, &head, &head_size,
                          &name_of)) {
        return NULL;
    }
    const unsigned char *data = frame.buf;
    Py_ssize_t size = frame.len, ticks, named = 0;
    PyObject *result = NULL;
    Out out = {NULL, NULL, NULL, NULL};
    Line *lines = NULL;
    if (!check_frame(data, size, &ticks)) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    lines = PyMem_Malloc(sizeof(Line) * (size_t)(ticks ? ticks : 1));
    if (lines == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* First the names, with the GIL, and the room the lines can take at most. */
    Py_ssize_t room = 0, offset = 2;
    uint32_t count = size < 2 ? 0 : u16_at(data);
    for (uint32_t i = 0; i < count; i++) {
        uint32_t length = u16_at(data + offset);
        offset += 2;
        const unsigned char *pk = data + offset;
        offset += length;
        if (!known_length(length)) {
            continue;
        }
        Line *line = &lines[named];
        int got = symbol_of(name_of, u32_at(pk), &line->name, &line->text, &line->size);
        if (got <= 0) {
            if (got == 0) {
                result = Py_NewRef(Py_None);
            }
            goto done;
        }
        named++;
        line->packet = pk;
        line->length = length;
        room += head_size + 6 * line->size + 2 + TICK_ROOM;
    }
    if (out_init(&out, room) < 0) {
        goto done;
    }
    /* Then the text, into room reserved already: no Python object is touched but the output's
     * own buffer, not yet seen by anyone (a float repr leaves the fast path only with the GIL
     * taken back). */
    FieldsFn fields = json ? json_fields : csv_fields;
    IsoCache iso = {-1, {0}};
    char *pos = out.pos;
    int release = named >= RELEASE_TICKS;
    if (release) {
        released = PyEval_SaveThread();
    }
    for (Py_ssize_t i = 0; i < named && pos != NULL; i++) {
        Line *line = &lines[i];
        memcpy(pos, head, (size_t)head_size);
        pos += head_size;
        pos = json ? put_json_string(pos, line->text, line->size)
                   : put_csv_string(pos, line->text, line->size);
        pos = fields(pos, line->packet, line->length, &iso);
    }
    if (release) {
        PyEval_RestoreThread(released);
        released = NULL;
    }
    if (pos == NULL) {
        goto done;
    }
    out.pos = pos;
    result = out_finish(&out);
    out.bytes = NULL;
done:
    if (lines != NULL) {
        for (Py_ssize_t i = 0; i < named; i++) {
            Py_DECREF(lines[i].name);
        }
        PyMem_Free(lines);
    }
    out_drop(&out);
    PyBuffer_Release(&frame);
    return result;
}

static PyObject *
records_jsonl(PyObject *Py_UNUSED(module), PyObject *args)
{
    return encode(args, 1);
}

static PyObject *
records_csv(PyObject *Py_UNUSED(module), PyObject *args)
{
    return encode(args, 0);
}

/* ---- fields: packets of one length as columns, for kitefan.columnar ------------------- */

/* fields(words, prices, orders, total, column, source, offset, count, step, plan, divisors)
 *     -> None
 *
 * words is a writable C-contiguous buffer of u32 of shape (len(plan), total). The count packets
 * in source, the first at offset and each step bytes after the one before, each 4 * len(plan)
 * bytes of big-endian u32, go to columns column onwards, each word where plan (one signed byte
 * per word) says: 0 to its row of words (native u32); p > 0 to row p - 1 of prices (float64:
 * the u32 over divisors[segment], the segment being the low byte of the packet's first word,
 * divisors being 256 float64); p < 0 to row -p - 1 of orders (u16: the word's high half). The
 * rows of words that plan sends elsewhere are left as they were. Exactly what kitefan.columnar's
 * numpy path computes (a u32 made a double, then one IEEE division); bounds are checked: nothing
 * is read or written past a buffer. The GIL is released while copying.
 */
static PyObject *
records_fields(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer words, prices, orders, source, plan, divisors;
    Py_ssize_t total, column, offset, count, step;
    if (!PyArg_ParseTuple(args, "w*w*w*nny*nnny*y*", &words, &prices, &orders, &total, &column,
                          &source, &offset, &count, &step, &plan, &divisors)) {
        return NULL;
    }
    PyObject *result = NULL;
    Py_ssize_t nwords = plan.len;
    if (total <= 0 || words.len != 4 * nwords * total || prices.len % (8 * total) ||
        orders.len % (2 * total) || divisors.len != 256 * 8) {
        PyErr_SetString(PyExc_ValueError, "fields: the outputs do not match the plan");
        goto done;
    }
    Py_ssize_t nprices = prices.len / 8 / total, norders = orders.len / 2 / total;
    const signed char *code = (const signed char *)plan.buf;
    for (Py_ssize_t w = 0; w < nwords; w++) {
        if (code[w] > nprices || -code[w] > norders) {
            PyErr_SetString(PyExc_ValueError, "fields: the plan names a row past the outputs");
            goto done;
        }
    }
    if (column < 0 || count < 0 || column > total - count || offset < 0 || step < 4 * nwords ||
        nwords < 1) {
        PyErr_SetString(PyExc_ValueError, "fields: column, count, offset or step out of range");
        goto done;
    }
    if (count && (offset > source.len || source.len - offset < 4 * nwords ||
                  (source.len - offset - 4 * nwords) / step < count - 1)) {
        PyErr_SetString(PyExc_ValueError, "fields: the packets run past the source");
        goto done;
    }
    {
        uint32_t *w32 = (uint32_t *)words.buf;
        double *f64 = (double *)prices.buf;
        uint16_t *u16 = (uint16_t *)orders.buf;
        const double *div = (const double *)divisors.buf;
        const unsigned char *src = (const unsigned char *)source.buf + offset;
        double by[64];
        PyThreadState *saved = NULL;
        if (count * step >= RELEASE_GIL_BYTES) {
            saved = PyEval_SaveThread();
        }
        for (Py_ssize_t first = 0; first < count; first += 64) {
            Py_ssize_t last = first + 64 < count ? first + 64 : count;
            for (Py_ssize_t i = first; i < last; i++) {
                by[i - first] = div[src[i * step + 3]];
            }
            for (Py_ssize_t w = 0; w < nwords; w++) {
                const unsigned char *p = src + 4 * w;
                int c = code[w];
                if (c == 0) {
                    uint32_t *row = w32 + w * total + column;
                    for (Py_ssize_t i = first; i < last; i++) {
                        uint32_t v;
                        memcpy(&v, p + i * step, 4);
                        row[i] = __builtin_bswap32(v);
                    }
                } else if (c > 0) {
                    double *row = f64 + (c - 1) * total + column;
                    for (Py_ssize_t i = first; i < last; i++) {
                        uint32_t v;
                        memcpy(&v, p + i * step, 4);
                        row[i] = (double)__builtin_bswap32(v) / by[i - first];
                    }
                } else {
                    uint16_t *row = u16 + (-c - 1) * total + column;
                    for (Py_ssize_t i = first; i < last; i++) {
                        const unsigned char *q = p + i * step;
                        row[i] = (uint16_t)(q[0] << 8 | q[1]);
                    }
                }
            }
        }
        if (saved != NULL) {
            PyEval_RestoreThread(saved);
        }
    }
    Py_INCREF(Py_None);
    result = Py_None;
done:
    PyBuffer_Release(&words);
    PyBuffer_Release(&prices);
    PyBuffer_Release(&orders);
    PyBuffer_Release(&source);
    PyBuffer_Release(&plan);
    PyBuffer_Release(&divisors);
    return result;
}

/* ---- fold: a run of packets into forming candle bars ------------------------------------ */

static int
bar_int(PyObject *bar, Py_ssize_t i, long long *out)
{
    *out = PyLong_AsLongLong(PyList_GET_ITEM(bar, i));
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

static int
bar_set(PyObject *bar, Py_ssize_t i, PyObject *value)
{
    /* PyList_SetItem steals the reference; the caller's stays its own. */
    Py_INCREF(value);
    return PyList_SetItem(bar, i, value);
}

/* fold(frame, offset, count, step, words, lane, miss, whole) -> bool
 *
 * count packets of step bytes in frame, the first at offset (after its length field), each read
 * as five unsigned big-endian 4-byte words at the word indexes of `words` (5 bytes): token,
 * price, volume, oi, t. A packet whose token has a bar in `lane` (dict: token -> list of at
 * least 10) with bar[0] <= t < bar[1] updates that bar exactly as CandleBuilder._take_full does:
 * high (bar[3]) or low (bar[4]), close (bar[5]), ticks (bar[6]) + 1, volume (bar[8]), oi
 * (bar[9]). Any other packet is handed to miss(token, price, volume, oi, t), in packet order,
 * before the next is read (miss may change lane). An exception raised by miss propagates.
 *
 * With whole true, the packets are a whole frame's (offset 4, the frame exactly count packets
 * long) and the length field before each one is checked first: when any is not step - 2, the
 * frame is not one run and nothing is done (False). Otherwise True. */
static PyObject *
records_fold(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer frame, words;
    Py_ssize_t offset, count, step;
    PyObject *lane, *miss;
    int whole = 0;
    if (!PyArg_ParseTuple(args, "y*nnny*O!O|p:fold", &frame, &offset, &count, &step, &words,
                          &PyDict_Type, &lane, &miss, &whole)) {
        return NULL;
    }
    PyObject *result = NULL;
    const unsigned char *at = (const unsigned char *)words.buf;
    if (words.len != 5) {
        PyErr_SetString(PyExc_ValueError, "fold: words must be 5 word indexes");
        goto done;
    }
    Py_ssize_t reach = 0;
    for (int k = 0; k < 5; k++) {
        if (4 * (Py_ssize_t)at[k] + 4 > reach) {
            reach = 4 * (Py_ssize_t)at[k] + 4;
        }
    }
    if (offset < 0 || count < 0 || step < reach ||
        (count && (offset > frame.len || frame.len - offset < reach ||
                   (frame.len - offset - reach) / step < count - 1))) {
        PyErr_SetString(PyExc_ValueError, "fold: the packets run past the frame");
        goto done;
    }
    if (whole) {
        const unsigned char *f = (const unsigned char *)frame.buf;
        if (offset != 4 || frame.len != 2 + count * step || (f[0] << 8 | f[1]) != count) {
            PyErr_SetString(PyExc_ValueError, "fold: a whole frame is count packets from 4");
            goto done;
        }
        for (Py_ssize_t i = 0; i < count; i++) {
            const unsigned char *q = f + 2 + i * step;
            if ((q[0] << 8 | q[1]) != step - 2) {
                Py_INCREF(Py_False);
                result = Py_False;
                goto done;
            }
        }
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        const unsigned char *p = (const unsigned char *)frame.buf + offset + i * step;
        uint32_t v[5];
        for (int k = 0; k < 5; k++) {
            const unsigned char *q = p + 4 * at[k];
            v[k] = (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
        }
        PyObject *token = PyLong_FromUnsignedLong(v[0]);
        if (token == NULL) {
            goto done;
        }
        PyObject *bar = PyDict_GetItemWithError(lane, token); /* borrowed */
        long long start = 0, end = 0;
        int hit = 0;
        if (bar != NULL && PyList_Check(bar) && PyList_GET_SIZE(bar) >= 10) {
            if (bar_int(bar, 0, &start) < 0 || bar_int(bar, 1, &end) < 0) {
                Py_DECREF(token);
                goto done;
            }
            hit = start <= (long long)v[4] && (long long)v[4] < end;
        } else if (bar == NULL && PyErr_Occurred()) {
            Py_DECREF(token);
            goto done;
        }
        if (!hit) {
            PyObject *call = Py_BuildValue("(NkkkK)", token, (unsigned long)v[1],
                                           (unsigned long)v[2], (unsigned long)v[3],
                                           (unsigned long long)v[4]);
            if (call == NULL) {
                goto done;
            }
            PyObject *back = PyObject_Call(miss, call, NULL);
            Py_DECREF(call);
            if (back == NULL) {
                goto done;
            }
            Py_DECREF(back);
            continue;
        }
        Py_DECREF(token);
        Py_INCREF(bar); /* borrowed from lane: held while it is updated */
        long long high, low, ticks;
        if (bar_int(bar, 3, &high) < 0 || bar_int(bar, 4, &low) < 0 || bar_int(bar, 6, &ticks) < 0) {
            Py_DECREF(bar);
            goto done;
        }
        PyObject *price = PyLong_FromUnsignedLong(v[1]);
        PyObject *count_now = PyLong_FromLongLong(ticks + 1);
        PyObject *volume = PyLong_FromUnsignedLong(v[2]);
        PyObject *oi = PyLong_FromUnsignedLong(v[3]);
        int failed = price == NULL || count_now == NULL || volume == NULL || oi == NULL;
        if (!failed) {
            if ((long long)v[1] > high) {
                failed = bar_set(bar, 3, price) < 0;
            } else if ((long long)v[1] < low) {
                failed = bar_set(bar, 4, price) < 0;
            }
        }
        failed = failed || bar_set(bar, 5, price) < 0 || bar_set(bar, 6, count_now) < 0 ||
                 bar_set(bar, 8, volume) < 0 || bar_set(bar, 9, oi) < 0;
        Py_XDECREF(price);
        Py_XDECREF(count_now);
        Py_XDECREF(volume);
        Py_XDECREF(oi);
        Py_DECREF(bar);
        if (failed) {
            goto done;
        }
    }
    Py_INCREF(Py_True);
    result = Py_True;
done:
    PyBuffer_Release(&frame);
    PyBuffer_Release(&words);
    return result;
}

/* ---- crc32s: zlib's CRC-32 of many buffers in one call ---------------------------------- */

/* CRC-32 as zlib computes it (the reflected IEEE 802.3 polynomial, 0xEDB88320), eight bytes a
 * step with eight tables (slicing-by-8); crc_tables[0] is the classic byte-at-a-time table. */
static uint32_t crc_tables[8][256];

static void
crc_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) {
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        }
        crc_tables[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = crc_tables[0][n];
        for (int k = 1; k < 8; k++) {
            c = crc_tables[0][c & 0xFF] ^ (c >> 8);
            crc_tables[k][n] = c;
        }
    }
}

static uint32_t
crc32_of(const unsigned char *p, Py_ssize_t n)
{
    uint32_t c = 0xFFFFFFFFu;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (n >= 8) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + 4, 4);
        a ^= c;
        c = crc_tables[7][a & 0xFF] ^ crc_tables[6][(a >> 8) & 0xFF] ^
            crc_tables[5][(a >> 16) & 0xFF] ^ crc_tables[4][a >> 24] ^
            crc_tables[3][b & 0xFF] ^ crc_tables[2][(b >> 8) & 0xFF] ^
            crc_tables[1][(b >> 16) & 0xFF] ^ crc_tables[0][b >> 24];
        p += 8;
        n -= 8;
    }
#endif
    while (n-- > 0) {
        c = crc_tables[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
    }
    return c ^ 0xFFFFFFFFu;
}

static PyObject *
records_crc32s(PyObject *Py_UNUSED(module), PyObject *arg)
{
    PyObject *seq = PySequence_Fast(arg, "crc32s: buffers must be a sequence");
    if (seq == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *result = NULL;
    uint32_t *crcs = NULL;
    Py_buffer *views = PyMem_Calloc(n ? (size_t)n : 1, sizeof(Py_buffer));
    Py_ssize_t held = 0, total = 0;
    if (views == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    crcs = PyMem_Malloc((n ? (size_t)n : 1) * sizeof(uint32_t));
    if (crcs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; held < n; held++) {
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, held), &views[held],
                               PyBUF_SIMPLE) < 0) {
            goto done;
        }
        total += views[held].len;
    }
    {
        PyThreadState *saved = total >= RELEASE_GIL_BYTES ? PyEval_SaveThread() : NULL;
        for (Py_ssize_t i = 0; i < n; i++) {
            crcs[i] = crc32_of((const unsigned char *)views[i].buf, views[i].len);
        }
        if (saved != NULL) {
            PyEval_RestoreThread(saved);
        }
    }
    result = PyList_New(n);
    if (result == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *value = PyLong_FromUnsignedLong(crcs[i]);
        if (value == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, value);
    }
done:
    for (Py_ssize_t i = 0; i < held; i++) {
        PyBuffer_Release(&views[i]);
    }
    PyMem_Free(views);
    PyMem_Free(crcs);
    Py_DECREF(seq);
    return result;
}

/* ---- the dashboard's board: the latest batch of every token, and its sort's figure ------- */

/* board_take(frame, batch, latest, rank, sort) -> bool
 *
 * TickBoard.update's work for one frame (kitefan.render.dashboard), in C: for every packet of
 * a known length, in order, latest[token] = batch; then by sort (0 symbol: nothing more;
 * 1 movers: rank[token] = abs(last - close) / close, 0.0 when close is 0, for the packets that
 * carry a close (28, 32, 44, 184 bytes); 2 volume: rank[token] = volume_traded (an int) for 44
 * and 184; 3 active: rank[token] += 1, rank being the ticks counted). For movers and volume, the
 * tokens of packets without the figure are then removed from rank (after every figure is set,
 * as the Python path does). The division is IEEE's, correctly rounded like Python's int / int
 * for these integers (all below 2**53). False, with nothing changed, when the frame's structure
 * is not what kitefan.codec.decode_packets accepts: the caller's Python path then raises as it
 * would. */
static PyObject *
records_board_take(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer frame;
    PyObject *batch, *latest, *rank;
    int sort;
    if (!PyArg_ParseTuple(args, "y*OO!Oi:board_take", &frame, &batch, &PyDict_Type, &latest, &rank,
                          &sort)) {
        return NULL;
    }
    PyObject *result = NULL;
    const unsigned char *data = frame.buf;
    Py_ssize_t size = frame.len, ticks;
    if (sort < 0 || sort > 3 || (sort != 0 && !PyDict_Check(rank))) {
        PyErr_SetString(PyExc_ValueError, "board_take: sort is 0 to 3, and rank a dict unless 0");
        goto done;
    }
    if (!check_frame(data, size, &ticks)) {
        result = Py_NewRef(Py_False);
        goto done;
    }
    uint32_t count = size < 2 ? 0 : u16_at(data);
    for (int pass = 0; pass < 2; pass++) {
        Py_ssize_t offset = 2;
        for (uint32_t i = 0; i < count; i++) {
            uint32_t length = u16_at(data + offset);
            const unsigned char *pk = data + offset + 2;
            offset += 2 + length;
            if (!known_length(length)) {
                continue;
            }
            int has_figure = sort == 1 ? length != 8 : sort == 2 ? (length == 44 || length == 184)
                                                                 : 0;
            if (pass == 1 && (sort == 0 || sort == 3 || has_figure)) {
                continue;
            }
            PyObject *token = PyLong_FromUnsignedLong(u32_at(pk));
            if (token == NULL) {
                goto done;
            }
            int failed = 0;
            if (pass == 1) {
                /* no figure: out of the ranking */
                int has = PyDict_Contains(rank, token);
                failed = has < 0 || (has && PyDict_DelItem(rank, token) < 0);
            }
            else {
                failed = PyDict_SetItem(latest, token, batch) < 0;
                PyObject *value = NULL;
                if (!failed && has_figure && sort == 1) {
                    uint32_t last = u32_at(pk + 4);
                    uint32_t close = u32_at(pk + (length == 28 || length == 32 ? 20 : 40));
                    double moved = last > close ? (double)(last - close) : (double)(close - last);
                    value = PyFloat_FromDouble(close ? moved / (double)close : 0.0);
                }
                else if (!failed && has_figure && sort == 2) {
                    value = PyLong_FromUnsignedLong(u32_at(pk + 16));
                }
                else if (!failed && sort == 3) {
                    PyObject *seen = PyDict_GetItemWithError(rank, token);
                    if (seen == NULL && PyErr_Occurred()) {
                        failed = 1;
                    }
                    else {
                        PyObject *one = PyLong_FromLong(1); /* a cached small int */
                        value = seen == NULL || one == NULL ? Py_XNewRef(one)
                                                            : PyNumber_Add(seen, one);
                        Py_XDECREF(one);
                    }
                }
                if (!failed && (has_figure || sort == 3)) {
                    failed = value == NULL || PyDict_SetItem(rank, token, value) < 0;
                }
                Py_XDECREF(value);
            }
            Py_DECREF(token);
            if (failed) {
                goto done;
            }
        }
    }
    result = Py_NewRef(Py_True);
done:
    PyBuffer_Release(&frame);
    return result;
}

/* offset_of(frame, token) -> int | None: where the frame's last packet of token starts (its
 * first byte, after its length field), among packets of a known length; None if none is. For
 * frames kitefan.codec.scan_frame accepted. */
static PyObject *
records_offset_of(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer frame;
    unsigned long token;
    if (!PyArg_ParseTuple(args, "y*k:offset_of", &frame, &token)) {
        return NULL;
    }
    const unsigned char *data = frame.buf;
    Py_ssize_t size = frame.len, offset = 2, found = -1;
    uint32_t count = size < 2 ? 0 : u16_at(data);
    for (uint32_t i = 0; i < count && offset + 2 <= size; i++) {
        uint32_t length = u16_at(data + offset);
        if (offset + 2 + (Py_ssize_t)length > size) {
            break;
        }
        if (known_length(length) && u32_at(data + offset + 2) == (uint32_t)token) {
            found = offset + 2;
        }
        offset += 2 + length;
    }
    PyBuffer_Release(&frame);
    if (found < 0) {
        Py_RETURN_NONE;
    }
    return PyLong_FromSsize_t(found);
}

/* scan(frame) -> (ticks, skipped) | None: kitefan.codec.scan_frame's count, in C; None when the
 * frame's structure is not what decode_packets accepts (scan_frame then raises, saying where). */
static PyObject *
records_scan(PyObject *Py_UNUSED(module), PyObject *arg)
{
    Py_buffer frame;
    if (PyObject_GetBuffer(arg, &frame, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    Py_ssize_t ticks;
    int ok = check_frame(frame.buf, frame.len, &ticks);
    Py_ssize_t count = frame.len < 2 ? 0 : (Py_ssize_t)u16_at(frame.buf);
    PyBuffer_Release(&frame);
    if (!ok) {
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(nn)", ticks, count - ticks);
}

/* float_repr(x) -> str: repr(x) as the encoders write a float (for tests). */
static PyObject *
records_float_repr(PyObject *Py_UNUSED(module), PyObject *arg)
{
    double x = PyFloat_AsDouble(arg);
    if (x == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    char text[64];
    char *end = put_double(text, x);
    if (end == NULL) {
        return NULL;
    }
    return PyUnicode_FromStringAndSize(text, end - text);
}

static PyMethodDef records_methods[] = {
    {"jsonl", records_jsonl, METH_VARARGS,
     "jsonl(frame, head, name_of) -> bytes | None\n\nThe JSON lines of a frame's ticks."},
    {"csv", records_csv, METH_VARARGS,
     "csv(frame, head, name_of) -> bytes | None\n\nThe CSV rows of a frame's ticks."},
    {"fields", records_fields, METH_VARARGS,
     "fields(words, prices, orders, total, column, source, offset, count, step, plan, divisors)"
     " -> None\n\nwords, with prices divided and order counts cut as the plan says."},
    {"fold", records_fold, METH_VARARGS,
     "fold(frame, offset, count, step, words, lane, miss, whole=False) -> bool\n\nA run of packets into"
     " their forming candle bars (CandleBuilder's hot path)."},
    {"crc32s", records_crc32s, METH_O,
     "crc32s(buffers) -> list[int]\n\nzlib.crc32 of each buffer, in one call."},
    {"board_take", records_board_take, METH_VARARGS,
     "board_take(frame, batch, latest, rank, sort) -> bool\n\nTickBoard.update's work for one"
     " frame."},
    {"offset_of", records_offset_of, METH_VARARGS,
     "offset_of(frame, token) -> int | None\n\nWhere the frame's last packet of token starts."},
    {"scan", records_scan, METH_O,
     "scan(frame) -> (ticks, skipped) | None\n\nkitefan.codec.scan_frame's count, in C."},
    {"float_repr", records_float_repr, METH_O,
     "float_repr(x) -> str\n\nrepr(x), as the encoders write a float."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef records_module = {
    PyModuleDef_HEAD_INIT,
    "kitefan._records",
    "JSON lines and CSV rows of a tick frame, from its bytes (see kitefan.render.records).",
    0,
    records_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__records(void)
{
    crc_init();
#if defined(__SIZEOF_INT128__)
    POW10[0] = 1;
    for (int k = 1; k < 22; k++) {
        POW10[k] = POW10[k - 1] * 10;
    }
#endif
    return PyModuleDef_Init(&records_module);
}

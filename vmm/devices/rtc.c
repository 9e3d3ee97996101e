/*
 * rtc.c - MC146818 CMOS real-time clock (see rtc.h).
 *
 * The clock registers are not stored while the clock runs: each read
 * converts wall = boot_epoch_ns + nd_clock_ns() + offset_ns into the
 * requested field, in the format register B selects (BCD or binary, 24 h or
 * 12 h with bit 7 = PM).  A write to a clock register replaces that one field
 * of the current time and moves offset_ns so the clock continues from there
 * (keeping the sub-second phase).  While register B's SET bit is 1 the clock
 * is frozen, as on the chip: the clock registers are snapshotted into
 * cmos[], reads and writes use those bytes, and clearing SET makes them the
 * new time (the divider chain kept running, so the sub-second phase of the
 * old time is kept).
 *
 * The clock only reads virtual time when the guest reads a running clock
 * register or register A (for UIP), or writes a clock field.
 *
 * Range: the guest may set any date from 1900-01-01 to 2199-12-31; a value
 * outside is clamped to the nearest end (wall time is kept in signed 64-bit
 * ns).  The day-of-week register is computed from the date; writes to it
 * are ignored.  Out-of-range fields (month 13, day 0, bad BCD digits) are
 * normalised like timegm() does when they become the time.
 *
 * Not modelled (documented in rtc.h): update-ended, alarm and periodic
 * interrupts and their flags (register C always reads 0), the divider
 * control bits in register A (stored and read back; the clock never stops),
 * daylight-saving (DSE) and SQWE.
 *
 * Port accesses wider than a byte are split into byte accesses to successive
 * ports, low byte first, as the ISA bus does for an 8-bit device: a 16-bit
 * write to 0x70 selects an index and writes it.
 */
#include "rtc.h"

#include <string.h>

#include "../guest_mem.h"

#define REG_SEC     0x00
#define REG_SEC_AL  0x01
#define REG_MIN     0x02
#define REG_MIN_AL  0x03
#define REG_HOUR    0x04
#define REG_HOUR_AL 0x05
#define REG_WDAY    0x06
#define REG_MDAY    0x07
#define REG_MON     0x08
#define REG_YEAR    0x09
#define REG_A       0x0a
#define REG_B       0x0b
#define REG_C       0x0c
#define REG_D       0x0d
#define REG_CENTURY 0x32

#define A_UIP   0x80
#define B_SET   0x80
#define B_UIE   0x10
#define B_DM    0x04 /* binary */
#define B_24H   0x02
#define D_VRT   0x80

#define NS_PER_SEC 1000000000LL
/* UIP is set for the last 244 us before each update. */
#define UIP_NS 244000LL

/* Clamp range: 1900-01-01T00:00:00 and 2200-01-01T00:00:00 minus 1 ns. */
#define WALL_MIN_S (-2208988800LL)
#define WALL_END_S (7258118400LL)

struct tm_fields {
	int64_t year; /* full year */
	int mon;      /* 1..12 */
	int mday;     /* 1..31 */
	int hour, min, sec;
	int wday;     /* 0 = Sunday */
};

/* Days since 1970-01-01 of a proleptic Gregorian date (any month/day). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
	int64_t era, yoe, doy, doe;

	/* Normalise the month first, carrying into the year. */
	m -= 1;
	y += m >= 0 ? m / 12 : (m - 11) / 12;
	m = ((m % 12) + 12) % 12 + 1;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, struct tm_fields *t)
{
	int64_t era, doe, yoe, y, doy, mp;

	t->wday = (int)(((z % 7) + 11) % 7); /* 1970-01-01 was a Thursday */
	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	t->mday = (int)(doy - (153 * mp + 2) / 5 + 1);
	t->mon = (int)(mp < 10 ? mp + 3 : mp - 9);
	t->year = y + (t->mon <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

static void fields_from_secs(int64_t secs, struct tm_fields *t)
{
	int64_t days = floor_div(secs, 86400), rem = secs - days * 86400;

	civil_from_days(days, t);
	t->hour = (int)(rem / 3600);
	t->min = (int)(rem / 60 % 60);
	t->sec = (int)(rem % 60);
}

static int64_t secs_from_fields(const struct tm_fields *t)
{
	return days_from_civil(t->year, t->mon, t->mday) * 86400 +
	       (int64_t)t->hour * 3600 + (int64_t)t->min * 60 + t->sec;
}

/*
 * The wall time in ns at virtual time `now`, clamped to the range (signed:
 * the guest may set dates before 1970).
 */
static int64_t wall_at(const struct rtc *r, uint64_t now)
{
	__int128 w = (__int128)r->nd->boot_epoch_ns + now + r->state.offset_ns;

	if (w < (__int128)WALL_MIN_S * NS_PER_SEC)
		w = (__int128)WALL_MIN_S * NS_PER_SEC;
	if (w >= (__int128)WALL_END_S * NS_PER_SEC)
		w = (__int128)WALL_END_S * NS_PER_SEC - 1;
	return (int64_t)w;
}

static int64_t wall_ns(struct rtc *r)
{
	return wall_at(r, nd_clock_ns(r->nd));
}

static int64_t ns_frac(int64_t w)
{
	return w - floor_div(w, NS_PER_SEC) * NS_PER_SEC;
}

/*
 * Make the clock read `secs` (+ frac ns) at virtual time `now`: offset_ns =
 * target - (boot_epoch + now), with the target clamped to the range.
 */
static void set_wall(struct rtc *r, int64_t secs, int64_t frac, uint64_t now)
{
	__int128 target, off;

	if (secs < WALL_MIN_S)
		secs = WALL_MIN_S;
	if (secs >= WALL_END_S)
		secs = WALL_END_S - 1;
	target = (__int128)secs * NS_PER_SEC + frac;
	off = target - (__int128)r->nd->boot_epoch_ns - now;
	if (off > INT64_MAX)
		off = INT64_MAX;
	if (off < INT64_MIN)
		off = INT64_MIN;
	r->state.offset_ns = (int64_t)off;
}

static uint8_t to_bcd(int v)
{
	return (uint8_t)(((v / 10) % 10) << 4 | (v % 10));
}

static uint8_t encode(const struct rtc *r, int v)
{
	return (r->state.cmos[REG_B] & B_DM) ? (uint8_t)v : to_bcd(v);
}

/* Any byte decodes: a bad BCD digit just counts for its value. */
static int decode(const struct rtc *r, uint8_t v)
{
	return (r->state.cmos[REG_B] & B_DM) ? v : (v >> 4) * 10 + (v & 0x0f);
}

static uint8_t encode_hour(const struct rtc *r, int hour)
{
	int h12;

	if (r->state.cmos[REG_B] & B_24H)
		return encode(r, hour);
	h12 = hour % 12 ? hour % 12 : 12;
	return encode(r, h12) | (hour >= 12 ? 0x80 : 0);
}

static int decode_hour(const struct rtc *r, uint8_t v)
{
	int h;

	if (r->state.cmos[REG_B] & B_24H)
		return decode(r, v);
	h = decode(r, v & 0x7f);
	if (h == 12)
		h = 0;
	return (v & 0x80) ? h + 12 : h;
}

static bool is_clock_reg(unsigned reg)
{
	return reg == REG_SEC || reg == REG_MIN || reg == REG_HOUR ||
	       reg == REG_WDAY || reg == REG_MDAY || reg == REG_MON ||
	       reg == REG_YEAR || reg == REG_CENTURY;
}

static uint8_t field_value(const struct rtc *r, const struct tm_fields *t, unsigned reg)
{
	switch (reg) {
	case REG_SEC:     return encode(r, t->sec);
	case REG_MIN:     return encode(r, t->min);
	case REG_HOUR:    return encode_hour(r, t->hour);
	case REG_WDAY:    return encode(r, t->wday + 1); /* 1 = Sunday */
	case REG_MDAY:    return encode(r, t->mday);
	case REG_MON:     return encode(r, t->mon);
	case REG_YEAR:    return encode(r, (int)(t->year % 100));
	default:          return encode(r, (int)(t->year / 100)); /* century */
	}
}

/* Replace one field (guest encoding v) in t. */
static void set_field(const struct rtc *r, struct tm_fields *t, unsigned reg, uint8_t v)
{
	switch (reg) {
	case REG_SEC:     t->sec = decode(r, v); break;
	case REG_MIN:     t->min = decode(r, v); break;
	case REG_HOUR:    t->hour = decode_hour(r, v); break;
	case REG_MDAY:    t->mday = decode(r, v); break;
	case REG_MON:     t->mon = decode(r, v); break;
	case REG_YEAR:    t->year = t->year / 100 * 100 + decode(r, v); break;
	case REG_CENTURY: t->year = (int64_t)decode(r, v) * 100 + t->year % 100; break;
	default:          break; /* day of week: computed from the date */
	}
}

static const unsigned clock_regs[] = {
	REG_SEC, REG_MIN, REG_HOUR, REG_WDAY, REG_MDAY, REG_MON, REG_YEAR, REG_CENTURY,
};

/* SET went 0 -> 1: freeze the clock registers into cmos[]. */
static void freeze(struct rtc *r)
{
	struct tm_fields t;

	fields_from_secs(floor_div(wall_ns(r), NS_PER_SEC), &t);
	for (size_t i = 0; i < sizeof(clock_regs) / sizeof(clock_regs[0]); i++)
		r->state.cmos[clock_regs[i]] = field_value(r, &t, clock_regs[i]);
}

/* SET went 1 -> 0: the frozen registers become the time. */
static void thaw(struct rtc *r)
{
	uint64_t now = nd_clock_ns(r->nd);
	struct tm_fields t = { 0 };
	int64_t frac = ns_frac(wall_at(r, now));
	const uint8_t *c = r->state.cmos;

	t.sec = decode(r, c[REG_SEC]);
	t.min = decode(r, c[REG_MIN]);
	t.hour = decode_hour(r, c[REG_HOUR]);
	t.mday = decode(r, c[REG_MDAY]);
	t.mon = decode(r, c[REG_MON]);
	t.year = (int64_t)decode(r, c[REG_CENTURY]) * 100 + decode(r, c[REG_YEAR]);
	set_wall(r, secs_from_fields(&t), frac, now);
}

static uint8_t read_reg(struct rtc *r, unsigned reg)
{
	struct rtc_state *s = &r->state;
	struct tm_fields t;
	int64_t w;
	uint8_t v;

	if (is_clock_reg(reg) && !(s->cmos[REG_B] & B_SET)) {
		fields_from_secs(floor_div(wall_ns(r), NS_PER_SEC), &t);
		return field_value(r, &t, reg);
	}
	switch (reg) {
	case REG_A:
		v = s->cmos[REG_A] & ~A_UIP;
		if (!(s->cmos[REG_B] & B_SET)) {
			w = wall_ns(r);
			if (ns_frac(w) >= NS_PER_SEC - UIP_NS)
				v |= A_UIP;
		}
		return v;
	case REG_C:
		v = s->cmos[REG_C];
		s->cmos[REG_C] = 0; /* flags clear on read */
		return v;
	case REG_D:
		return D_VRT;
	default:
		return s->cmos[reg];
	}
}

static void write_reg(struct rtc *r, unsigned reg, uint8_t val)
{
	struct rtc_state *s = &r->state;
	uint64_t now;
	int64_t w;
	struct tm_fields t;
	uint8_t old;

	if (is_clock_reg(reg)) {
		if (s->cmos[REG_B] & B_SET) {
			s->cmos[reg] = val; /* frozen: takes effect when SET clears */
			return;
		}
		if (reg == REG_WDAY)
			return;
		now = nd_clock_ns(r->nd);
		w = wall_at(r, now);
		fields_from_secs(floor_div(w, NS_PER_SEC), &t);
		set_field(r, &t, reg, val);
		set_wall(r, secs_from_fields(&t), ns_frac(w), now);
		return;
	}
	switch (reg) {
	case REG_A:
		s->cmos[REG_A] = val & ~A_UIP; /* UIP is read-only */
		break;
	case REG_B:
		old = s->cmos[REG_B];
		/* Setting SET clears UIE, as on the chip. */
		s->cmos[REG_B] = (val & B_SET) ? (val & ~B_UIE) : val;
		/*
		 * The frozen registers are in the format now in force, as the
		 * chip interprets its registers in the current format.
		 */
		if ((val & B_SET) && !(old & B_SET))
			freeze(r);
		else if (!(val & B_SET) && (old & B_SET))
			thaw(r);
		break;
	case REG_C:
	case REG_D:
		break; /* read-only */
	default:
		s->cmos[reg] = val;
		break;
	}
}

static void rtc_access(struct rtc *r, unsigned port, uint8_t *val, bool is_write)
{
	struct rtc_state *s = &r->state;

	if (port == 0) {
		if (is_write) {
			s->index = *val & 0x7f;
			s->nmi_disabled = *val >> 7;
		} else {
			*val = 0xff; /* the index port is write-only */
		}
	} else if (is_write) {
		write_reg(r, s->index, *val);
	} else {
		*val = read_reg(r, s->index);
	}
}

static void rtc_read(void *dev, uint64_t offset, uint8_t *data, unsigned size)
{
	for (unsigned i = 0; i < size; i++)
		rtc_access(dev, (offset + i) & 1, &data[i], false);
}

static void rtc_write(void *dev, uint64_t offset, const uint8_t *data, unsigned size)
{
	for (unsigned i = 0; i < size; i++) {
		uint8_t v = data[i];

		rtc_access(dev, (offset + i) & 1, &v, true);
	}
}

const struct bus_ops rtc_ops = { .read = rtc_read, .write = rtc_write };

static void set16(uint8_t *cmos, unsigned reg, uint64_t v)
{
	if (v > 0xffff)
		v = 0xffff;
	cmos[reg] = (uint8_t)v;
	cmos[reg + 1] = (uint8_t)(v >> 8);
}

void rtc_init(struct rtc *r, struct nd *nd, struct irq_line irq, uint64_t mem_size)
{
	struct rtc_state *s = &r->state;
	uint64_t below = mem_size < GM_HOLE_START ? mem_size : GM_HOLE_START;
	uint64_t above = mem_size - below;
	uint64_t v;

	memset(s, 0, sizeof(*s));
	r->nd = nd;
	r->irq = irq;
	s->cmos[REG_A] = 0x26;  /* 32.768 kHz divider, 1024 Hz rate */
	s->cmos[REG_B] = B_24H; /* 24 h, BCD, as a PC BIOS leaves it */
	s->cmos[REG_D] = D_VRT;

	/* Memory size, as QEMU's pc_cmos_init fills it. */
	v = below / 1024 < 640 ? below / 1024 : 640;
	set16(s->cmos, 0x15, v);               /* base memory, KiB */
	v = below > (1 << 20) ? (below - (1 << 20)) / 1024 : 0;
	set16(s->cmos, 0x17, v);               /* extended memory, KiB */
	set16(s->cmos, 0x30, v);
	v = below > (16 << 20) ? (below - (16 << 20)) / 65536 : 0;
	set16(s->cmos, 0x34, v);               /* 16 MiB..4 GiB, 64 KiB units */
	v = above / 65536;                     /* above 4 GiB, 64 KiB units */
	s->cmos[0x5b] = (uint8_t)v;
	s->cmos[0x5c] = (uint8_t)(v >> 8);
	s->cmos[0x5d] = (uint8_t)(v >> 16);
}

int rtc_register(struct rtc *r, struct bus *pio)
{
	return bus_register(pio, 0x70, 2, &rtc_ops, r, "rtc");
}

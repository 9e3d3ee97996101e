/* console.c - COM1 output (polled), a small printf, exit and results. */
#include "rt.h"

#define COM1 DEV_COM1_PORT

/*
 * The FIFO control register is left alone: enabling or disabling the FIFOs
 * flushes them, and input may already be waiting (a VMM feeds the UART
 * whenever it has room, before the guest is ready to read).
 */
void rt_serial_init(void)
{
	outb(COM1 + 1, 0x00); /* IER: no interrupts */
	outb(COM1 + 3, 0x80); /* DLAB */
	outb(COM1 + 0, 0x01); /* 115200 baud */
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03); /* 8N1 */
	outb(COM1 + 4, 0x0b); /* DTR, RTS, OUT2 */
}

void rt_putc(char c)
{
	/* Bounded wait for THR empty: a UART that never drains must not hang us. */
	for (int i = 0; i < 100000; i++)
		if (inb(COM1 + 5) & 0x20)
			break;
	outb(COM1, (uint8_t)c);
}

void rt_puts(const char *s)
{
	while (*s)
		rt_putc(*s++);
}

/* ---- formatting ---- */

struct sink {
	char *buf;   /* NULL: serial */
	size_t size, pos;
};

static void sink_put(struct sink *k, char c)
{
	if (!k->buf)
		rt_putc(c);
	else if (k->pos + 1 < k->size)
		k->buf[k->pos] = c;
	k->pos++;
}

static void emit(struct sink *k, const char *s, size_t len, int width, int left, char pad)
{
	int fill = width > (int)len ? width - (int)len : 0;
	if (!left && pad == '0' && len && (s[0] == '-')) {
		sink_put(k, '-');
		s++;
		len--;
	}
	if (!left)
		while (fill--)
			sink_put(k, pad);
	for (size_t i = 0; i < len; i++)
		sink_put(k, s[i]);
	if (left)
		while (fill-- > 0)
			sink_put(k, ' ');
}

static int format(struct sink *k, const char *fmt, va_list ap)
{
	char tmp[32];
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			sink_put(k, *fmt);
			continue;
		}
		fmt++;
		int left = 0, width = 0, lng = 0;
		char pad = ' ';
		for (;; fmt++) {
			if (*fmt == '-')
				left = 1;
			else if (*fmt == '0')
				pad = '0';
			else
				break;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l' || *fmt == 'z') {
			lng = 1;
			fmt++;
		}
		uint64_t u;
		int neg = 0, base = 10, n = 0;
		switch (*fmt) {
		case 0:
			return (int)k->pos;
		case '%':
			sink_put(k, '%');
			continue;
		case 'c':
			tmp[0] = (char)va_arg(ap, int);
			emit(k, tmp, 1, width, left, ' ');
			continue;
		case 's': {
			const char *s = va_arg(ap, const char *);
			if (!s)
				s = "(null)";
			emit(k, s, strlen(s), width, left, ' ');
			continue;
		}
		case 'd':
		case 'i': {
			int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
			neg = v < 0;
			u = neg ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
			break;
		}
		case 'u':
			u = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
			break;
		case 'x':
		case 'X':
			u = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
			base = 16;
			break;
		case 'p':
			u = (uint64_t)(uintptr_t)va_arg(ap, void *);
			base = 16;
			tmp[0] = '0';
			tmp[1] = 'x';
			emit(k, tmp, 2, 0, 0, ' ');
			break;
		default:
			sink_put(k, '%');
			sink_put(k, *fmt);
			continue;
		}
		char digits[24];
		do {
			unsigned d = (unsigned)(u % base);
			digits[n++] = (char)(d < 10 ? '0' + d : (*fmt == 'X' ? 'A' : 'a') + d - 10);
			u /= base;
		} while (u);
		int m = 0;
		if (neg)
			tmp[m++] = '-';
		while (n)
			tmp[m++] = digits[--n];
		emit(k, tmp, m, width, left, pad);
	}
	return (int)k->pos;
}

int rt_vprintf(const char *fmt, va_list ap)
{
	struct sink k = { 0, 0, 0 };
	return format(&k, fmt, ap);
}

int rt_printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = rt_vprintf(fmt, ap);
	va_end(ap);
	return n;
}

int rt_snprintf(char *buf, size_t size, const char *fmt, ...)
{
	struct sink k = { buf, size, 0 };
	va_list ap;
	va_start(ap, fmt);
	format(&k, fmt, ap);
	va_end(ap);
	if (size)
		buf[k.pos < size ? k.pos : size - 1] = 0;
	return (int)k.pos;
}

/* Print data as hex, 32 bytes per line, each line prefixed "time-dependent: label". */
void rt_hexdump_td(const char *label, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i += 32) {
		rt_printf(RT_TD "%s %03lx:", label, (uint64_t)i);
		for (size_t j = i; j < len && j < i + 32; j++)
			rt_printf(" %02x", p[j]);
		rt_putc('\n');
	}
}

/* ---- exit ---- */

void rt_exit(uint32_t value)
{
	cli();
	outl(DEV_DEBUG_EXIT, value);
	/* Without a debug-exit device: power off (ACPI PM1a SLP_EN), then halt. */
	outw(DEV_POWEROFF, 0x2000);
	for (;;)
		hlt();
}

void rt_pass(uint64_t checksum)
{
	rt_printf("RESULT %s ok checksum=%016lx\n", rt_guest_name, checksum);
	rt_exit(RT_EXIT_OK);
}

void rt_fail(const char *fmt, ...)
{
	va_list ap;
	rt_printf("RESULT %s FAIL ", rt_guest_name);
	va_start(ap, fmt);
	rt_vprintf(fmt, ap);
	va_end(ap);
	rt_putc('\n');
	rt_exit(RT_EXIT_FAIL);
}

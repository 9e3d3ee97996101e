/* lib.c - the little of libc the guests need, plus FNV-1a and the command line. */
#include "rt.h"

void *memset(void *d, int c, size_t n)
{
	void *ret = d;
	__asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
	return ret;
}

void *memcpy(void *d, const void *s, size_t n)
{
	void *ret = d;
	__asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) :: "memory");
	return ret;
}

void *memmove(void *d, const void *s, size_t n)
{
	unsigned char *dp = d;
	const unsigned char *sp = s;
	if (dp <= sp || dp >= sp + n)
		return memcpy(d, s, n);
	while (n--)
		dp[n] = sp[n];
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;
	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

int strncmp(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (a[i] != b[i])
			return (unsigned char)a[i] < (unsigned char)b[i] ? -1 : 1;
		if (!a[i])
			return 0;
	}
	return 0;
}

uint64_t fnv1a64(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

uint64_t fnv1a64_u64(uint64_t h, uint64_t v)
{
	unsigned char b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	return fnv1a64(h, b, 8);
}

uint64_t fnv1a64_str(uint64_t h, const char *s)
{
	return fnv1a64(h, s, strlen(s));
}

/* Find "key=" at the start of a word; returns a pointer to the value. */
static const char *find_key(const char *key)
{
	const char *s = rt_machine.cmdline;
	size_t kl = strlen(key);
	if (!s)
		return NULL;
	while (*s) {
		while (*s == ' ')
			s++;
		if (!strncmp(s, key, kl) && s[kl] == '=')
			return s + kl + 1;
		while (*s && *s != ' ')
			s++;
	}
	return NULL;
}

uint64_t rt_cmdline_uint(const char *key, uint64_t def)
{
	const char *v = find_key(key);
	uint64_t n = 0;
	int base = 10, digits = 0;
	if (!v)
		return def;
	if (v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
		base = 16;
		v += 2;
	}
	for (; *v && *v != ' '; v++) {
		int d;
		if (*v >= '0' && *v <= '9')
			d = *v - '0';
		else if (base == 16 && *v >= 'a' && *v <= 'f')
			d = *v - 'a' + 10;
		else if (base == 16 && *v >= 'A' && *v <= 'F')
			d = *v - 'A' + 10;
		else
			return def;
		n = n * base + d;
		digits++;
	}
	return digits ? n : def;
}

int rt_cmdline_has(const char *word)
{
	const char *s = rt_machine.cmdline;
	size_t wl = strlen(word);
	if (!s)
		return 0;
	while (*s) {
		while (*s == ' ')
			s++;
		if (!strncmp(s, word, wl) && (s[wl] == ' ' || s[wl] == 0 || s[wl] == '='))
			return 1;
		while (*s && *s != ' ')
			s++;
	}
	return 0;
}

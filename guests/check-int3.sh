#!/bin/sh
# check-int3.sh ELF - fail if the guest contains an int3 (0xcc) or "int $3"
# instruction: KVM here cannot emulate int3 at CPL0 (see the host notes).
# .text is 64-bit code, .text32 is the 32-bit multiboot entry.
set -e
elf="$1"
# shellcheck disable=SC2016 # '$0x3' is AT&T syntax, not a shell expansion
pattern='[[:space:]](int3|int[[:space:]]+\$0x3)([[:space:]]|$)'
bad=$( { objdump -d -j .text "$elf"; objdump -d -M i386 -j .text32 "$elf"; } |
	grep -E "$pattern" || true)
if [ -n "$bad" ]; then
	echo "$elf: contains int3:" >&2
	echo "$bad" >&2
	exit 1
fi
# No other executable sections may hide code from the check above.
extra=$(objdump -h "$elf" | awk '/^ *[0-9]+ / { name = $2; getline; if ($0 ~ /CODE/ && name != ".text" && name != ".text32") print name }')
if [ -n "$extra" ]; then
	echo "$elf: unexpected code sections: $extra" >&2
	exit 1
fi

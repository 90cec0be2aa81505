/* Config space as a dump file that `lspci -F FILE` decodes: a device line
 * starting with a bus address, then hex lines of 16 bytes. */
#include <errno.h>
#include <stdio.h>

#include "vfpm/client.h"

VFPM_EXPORT int vfpm_format_lspci(const uint8_t *cfg, size_t len, FILE *out)
{
	/* lspci needs at least the 64-byte header and reads at most 4 KiB. */
	if (!cfg || !out || len < 64 || len > 4096 || len % 16)
		return -EINVAL;
	unsigned vendor = cfg[0] | cfg[1] << 8;
	unsigned device = cfg[2] | cfg[3] << 8;
	unsigned cls = cfg[0x0a] | cfg[0x0b] << 8;
	fprintf(out, "00:00.0 Class %04x: Device %04x:%04x (rev %02x)\n", cls, vendor, device,
		cfg[0x08]);
	for (size_t off = 0; off < len; off += 16) {
		/* lspci itself prints 3 digits past the first 256 bytes. */
		fprintf(out, off < 0x100 ? "%02zx:" : "%03zx:", off);
		for (size_t i = 0; i < 16; i++)
			fprintf(out, " %02x", cfg[off + i]);
		fputc('\n', out);
	}
	fputc('\n', out);  /* a blank line ends the device */
	return ferror(out) ? -EIO : 0;
}

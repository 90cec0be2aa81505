/* Logging: the core's lines on stderr, ranked by vfpmd's verbosity. */
#include <stdarg.h>
#include <stdio.h>

#include "core.h"

void core_log(int verbosity, enum vfpm_log_level lvl, const char *who, const char *fmt, ...)
{
	static const char *const tag[] = { "error", "warning", "info", "debug", "verbose" };
	/* rank: error 0, warning 1, info 2, verbose 3, debug 4 */
	int rank = lvl == VFPM_LOG_DEBUG ? CORE_VERBOSITY_MAX : lvl == CORE_LOG_VERBOSE ? 3 : (int)lvl;
	if ((unsigned)lvl > (unsigned)CORE_LOG_VERBOSE || rank > verbosity)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* one write per line so lines from threads do not interleave */
	fprintf(stderr, "vfpmd: %s: %s: %s\n", tag[lvl], who ? who : "-", msg);
}

VFPM_EXPORT void vfpm_dev_log(const struct vfpm_device *dev, enum vfpm_log_level lvl,
			      const char *fmt, ...)
{
	if (!fmt || (unsigned)lvl > VFPM_LOG_DEBUG)
		return;
	char msg[480];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* no device: logged as the core's own errors are by default */
	core_log(dev ? dev->verbosity : 0, lvl, dev ? dev->name : NULL, "%s", msg);
}

VFPM_EXPORT const char *vfpm_dev_name(const struct vfpm_device *dev)
{
	return dev ? dev->name : NULL;
}

/* The default device socket path, shared by the server and vfpmctl so
 * that both find each other without options. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/un.h>
#include <unistd.h>

#include "vfpm/client.h"

VFPM_EXPORT int vfpm_default_socket_path(char *buf, size_t len)
{
	if (!buf || len == 0)
		return -EINVAL;
	const char *env = getenv("VFPM_SOCKET");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;
	if (env && *env)
		n = snprintf(buf, len, "%s", env);
	else if (geteuid() == 0)
		n = snprintf(buf, len, "/run/vfpm/demo.sock");
	else if (xdg && *xdg == '/')  /* relative values are ignored, as the XDG spec says */
		n = snprintf(buf, len, "%s/vfpm/demo.sock", xdg);
	else
		n = snprintf(buf, len, "/tmp/vfpm-%u/demo.sock", (unsigned)getuid());
	/* It must also fit a socket address to be usable at all. */
	if (n < 0 || (size_t)n >= len || (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		buf[0] = '\0';
		return -ENAMETOOLONG;
	}
	return 0;
}
